// HTTP API v1 on uWebSockets.js. Each handler copies what it needs from `req` synchronously
// (uWS invalidates it on return), installs onAborted before anything asynchronous, validates
// everything before any op reaches the router, and answers errors as {"error":{code,message}}.
import { OP_GET, OP_RATE, OP_RESET, OP_UNIQUE } from '../core/op-codec'
import type { PartResult } from '../../actors/host-protocol'
import { CounterdError } from '../core/errors'
import { fnv1a32, isValidId, isValidType, splitKey } from '../core/keys'
import { isValidDelta } from '../core/frame-ops'
import type { UnitOwner } from '../routing/router'
import { admit, type FrontContext } from './context'
import { replyError, replyJson, type Abortable } from './replies'
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws'

const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]{1,128}$/

/** One HTTP request waiting for its actor host. */
class Pending implements Abortable, UnitOwner {
  aborted = false
  constructor (readonly ctx: FrontContext, readonly res: HttpResponse, readonly type: string, readonly id: string) {}

  fail (err: CounterdError): void {
    this.ctx.metrics.countError(this.ctx.metrics.httpErrors, err.code)
    replyError(this.res, this, err, this.ctx.config.retryAfterSeconds)
  }

  onPart (res: PartResult | null, first: number, _end: number, _dup: boolean, err: CounterdError | null): void {
    if (err !== null || res === null) { this.fail(err ?? new CounterdError('internal')); return }
    const value = (res.values as Float64Array)[first]
    if (Number.isNaN(value)) { this.fail(new CounterdError('value_out_of_range')); return }
    replyJson(this.res, this, 200, `{"type":"${this.type}","id":"${this.id}","value":${value}}`)
  }
}

/** A read answered as {…fields, [field]: value}. */
export class FieldPending implements Abortable, UnitOwner {
  aborted = false
  constructor (readonly ctx: FrontContext, readonly res: HttpResponse, readonly fields: Record<string, string | boolean>,
    readonly field: string, readonly asBoolean = false) {}

  onPart (res: PartResult | null, first: number, _end: number, _dup: boolean, err: CounterdError | null): void {
    if (err !== null || res === null) {
      const e = err ?? new CounterdError('internal')
      this.ctx.metrics.countError(this.ctx.metrics.httpErrors, e.code)
      replyError(this.res, this, e, this.ctx.config.retryAfterSeconds)
      return
    }
    const v = (res.values as Float64Array)[first]
    replyJson(this.res, this, 200, JSON.stringify({ ...this.fields, [this.field]: this.asBoolean ? v === 1 : v }))
  }
}

class IncrementPending extends Pending {
  override onPart (res: PartResult | null, first: number, end: number, dup: boolean, err: CounterdError | null): void {
    if (err === null && res !== null && !Number.isNaN((res.values as Float64Array)[first])) this.ctx.metrics.incrementsAcked++
    super.onPart(res, first, end, dup, err)
  }
}

/** A batch read: one owner per key, all answering into one reply. */
class Query implements Abortable {
  aborted = false
  remaining: number
  readonly values: number[]
  constructor (readonly ctx: FrontContext, readonly res: HttpResponse, readonly keys: string[]) {
    this.remaining = keys.length
    this.values = new Array(keys.length).fill(0)
  }

  answer (index: number, value: number, err: CounterdError | null): void {
    if (err !== null) {
      this.ctx.metrics.countError(this.ctx.metrics.httpErrors, err.code)
      replyError(this.res, this, err, this.ctx.config.retryAfterSeconds)
      return
    }
    this.values[index] = value
    if (--this.remaining > 0) return
    const out: Record<string, number> = {}
    for (let i = 0; i < this.keys.length; i++) out[this.keys[i]] = this.values[i]
    replyJson(this.res, this, 200, JSON.stringify({ values: out }))
  }
}

class QueryKey implements UnitOwner {
  constructor (readonly query: Query, readonly index: number) {}
  onPart (res: PartResult | null, first: number, _end: number, _dup: boolean, err: CounterdError | null): void {
    this.query.answer(this.index, res === null ? 0 : (res.values as Float64Array)[first], err ?? (res === null ? new CounterdError('internal') : null))
  }
}

