// HTTP API v1 for plain counters on uWebSockets.js. Each handler copies what it needs from `req`
// synchronously (uWS invalidates it on return), installs onAborted before anything asynchronous,
// validates everything before any op reaches the router, and answers errors as
// {"error":{code,message}}.
import { CounterdError } from '../core/errors'
import type { HistoryPoint } from '../core/history'
import { valueParts } from '../core/hot-keys'
import { jsonIdString } from '../core/json-ids'
import { fnv1a32, isValidId, isValidType, splitKey } from '../core/keys'
import { prefixOf, qualify } from '../core/namespaces'
import { isValidDelta } from '../core/frame-ops'
import { OP_GET, OP_GET_PART, OP_INCR, OP_INCR_ACTOR, OP_RATE, OP_RESET, OP_UNIQUE } from '../core/op-codec'
import { failRequest, parseJsonBody, readBody, readJsonBody } from './body'
import { admit, overloaded, type FrontContext } from './context'
import { AckReply, FieldReply, KeysReply, PartsReply, ResetReply, ValueReply } from './pending'
import { replyJson, type Abortable } from './replies'
import { F_HTTP_REQUESTS } from './status-board'
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws'

export const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]{1,128}$/

export function validateTypeId (type: string, id: string): CounterdError | null {
  if (!isValidType(type)) return new CounterdError('invalid_type')
  if (!isValidId(id)) return new CounterdError('invalid_id')
  return null
}

const STEPS = new Set(['minute', 'hour', 'day'])

/** from/to: ms since the Unix epoch or ISO 8601; defaults: the last hour; step: minute|hour|day. */
export function parseHistoryRange (fromQ: string, toQ: string, stepQ: string, now: number): { from: number, to: number, step: 'minute' | 'hour' | 'day' } | CounterdError {
  const time = (s: string, name: string, dflt: number): number | CounterdError => {
    if (s === '') return dflt
    const n = /^\d+$/.test(s) ? Number(s) : Date.parse(decodeURIComponent(s))
    return Number.isSafeInteger(n) && n >= 0 ? n : new CounterdError('invalid_argument', `${name} must be ms since the Unix epoch or an ISO 8601 time, got ${JSON.stringify(s)}`)
  }
  const to = time(toQ, 'to', now)
  if (to instanceof CounterdError) return to
  const from = time(fromQ, 'from', to - 3_600_000)
  if (from instanceof CounterdError) return from
  if (from >= to) return new CounterdError('invalid_argument', 'from must be before to')
  const step = stepQ === '' ? 'minute' : stepQ
  if (!STEPS.has(step)) return new CounterdError('invalid_argument', `step must be minute, hour or day, got ${JSON.stringify(stepQ)}`)
  return { from, to, step: step as 'minute' | 'hour' | 'day' }
}

/** The shard that owns a key's partition. */
export function shardOfKey (ctx: FrontContext, key: string): { hash: number, shard: number } {
  const hash = fnv1a32(key)
  return { hash, shard: ctx.router.shardOf(hash % ctx.config.partitions) }
}

