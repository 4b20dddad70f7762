// Routes about the node rather than counters: liveness, readiness, metrics, and the 404 / 405
// answers for everything else. Readiness and metrics come from the shared status board, so any
// shard answers for the whole node at once.
import { CounterdError, asCounterdError } from '../core/errors'
import type { FrontContext } from './context'
import { LIVE_PAGE_HTML } from './live-page'
import { observeAnswer, renderMetrics } from './metrics'
import type { Router } from '../routing/router'
import { OPENAPI_JSON } from './openapi'
import { replyError, replyJson, type Abortable } from './replies'
import { PHASE_DRAINING, PHASE_READY } from './status-board'
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws'

/** Known paths and their methods: a known path with the wrong method gets 405 and Allow. */
export const ALLOW: ReadonlyArray<readonly [string, string]> = [
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
  ['/v1/cluster', 'GET'],
  ['/v1/stream', 'GET'],
  ['/health', 'GET'],
  ['/ready', 'GET'],
  ['/metrics', 'GET'],
  ['/openapi.json', 'GET'],
  ['/', 'GET']
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

  // Every shard's registry, merged. Before the router exists (early in recovery) only this shard's.
  app.get('/metrics', (res: HttpResponse) => {
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    const router = ctx.router as Router | null
    const gathered = router === null ? ctx.threadMetrics.snapshot().then(own => [own]) : router.controlAll('metrics', null)
    gathered.then(async (perShard) => await renderMetrics(perShard as Parameters<typeof renderMetrics>[0])).then((text) => {
      if (state.aborted) return
      state.aborted = true
      observeAnswer(res, 200)
      res.cork(() => res.writeHeader('content-type', 'text/plain; version=0.0.4').end(text))
    }, (err: unknown) => replyError(res, state, asCounterdError(err), config.retryAfterSeconds))
  })

  // The ring as this node sees it: members, their URLs and the partitions each owns.
  app.get('/v1/cluster', (res: HttpResponse) => {
    const state: Abortable = { aborted: false }
    const view = ctx.ring?.current ?? null
    if (ctx.ring === null) {
      // Embedded storage: a single node, not part of any ring; it owns every partition.
      const all = Array.from({ length: config.partitions }, (_, p) => p)
      replyJson(res, state, 200, JSON.stringify({ cluster: null, generation: 0, self: ctx.selfUrl, members: [{ id: ctx.selfUrl, url: ctx.selfUrl, partitions: all }] }))
      return
    }
    if (view === null) {
      replyError(res, state, new CounterdError('not_ready', 'this node has not been given its place in the ring yet'), config.retryAfterSeconds)
      return
    }
    const members = view.members.map((m) => ({ id: m.id, url: m.url, partitions: [] as number[] }))
    const byId = new Map(members.map((m) => [m.id, m]))
    view.owners.forEach((owner, p) => byId.get(owner)?.partitions.push(p))
    replyJson(res, state, 200, JSON.stringify({ cluster: view.cluster, generation: view.generation, self: ctx.ring.self, members }))
  })

  app.get('/', (res: HttpResponse) => {
    observeAnswer(res, 200)
    res.cork(() => res.writeHeader('content-type', 'text/html; charset=utf-8').end(LIVE_PAGE_HTML))
  })

  app.get('/openapi.json', (res: HttpResponse) => {
    replyJson(res, { aborted: false }, 200, OPENAPI_JSON)
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