/** Reads a request body up to the configured limit; `done` gets null after a 413 was sent. */
export function readBody (ctx: FrontContext, res: HttpResponse, state: Abortable, contentLength: string, done: (body: Buffer | null) => void): void {
  const limit = ctx.config.maxBodyBytes
  const declared = contentLength === '' ? 0 : Number(contentLength)
  const tooLarge = (): void => {
    ctx.metrics.countError(ctx.metrics.httpErrors, 'payload_too_large')
    replyError(res, state, new CounterdError('payload_too_large', `body is larger than ${limit} bytes`), ctx.config.retryAfterSeconds)
    done(null)
  }
  if (declared > limit) { tooLarge(); return }
  const chunks: Buffer[] = []
  let size = 0
  let over = false
  res.onData((chunk, isLast) => {
    if (over) return
    size += chunk.byteLength
    if (size > limit) { over = true; tooLarge(); return }
    chunks.push(Buffer.from(chunk.slice(0))) // uWS reuses the chunk's memory after this call
    if (isLast) done(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))
  })
}

/** Reads a JSON body (size limit, then JSON.parse) and hands the parsed value on; errors are answered. */
export function readJsonBody (ctx: FrontContext, res: HttpResponse, state: Abortable, contentLength: string, use: (parsed: unknown) => void): void {
  readBody(ctx, res, state, contentLength, (body) => {
    if (body === null) return
    let parsed: unknown
    try { parsed = parseJsonBody(body) } catch (err) { failRequest(ctx, res, state, err as CounterdError); return }
    use(parsed)
  })
}

/** Answers a request with an error and counts it. */
export function failRequest (ctx: FrontContext, res: HttpResponse, state: Abortable, err: CounterdError): void {
  ctx.metrics.countError(ctx.metrics.httpErrors, err.code)
  replyError(res, state, err, ctx.config.retryAfterSeconds)
}

export function parseJsonBody (body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'))
  } catch {
    throw new CounterdError('malformed_json')
  }
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

function validateTypeId (type: string, id: string): CounterdError | null {
  if (!isValidType(type)) return new CounterdError('invalid_type')
  if (!isValidId(id)) return new CounterdError('invalid_id')
  return null
}