export function installCounterRoutes (app: TemplatedApp, ctx: FrontContext): void {
  const { config, metrics } = ctx
  const fail = (res: HttpResponse, state: Abortable, err: CounterdError): void => failRequest(ctx, res, state, err)

  app.post('/v1/counter/:type/:id/increment', (res: HttpResponse, req: HttpRequest, ns = '') => {
    metrics.add(F_HTTP_REQUESTS)
    const type = req.getParameter(0)
    const id = req.getParameter(1)
    const idem = req.getHeader('idempotency-key')
    const contentLength = req.getHeader('content-length')
    // Prefer: return=minimal (RFC 7240): 204 without the new value, which lets a hot counter's
    // increment go to one of its sub-counters (the value needs every part).
    const minimal = /\breturn=minimal\b/i.test(req.getHeader('prefer'))
    const pending = minimal ? new AckReply(ctx, res) : new ValueReply(ctx, res, type, id, true, qualify(ns, type + ':' + id))
    res.onAborted(() => { pending.aborted = true })
    readBody(ctx, res, pending, contentLength, (body) => {
      if (body === null) return
      const bad = validateTypeId(type, id)
      if (bad !== null) { fail(res, pending, bad); return }
      if (idem !== '' && !IDEMPOTENCY_KEY_RE.test(idem)) { fail(res, pending, new CounterdError('invalid_idempotency_key')); return }
      let by = 1
      let actor: string | null = null
      if (body.length > 0) {
        let parsed: unknown
        try { parsed = parseJsonBody(body) } catch (err) { fail(res, pending, err as CounterdError); return }
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
          fail(res, pending, new CounterdError('invalid_body', 'body must be a JSON object such as {"by": 5}'))
          return
        }
        const given = (parsed as { by?: unknown }).by
        if (given !== undefined) {
          if (!isValidDelta(given)) { fail(res, pending, new CounterdError('invalid_delta')); return }
          by = given
        }
        const named = (parsed as { actor?: unknown }).actor
        if (named !== undefined) {
          const a = jsonIdString(named, 'actor', 'actor')
          if (a instanceof CounterdError) { fail(res, pending, a); return }
          actor = a
        }
      }
      const refused = admit(ctx)
      if (refused !== null) { fail(res, pending, refused); return }
      const key = qualify(ns, type + ':' + id)
      ctx.router.beginUnit(pending, idem === '' ? null : key + '\n' + idem, -1, !minimal)
      ctx.router.op(actor === null ? OP_INCR : OP_INCR_ACTOR, fnv1a32(key), key, by, actor)
      if (!ctx.router.endUnit()) fail(res, pending, overloaded())
    })
  })

  app.get('/v1/counter/:type/:id', (res: HttpResponse, req: HttpRequest, ns = '') => {
    metrics.add(F_HTTP_REQUESTS)
    const type = req.getParameter(0)
    const id = req.getParameter(1)
    const wantReplicas = req.getQuery('replicas') === 'true'
    const showShards = req.getQuery('shards') === 'true'
    const key = qualify(ns, type + ':' + id)
    const split = ctx.router.hot?.get(key)
    if (split !== undefined || showShards) {
      // A split counter: every part read and summed (src/core/hot-keys.ts).
      const state: Abortable = { aborted: false }
      res.onAborted(() => { state.aborted = true })
      const bad = validateTypeId(type, id) ?? admit(ctx)
      if (bad !== null) { fail(res, state, bad); return }
      const parts = new PartsReply(ctx, res, state, type, id, split, key, fnv1a32(key), showShards)
      if (!parts.send(ctx.router)) fail(res, state, overloaded())
      return
    }
    const pending = new ValueReply(ctx, res, type, id, false, key)
    res.onAborted(() => { pending.aborted = true })
    const bad = validateTypeId(type, id) ?? admit(ctx)
    if (bad !== null) { fail(res, pending, bad); return }
    const { hash, shard } = shardOfKey(ctx, key)
    if (wantReplicas) {
      ctx.router.control(shard, 'replicas', { key }).then((replicas) => {
        const list = replicas as Array<{ replica: string, p: number, n: number }>
        const value = list.reduce((v, r) => v + r.p - r.n, 0)
        replyJson(res, pending, 200, JSON.stringify({ type, id, value, replicas: list }))
      }, (err: CounterdError) => fail(res, pending, err))
      return
    }
    ctx.router.beginUnit(pending, null, -1, true, true)
    ctx.router.op(OP_GET, hash, key)
    if (!ctx.router.endUnit()) fail(res, pending, overloaded())
  })

  // Single-number reads of a counter's features: unique actors, recent rate.
  const numberRoute = (suffix: string, kind: number, field: string): void => {
    app.get(`/v1/counter/:type/:id/${suffix}`, (res: HttpResponse, req: HttpRequest, ns = '') => {
      metrics.add(F_HTTP_REQUESTS)
      const type = req.getParameter(0)
      const id = req.getParameter(1)
      const pending = new FieldReply(ctx, res, { type, id }, field)
      res.onAborted(() => { pending.aborted = true })
      const bad = validateTypeId(type, id) ?? admit(ctx)
      if (bad !== null) { fail(res, pending, bad); return }
      const key = qualify(ns, type + ':' + id)
      ctx.router.beginUnit(pending, null, -1, true, true)
      ctx.router.op(kind, fnv1a32(key), key)
      // A split counter's rate is its parts' (unique counts stay the home's: increments with an actor go there).
      const split = kind === OP_RATE ? ctx.router.hot?.get(key) : undefined
      if (split !== undefined) for (let j = 0; j < split.names.ways; j++) ctx.router.op(OP_RATE, split.names.subHashes[j], split.names.subs[j])
      if (!ctx.router.endUnit()) fail(res, pending, overloaded())
    })
  }
  numberRoute('unique', OP_UNIQUE, 'unique')
  numberRoute('rate', OP_RATE, 'rate_per_sec')

  app.get('/v1/counter/:type/:id/history', (res: HttpResponse, req: HttpRequest, ns = '') => {
    metrics.add(F_HTTP_REQUESTS)
    const type = req.getParameter(0)
    const id = req.getParameter(1)
    const q = { from: req.getQuery('from') ?? '', to: req.getQuery('to') ?? '', step: req.getQuery('step') ?? '' }
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    const bad = validateTypeId(type, id) ?? admit(ctx)
    if (bad !== null) { fail(res, state, bad); return }
    const range = parseHistoryRange(q.from, q.to, q.step, Date.now())
    if (range instanceof CounterdError) { fail(res, state, range); return }
    const key = qualify(ns, type + ':' + id)
    historyOf(ctx, key, range).then(
      (points) => replyJson(res, state, 200, JSON.stringify({ type, id, step: range.step, from: range.from, to: range.to, points })),
      (err: CounterdError) => fail(res, state, err))
  })

  app.del('/v1/counter/:type/:id', (res: HttpResponse, req: HttpRequest, ns = '') => {
    metrics.add(F_HTTP_REQUESTS)
    const type = req.getParameter(0)
    const id = req.getParameter(1)
    const pending = new ResetReply(ctx, res, type, id)
    res.onAborted(() => { pending.aborted = true })
    const bad = validateTypeId(type, id) ?? admit(ctx)
    if (bad !== null) { fail(res, pending, bad); return }
    const key = qualify(ns, type + ':' + id)
    ctx.router.beginUnit(pending, null, -1, true)
    ctx.router.op(OP_RESET, fnv1a32(key), key)
    const split = ctx.router.hot?.get(key)
    if (split !== undefined) for (const part of valueParts(split.names)) ctx.router.op(OP_RESET, fnv1a32(part), part)
    if (!ctx.router.endUnit()) fail(res, pending, overloaded())
  })

  app.post('/v1/counters/query', (res: HttpResponse, req: HttpRequest, ns = '') => {
    metrics.add(F_HTTP_REQUESTS)
    const contentLength = req.getHeader('content-length')
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    readJsonBody(ctx, res, state, contentLength, (parsed) => {
      const keys = (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) ? (parsed as { keys?: unknown }).keys : undefined
      if (!Array.isArray(keys)) { fail(res, state, new CounterdError('invalid_body', 'body must be {"keys": ["type:id", ...]}')); return }
      if (keys.length > config.maxQueryKeys) { fail(res, state, new CounterdError('too_many_keys', `at most ${config.maxQueryKeys} keys per query, got ${keys.length}`)); return }
      for (let i = 0; i < keys.length; i++) {
        if (typeof keys[i] !== 'string' || splitKey(keys[i] as string) === null) {
          fail(res, state, new CounterdError('invalid_key', `keys[${i}] must be "type:id" with type [a-z0-9_-]{1,32} and id [A-Za-z0-9_.:-]{1,128}`))
          return
        }
      }
      if (keys.length === 0) { replyJson(res, state, 200, '{"values":{}}'); return }
      const refused = admit(ctx)
      if (refused !== null) { fail(res, state, refused); return }
      readKeys(ctx, res, state, keys as string[], OP_GET, 'values', ns)
    })
  })
}

