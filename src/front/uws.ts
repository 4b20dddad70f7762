// Loads uWebSockets.js. The npm package that carries the real native binary for Node 20 falls back
// to a slow pure-JS emulation on other platforms, silently but for a console line; we detect which
// one loaded so the node can say so loudly at start.
import type * as UWS from '@trufflesuite/uws-js-unofficial'

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const uws: typeof UWS = require('@trufflesuite/uws-js-unofficial')

export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from '@trufflesuite/uws-js-unofficial'

/** 'native' when App is the compiled binding, 'fallback' when it is the JS emulation. */
export const uwsImplementation: 'native' | 'fallback' =
  Function.prototype.toString.call(uws.App).includes('[native code]') ? 'native' : 'fallback'
