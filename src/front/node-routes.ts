// Routes about the node rather than counters: liveness, readiness, metrics, and the 404 / 405
// answers for everything else. Readiness and metrics come from the shared status board, so any
// shard answers for the whole node at once.
import { CounterdError } from '../core/errors'
import type { FrontContext } from './context'
import { renderMetrics } from './metrics'
import { replyError, replyJson, type Abortable } from './replies'
import { PHASE_DRAINING, PHASE_READY } from './status-board'
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws'

/** Known paths and their methods: a known path with the wrong method gets 405 and Allow. */
const ALLOW: Array<[string, string]> = [
  ['/v1/counter/:type/:id/increment', 'POST'],
  ['/v1/counter/:type/:id', 'GET, DELETE'],
  ['/v1/counter/:type/:id/history', 'GET'],
  ['/v1/counter/:type/:id/unique', 'GET'],
  ['/v1/counter/:type/:id/rate', 'GET'],
  ['/v1/counter/:type/:id/sample', 'GET'],
  ['/v1/like', 'POST'],
  ['/v1/unlike', 'POST'],
  ['/v1/count', 'GET'],
  ['/v1/counts', 'POST'],
  ['/v1/has-liked', 'GET'],
  ['/v1/top', 'GET'],
  ['/v1/quota', 'GET'],
  ['/v1/replication/state', 'GET'],
  ['/v1/replication/merge', 'POST'],
  ['/v1/counters/query', 'POST'],
  ['/v1/stream', 'GET'],
  ['/health', 'GET'],
  ['/ready', 'GET'],
  ['/metrics', 'GET']
]

export function installNodeRoutes (app: TemplatedApp, ctx: FrontContext): void {
  const { config, board, metrics } = ctx

  app.get('/health', (res: HttpResponse) => {
    replyJson(res, { aborted: false }, 200, '{"status":"ok"}')
  })

  app.get('/ready', (res: HttpResponse) => {
    const state: Abortable = { aborted: false }
    const phase = board.nodePhase
    if (phase !== PHASE_READY) {
      const err = new CounterdError(phase === PHASE_DRAINING ? 'shutting_down' : 'not_ready')
      replyJson(res, state, 503, JSON.stringify({ error: err.toWire(), recovering: phase !== PHASE_DRAINING, draining: phase === PHASE_DRAINING }),
        { 'retry-after': String(config.retryAfterSeconds) })
      return
    }
    // Ready means acks can be given: every shard's log and checkpoints work. History is reported, not fatal.
    const storage = board.logError()
    const detail: Record<string, unknown> = { storage: storage ?? 'ok' }
    const history = board.history()
    if (history !== undefined) {
      detail.history = history.ok ? 'ok' : history.error
      detail.historyPendingRows = history.pendingRows
    }
    if (storage === undefined) {
      replyJson(res, state, 200, JSON.stringify({ status: 'ready', ...detail }))
      return
    }
    const err = new CounterdError('storage_unavailable', `storage is failing: ${storage}`)
    replyJson(res, state, 503, JSON.stringify({ error: err.toWire(), ...detail }), { 'retry-after': String(config.retryAfterSeconds) })
  })

  app.get('/metrics', (res: HttpResponse) => {
    res.cork(() => {
      res.writeHeader('content-type', 'text/plain; version=0.0.4')
      res.end(renderMetrics(board, ctx.inflight, config.ingestTopic))
    })
  })

  for (const [pattern, methods] of ALLOW) {
    app.any(pattern, (res: HttpResponse, req: HttpRequest) => {
      const method = req.getMethod().toUpperCase()
      metrics.countError('http', 'method_not_allowed')
      replyError(res, { aborted: false }, new CounterdError('method_not_allowed', `${method} is not allowed here; use ${methods}`),
        config.retryAfterSeconds, { allow: methods })
    })
  }
  app.any('/*', (res: HttpResponse, req: HttpRequest) => {
    const url = req.getUrl()
    metrics.countError('http', 'not_found')
    replyError(res, { aborted: false }, new CounterdError('not_found', `no route for ${url}`), config.retryAfterSeconds)
  })
}