/**
 * A counter's history from the shard that owns it; a split counter's sums the histories of its
 * parts (home + Σ sub + drained − absorbed: a merge step's moves cancel out within a minute).
 */
async function historyOf (ctx: FrontContext, key: string, range: { from: number, to: number, step: string }): Promise<HistoryPoint[]> {
  const ask = async (part: string): Promise<HistoryPoint[]> =>
    await ctx.router.control(shardOfKey(ctx, part).shard, 'history', { key: part, from: range.from, to: range.to, step: range.step }) as HistoryPoint[]
  const split = ctx.router.hot?.get(key)
  if (split === undefined) return await ask(key)
  const n = split.names
  const parts = [key, ...valueParts(n)]
  const answers = await Promise.all(parts.map(ask))
  const sums = new Map<number, number>()
  answers.forEach((points, i) => {
    const sign = i > 2 * n.ways ? -1 : 1
    for (const p of points) sums.set(p.ts, (sums.get(p.ts) ?? 0) + sign * p.value)
  })
  return [...sums].filter(([, v]) => v !== 0).sort((a, b) => a[0] - b[0]).map(([ts, value]) => ({ ts, value }))
}

/** One read op per key (of namespace `ns`), answered as {[wrapper]: {key: value}} with the keys as given. */
export function readKeys (ctx: FrontContext, res: HttpResponse, state: Abortable, keys: string[], kind: number, wrapper: string, ns: string): void {
  const router = ctx.router
  const pending = new KeysReply(ctx, res, keys, wrapper, router.shards, prefixOf(ns))
  res.onAborted(() => { pending.aborted = true; state.aborted = true })
  router.beginUnit(pending, null, -1, true, true)
  for (let i = 0; i < keys.length; i++) {
    const key = qualify(ns, keys[i])
    const { hash, shard } = shardOfKey(ctx, key)
    const split = kind === OP_GET ? router.hot?.get(key) : undefined
    pending.added(shard, i)
    router.op(split === undefined ? kind : OP_GET_PART, hash, key)
    if (split !== undefined) {
      // A split counter's value is the sum of its parts (src/core/hot-keys.ts).
      const n = split.names
      for (const part of valueParts(n)) {
        const h = fnv1a32(part)
        pending.added(router.shardOf(h % router.partitions), i, n.absorbed.includes(part))
        router.op(OP_GET, h, part)
      }
    }
  }
  if (!router.endUnit()) pending.fail(overloaded())
}
