// Loads uWebSockets.js. The npm package that carries the real native binary for Node 20 falls back
// to a slow pure-JS emulation on other platforms, silently but for a console line; we detect which
// one loaded so the node can say so loudly at start.
import type * as UWS from '@trufflesuite/uws-js-unofficial'
import type { TemplatedApp } from '@trufflesuite/uws-js-unofficial'

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const uws: typeof UWS = require('@trufflesuite/uws-js-unofficial')

export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from '@trufflesuite/uws-js-unofficial'

/** 'native' when App is the compiled binding, 'fallback' when it is the JS emulation. */
export const uwsImplementation: 'native' | 'fallback' =
  Function.prototype.toString.call(uws.App).includes('[native code]') ? 'native' : 'fallback'

/**
 * Closes an app's listen sockets and force-closes its connections (uWS ≥ 20.34's App.close, which
 * this build has but its typings lack). A worker thread must do this before it ends.
 */
export function closeApp (app: TemplatedApp): void {
  (app as unknown as { close: () => void }).close()
}