export function installHttpRoutes (app: TemplatedApp, ctx: FrontContext): void {
  const { config, router, metrics } = ctx
  const fail = (res: HttpResponse, state: Abortable, err: CounterdError): void => failRequest(ctx, res, state, err)

  app.post('/v1/counter/:type/:id/increment', (res: HttpResponse, req: HttpRequest) => {
    metrics.httpRequests++
    const type = req.getParameter(0)
    const id = req.getParameter(1)
    const idem = req.getHeader('idempotency-key')
    const contentLength = req.getHeader('content-length')
    const pending = new IncrementPending(ctx, res, type, id)
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
          if (typeof named !== 'string' || !isValidId(named)) { fail(res, pending, new CounterdError('invalid_actor')); return }
          actor = named
        }
      }
      const refused = admit(ctx, 1)
      if (refused !== null) { fail(res, pending, refused); return }
      const key = type + ':' + id
      router.beginUnit(pending, idem === '' ? null : key + '\n' + idem, -1, true)
      router.increment(fnv1a32(key), key, by, actor)
      router.endUnit()
    })
  })

  app.get('/v1/counter/:type/:id', (res: HttpResponse, req: HttpRequest) => {
    metrics.httpRequests++
    const type = req.getParameter(0)
    const id = req.getParameter(1)
    const pending = new Pending(ctx, res, type, id)
    const wantReplicas = req.getQuery('replicas') === 'true'
    res.onAborted(() => { pending.aborted = true })
    const bad = validateTypeId(type, id) ?? admit(ctx, 1, 'read')
    if (bad !== null) { fail(res, pending, bad); return }
    const key = type + ':' + id
    const hash = fnv1a32(key)
    if (!wantReplicas) { router.read(OP_GET, hash, key, pending); return }
    router.replicas(hash, key).then((replicas) => {
      const value = replicas.reduce((v, r) => v + r.p - r.n, 0)
      replyJson(res, pending, 200, JSON.stringify({ type, id, value, replicas }))
    }, (err: CounterdError) => fail(res, pending, err))
  })

  // Single-number reads of a counter's features: unique actors, recent rate.
  const numberRoute = (suffix: string, kind: number, field: string): void => {
    app.get(`/v1/counter/:type/:id/${suffix}`, (res: HttpResponse, req: HttpRequest) => {
      metrics.httpRequests++
      const type = req.getParameter(0)
      const id = req.getParameter(1)
      const pending = new FieldPending(ctx, res, { type, id }, field)
      res.onAborted(() => { pending.aborted = true })
      const bad = validateTypeId(type, id) ?? admit(ctx, 1, 'read')
      if (bad !== null) { fail(res, pending, bad); return }
      const key = type + ':' + id
      router.read(kind, fnv1a32(key), key, pending)
    })
  }
  numberRoute('unique', OP_UNIQUE, 'unique')
  numberRoute('rate', OP_RATE, 'rate_per_sec')

  app.get('/v1/counter/:type/:id/history', (res: HttpResponse, req: HttpRequest) => {
    metrics.httpRequests++
    const type = req.getParameter(0)
    const id = req.getParameter(1)
    const q = { from: req.getQuery('from') ?? '', to: req.getQuery('to') ?? '', step: req.getQuery('step') ?? '' }
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    const bad = validateTypeId(type, id) ?? admit(ctx, 1, 'read')
    if (bad !== null) { fail(res, state, bad); return }
    const range = parseHistoryRange(q.from, q.to, q.step, Date.now())
    if (range instanceof CounterdError) { fail(res, state, range); return }
    const key = type + ':' + id
    router.history(fnv1a32(key), key, range.from, range.to, range.step).then(
      (points) => replyJson(res, state, 200, JSON.stringify({ type, id, step: range.step, from: range.from, to: range.to, points })),
      (err: CounterdError) => fail(res, state, err))
  })

  app.del('/v1/counter/:type/:id', (res: HttpResponse, req: HttpRequest) => {
    metrics.httpRequests++
    const type = req.getParameter(0)
    const id = req.getParameter(1)
    const pending = new Pending(ctx, res, type, id)
    res.onAborted(() => { pending.aborted = true })
    const bad = validateTypeId(type, id) ?? admit(ctx, 1)
    if (bad !== null) { fail(res, pending, bad); return }
    const key = type + ':' + id
    router.beginUnit(pending, null, -1, true)
    router.write(OP_RESET, fnv1a32(key), key)
    router.endUnit()
  })

  app.post('/v1/counters/query', (res: HttpResponse, req: HttpRequest) => {
    metrics.httpRequests++
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
      const refused = admit(ctx, keys.length, 'read')
      if (refused !== null) { fail(res, state, refused); return }
      const query = new Query(ctx, res, keys as string[])
      res.onAborted(() => { query.aborted = true; state.aborted = true })
      for (let i = 0; i < keys.length; i++) router.read(OP_GET, fnv1a32(keys[i] as string), keys[i] as string, new QueryKey(query, i))
    })
  })

  app.get('/health', (res: HttpResponse) => {
    replyJson(res, { aborted: false }, 200, '{"status":"ok"}')
  })

  app.get('/ready', (res: HttpResponse) => {
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    ctx.status.readiness().then(({ ready, detail }) => {
      if (ready) replyJson(res, state, 200, JSON.stringify({ status: 'ready', ...detail }))
      else {
        const code = ctx.status.draining ? 'shutting_down' : !ctx.status.ready ? 'not_ready' : 'storage_unavailable'
        const err = code === 'storage_unavailable' ? new CounterdError(code, `storage is failing: ${String(detail.storage)}`) : new CounterdError(code)
        replyJson(res, state, 503, JSON.stringify({ error: err.toWire(), ...detail }), { 'retry-after': String(config.retryAfterSeconds) })
      }
    }, (err: Error) => fail(res, state, new CounterdError('internal', err.message)))
  })

  app.get('/metrics', (res: HttpResponse) => {
    res.cork(() => {
      res.writeHeader('content-type', 'text/plain; version=0.0.4')
      res.end(metrics.render({ inflight_ops: router.inflightOps, inflight_reads: router.inflightReads, ready: ctx.status.ready ? 1 : 0 }))
    })
  })

  // Known paths with the wrong method get 405 and Allow; anything else 404.
  const allow: Array<[string, string]> = [
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
  for (const [pattern, methods] of allow) {
    app.any(pattern, (res: HttpResponse, req: HttpRequest) => {
      const method = req.getMethod().toUpperCase()
      metrics.countError(metrics.httpErrors, 'method_not_allowed')
      replyError(res, { aborted: false }, new CounterdError('method_not_allowed', `${method} is not allowed here; use ${methods}`),
        config.retryAfterSeconds, { allow: methods })
    })
  }
  app.any('/*', (res: HttpResponse, req: HttpRequest) => {
    const url = req.getUrl()
    fail(res, { aborted: false }, new CounterdError('not_found', `no route for ${url}`))
  })
}
