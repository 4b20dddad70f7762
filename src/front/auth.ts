// Who may call what (AUTH_FILE): every route needs a key with its scope — read, write or admin —
// given as `Authorization: Bearer <key>` (the stream also takes `?token=`). Without AUTH_FILE
// the node is open. The check wraps the route handlers once, at install, so no route can forget it;
// it hands the handler the key's namespace (src/core/namespaces.ts) and charges the key's rate
// (KEY_OPS_PER_SECOND).
import type { ApiKey, ApiKeyVerifier, Scope } from '../core/api-keys'
import { CounterdError } from '../core/errors'
import { failRequest } from './body'
import type { FrontContext } from './context'
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws'

const OPEN: ReadonlySet<string> = new Set(['GET /health', 'GET /ready', 'GET /', 'GET /openapi.json'])

const SCOPE_OF: Readonly<Record<string, Scope>> = {
  'POST /v1/counter/:type/:id/increment': 'write',
  'DELETE /v1/counter/:type/:id': 'write',
  'POST /v1/like': 'write',
  'POST /v1/unlike': 'write',
  'GET /v1/stream': 'write', // checked at the upgrade (stream.ts)
  'GET /v1/counter/:type/:id': 'read',
  'GET /v1/counter/:type/:id/unique': 'read',
  'GET /v1/counter/:type/:id/rate': 'read',
  'GET /v1/counter/:type/:id/sample': 'read',
  'GET /v1/counter/:type/:id/history': 'read',
  'POST /v1/counters/query': 'read',
  'GET /v1/count': 'read',
  'GET /v1/has-liked': 'read',
  'POST /v1/counts': 'read',
  'GET /v1/top': 'read',
  'GET /v1/quota': 'read',
  'GET /v1/replication/state': 'admin',
  'POST /v1/replication/merge': 'admin',
  'GET /metrics': 'admin'
}

/** The scope a route needs, or null for an open one. A route nobody listed needs admin. */
export function scopeOf (route: string, metricsOpen: boolean): Scope | null {
  if (OPEN.has(route) || route.startsWith('ANY ')) return null
  if (route === 'GET /metrics' && metricsOpen) return null
  return SCOPE_OF[route] ?? 'admin'
}

/** The key's entry when `key` may act with `scope`; else the error to answer (nothing is done). */
export function authenticate (verifier: ApiKeyVerifier, key: string, scope: Scope): ApiKey | CounterdError {
  const entry = key === '' ? null : verifier.find(key)
  if (entry === null) return new CounterdError('unauthorized', key === '' ? 'an API key is required: Authorization: Bearer <key>' : 'unknown API key')
  if (!entry.scopes.includes(scope)) return new CounterdError('forbidden', `this key lacks the ${scope} scope`)
  return entry
}

/** null when `n` more ops of `key` fit its rate (they are charged); else the rate_limited error. */
export function chargeKey (ctx: FrontContext, key: ApiKey, n: number): CounterdError | null {
  const limit = ctx.keyLimit
  if (limit === null) return null
  const waitMs = limit.take(key.slot, n)
  if (waitMs === 0) return null
  return new CounterdError('rate_limited', `this API key is over ${limit.perSecond} ops per second; retry in ${Math.ceil(waitMs / 1000)} s`)
}

/** A route handler; `ns` is the caller's namespace ('' on an open node). */
export type Handler = (res: HttpResponse, req: HttpRequest, ns?: string) => void

/** The key in `Authorization: Bearer <key>`, or ''. */
export function bearerOf (header: string): string {
  return header.startsWith('Bearer ') ? header.slice(7).trim() : ''
}

/** The app as the route installers see it: each get/post/del handler checks the key first. */
export function guardRoutes (app: TemplatedApp, ctx: FrontContext): TemplatedApp {
  const methods: Record<string, string> = { get: 'GET', post: 'POST', del: 'DELETE', any: 'ANY' }
  const guarded: TemplatedApp = new Proxy(app, {
    get (target, prop, receiver) {
      const method = typeof prop === 'string' ? methods[prop] : undefined
      if (method === undefined) return Reflect.get(target, prop, receiver)
      return (pattern: string, handler: Handler) => {
        const scope = scopeOf(`${method} ${pattern}`, ctx.config.metricsOpen)
        const register = Reflect.get(target, prop, receiver) as (p: string, h: (res: HttpResponse, req: HttpRequest) => void) => TemplatedApp
        register.call(target, pattern, scope === null
          ? handler
          : (res: HttpResponse, req: HttpRequest) => {
              if (ctx.auth === null) { handler(res, req); return } // an open node reads no header
              const entry = authenticate(ctx.auth, bearerOf(req.getHeader('authorization')), scope)
              // One op per request (a batch query too): the limit guards the node, not the counters.
              const refused = entry instanceof CounterdError ? entry : chargeKey(ctx, entry, 1)
              if (refused === null) { handler(res, req, (entry as ApiKey).namespace); return }
              failRequest(ctx, res, { aborted: false }, refused)
            })
        return guarded
      }
    }
  })
  return guarded
}
