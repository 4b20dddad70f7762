// HTTP routes beyond plain counts: likes, samples, top-K, quotas, and replication between regions.
// Same rules as http.ts: copy from req at once, onAborted first, validate everything before any op.
import { OP_HAS_LIKED, OP_LIKE, OP_LIKE_COUNT, OP_UNLIKE } from '../core/op-codec'
import type { PartResult } from '../../actors/host-protocol'
import { CounterdError } from '../core/errors'
import { fnv1a32, isValidId, isValidType } from '../core/keys'
import { decodeFrames, decodeRecord, encodeFrames } from '../core/record-codec'
import type { DeltaRecord } from '../core/records'
import type { UnitOwner } from '../routing/router'
import { admit, type FrontContext } from './context'
import { FieldPending, failRequest, readBody, readJsonBody } from './http'
import { RateLimiter } from './rate-limit'
import { replyError, replyJson, type Abortable } from './replies'
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws'

interface LikeTarget { user: string, type: string, id: string }

function likeTarget (user: unknown, type: unknown, id: unknown, needUser: boolean): LikeTarget | CounterdError {
  if (typeof type !== 'string' || !isValidType(type)) return new CounterdError('invalid_type', 'item_type must match [a-z0-9_-]{1,32}')
  if (typeof id !== 'string' || !isValidId(id)) return new CounterdError('invalid_id', 'item_id must match [A-Za-z0-9_.:-]{1,128}')
  if (needUser && (typeof user !== 'string' || !isValidId(user))) return new CounterdError('invalid_user_id')
  return { user: typeof user === 'string' ? user : '', type, id }
}

/** A batch of like counts, one owner per item, one reply. */
class CountsQuery implements Abortable {
  aborted = false
  remaining: number
  readonly counts: Record<string, number> = {}
  constructor (readonly ctx: FrontContext, readonly res: HttpResponse, n: number) { this.remaining = n }
  answer (key: string, value: number, err: CounterdError | null): void {
    if (err !== null) { replyError(this.res, this, err, this.ctx.config.retryAfterSeconds); return }
    this.counts[key] = value
    if (--this.remaining === 0) replyJson(this.res, this, 200, JSON.stringify({ counts: this.counts }))
  }
}

class CountsItem implements UnitOwner {
  constructor (readonly q: CountsQuery, readonly key: string) {}
  onPart (res: PartResult | null, first: number, _end: number, _dup: boolean, err: CounterdError | null): void {
    this.q.answer(this.key, res === null ? 0 : (res.values as Float64Array)[first], err ?? (res === null ? new CounterdError('internal') : null))
  }
}

export function installFeatureRoutes (app: TemplatedApp, ctx: FrontContext): void {
  const { config, router, metrics } = ctx
  const limiter = new RateLimiter(config.likesPerMinute, config.dedupWindowMs, config.dedupMaxEntries)
  const fail = (res: HttpResponse, state: Abortable, err: CounterdError): void => failRequest(ctx, res, state, err)

  const likeRoute = (path: string, kind: number, liked: boolean): void => {
    app.post(path, (res: HttpResponse, req: HttpRequest) => {
      metrics.httpRequests++
      const idem = req.getHeader('idempotency-key')
      const contentLength = req.getHeader('content-length')
      const state: Abortable = { aborted: false }
      res.onAborted(() => { state.aborted = true })
      readJsonBody(ctx, res, state, contentLength, (parsed) => {
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
          fail(res, state, new CounterdError('invalid_body', 'body must be {"user_id","item_id","item_type"}'))
          return
        }
        const b = parsed as Record<string, unknown>
        const t = likeTarget(b.user_id, b.item_type, b.item_id, true)
        if (t instanceof CounterdError) { fail(res, state, t); return }
        if (idem !== '' && !/^[\x21-\x7e]{1,128}$/.test(idem)) { fail(res, state, new CounterdError('invalid_idempotency_key')); return }
        const refused = admit(ctx, 1)
        if (refused !== null) { fail(res, state, refused); return }
        const wait = limiter.take(t.user, idem, Date.now())
        if (wait > 0) {
          fail(res, state, new CounterdError('rate_limited', `user ${t.user} is over ${config.likesPerMinute} likes per minute; retry in ${Math.ceil(wait / 1000)} s`))
          return
        }
        const pending = new FieldPending(ctx, res, { user_id: t.user, item_id: t.id, item_type: t.type, liked }, 'count')
        res.onAborted(() => { pending.aborted = true; state.aborted = true })
        const item = t.type + ':' + t.id
        router.beginUnit(pending, idem === '' ? null : item + '\n' + (liked ? 'like:' : 'unlike:') + t.user + '\n' + idem, -1, true)
        router.write(kind, fnv1a32(item), item, 0, t.user)
        router.endUnit()
      })
    })
  }
  likeRoute('/v1/like', OP_LIKE, true)
  likeRoute('/v1/unlike', OP_UNLIKE, false)

  app.get('/v1/count', (res: HttpResponse, req: HttpRequest) => {
    metrics.httpRequests++
    const t = likeTarget('', req.getQuery('item_type'), req.getQuery('item_id'), false)
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    if (t instanceof CounterdError) { fail(res, state, t); return }
    const refused = admit(ctx, 1, 'read')
    if (refused !== null) { fail(res, state, refused); return }
    const pending = new FieldPending(ctx, res, { item_id: t.id, item_type: t.type }, 'count')
    res.onAborted(() => { pending.aborted = true })
    const item = t.type + ':' + t.id
    router.read(OP_LIKE_COUNT, fnv1a32(item), item, pending)
  })

  app.get('/v1/has-liked', (res: HttpResponse, req: HttpRequest) => {
    metrics.httpRequests++
    const t = likeTarget(req.getQuery('user_id'), req.getQuery('item_type'), req.getQuery('item_id'), true)
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    if (t instanceof CounterdError) { fail(res, state, t); return }
    const refused = admit(ctx, 1, 'read')
    if (refused !== null) { fail(res, state, refused); return }
    const pending = new FieldPending(ctx, res, { user_id: t.user, item_id: t.id, item_type: t.type }, 'liked', true)
    res.onAborted(() => { pending.aborted = true })
    const item = t.type + ':' + t.id
    router.read(OP_HAS_LIKED, fnv1a32(item), item, pending, t.user)
  })

  // Batch like counts: {"items":[{"item_type":"post","item_id":"1"}, ...]} → {"counts":{"post:1":3}}
  app.post('/v1/counts', (res: HttpResponse, req: HttpRequest) => {
    metrics.httpRequests++
    const contentLength = req.getHeader('content-length')
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    readJsonBody(ctx, res, state, contentLength, (parsed) => {
      const items = (parsed !== null && typeof parsed === 'object') ? (parsed as { items?: unknown }).items : undefined
      if (!Array.isArray(items)) { fail(res, state, new CounterdError('invalid_body', 'body must be {"items":[{"item_type","item_id"}, ...]}')); return }
      if (items.length > config.maxQueryKeys) { fail(res, state, new CounterdError('too_many_keys', `at most ${config.maxQueryKeys} items per query, got ${items.length}`)); return }
      const keys: string[] = []
      for (let i = 0; i < items.length; i++) {
        const it = items[i] as Record<string, unknown> | null
        const t = likeTarget('', it?.item_type, it?.item_id, false)
        if (t instanceof CounterdError) { fail(res, state, new CounterdError(t.code, `items[${i}]: ${t.message}`)); return }
        keys.push(t.type + ':' + t.id)
      }
      if (keys.length === 0) { replyJson(res, state, 200, '{"counts":{}}'); return }
      const refused = admit(ctx, keys.length, 'read')
      if (refused !== null) { fail(res, state, refused); return }
      const q = new CountsQuery(ctx, res, keys.length)
      res.onAborted(() => { q.aborted = true; state.aborted = true })
      for (const key of keys) router.read(OP_LIKE_COUNT, fnv1a32(key), key, new CountsItem(q, key))
    })
  })

  app.get('/v1/counter/:type/:id/sample', (res: HttpResponse, req: HttpRequest) => {
    metrics.httpRequests++
    const type = req.getParameter(0)
    const id = req.getParameter(1)
    const nq = req.getQuery('n') ?? ''
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    if (!isValidType(type)) { fail(res, state, new CounterdError('invalid_type')); return }
    if (!isValidId(id)) { fail(res, state, new CounterdError('invalid_id')); return }
    const n = nq === '' ? config.sampleSize : Number(nq)
    if (!/^\d*$/.test(nq) || !Number.isInteger(n) || n < 1 || n > config.sampleSize) {
      fail(res, state, new CounterdError('invalid_argument', `n must be an integer from 1 to ${config.sampleSize}`))
      return
    }
    const refused = admit(ctx, 1, 'read')
    if (refused !== null) { fail(res, state, refused); return }
    const key = type + ':' + id
    router.sample(fnv1a32(key), key, n).then(
      (sample) => replyJson(res, state, 200, JSON.stringify({ type, id, sample })),
      (err: CounterdError) => fail(res, state, err))
  })

  app.get('/v1/top', (res: HttpResponse, req: HttpRequest) => {
    metrics.httpRequests++
    const type = req.getQuery('type') ?? ''
    const kq = req.getQuery('k') ?? ''
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    if (type !== '' && !isValidType(type)) { fail(res, state, new CounterdError('invalid_type')); return }
    const k = kq === '' ? 10 : Number(kq)
    if (!/^\d*$/.test(kq) || !Number.isInteger(k) || k < 1 || k > 1000) { fail(res, state, new CounterdError('invalid_argument', 'k must be an integer from 1 to 1000')); return }
    const refused = admit(ctx, 1, 'read')
    if (refused !== null) { fail(res, state, refused); return }
    router.top(type === '' ? null : type, k).then((top) => {
      const out = top.map(({ key, rate }) => {
        const colon = key.indexOf(':')
        return { key, type: key.slice(0, colon), id: key.slice(colon + 1), rate_per_sec: Math.round(rate * 1000) / 1000 }
      })
      replyJson(res, state, 200, JSON.stringify({ type: type === '' ? null : type, k, top: out }))
    }, (err: CounterdError) => fail(res, state, err))
  })

  app.get('/v1/quota', (res: HttpResponse, req: HttpRequest) => {
    metrics.httpRequests++
    const user = req.getQuery('user_id') ?? ''
    const state: Abortable = { aborted: false }
    if (!isValidId(user)) { fail(res, state, new CounterdError('invalid_user_id')); return }
    const q = limiter.quota(user, Date.now())
    replyJson(res, state, 200, JSON.stringify({ user_id: user, limit_per_minute: q.limit, remaining: q.remaining, retry_after_ms: q.retryAfterMs }))
  })

  // Replication between regions (docs/replication.md): this replica's totals out, another's in.
  app.get('/v1/replication/state', (res: HttpResponse) => {
    metrics.httpRequests++
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    const refused = admit(ctx, 1, 'read')
    if (refused !== null) { fail(res, state, refused); return }
    router.exportTotals().then((records) => {
      if (state.aborted) return
      state.aborted = true
      res.cork(() => res.writeHeader('content-type', 'application/octet-stream').end(encodeFrames(records)))
    }, (err: CounterdError) => fail(res, state, err))
  })

  app.post('/v1/replication/merge', (res: HttpResponse, req: HttpRequest) => {
    metrics.httpRequests++
    const contentLength = req.getHeader('content-length')
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    const limited = { ...ctx, config: { ...config, maxBodyBytes: config.maxFrameBytes * 64 } }
    readBody(limited, res, state, contentLength, (body) => {
      if (body === null) return
      // Fully decoded here: the records cross to the actor hosts as plain objects.
      const records: DeltaRecord[] = []
      let bad: string | null = null
      const good = decodeFrames(body, (r) => {
        try {
          records.push(decodeRecord(r.payload))
        } catch (err) {
          bad ??= `record ${records.length}: ${(err as Error).message}`
        }
      })
      if (good !== body.length) bad ??= `bytes ${good}..${body.length} are not whole records`
      bad ??= validateReplicaRecords(records, config.partitions)
      if (bad !== null) { fail(res, state, new CounterdError('invalid_body', bad)); return }
      const refused = admit(ctx, records.length)
      if (refused !== null) { fail(res, state, refused); return }
      router.merge(records).then(
        (changed) => replyJson(res, state, 200, JSON.stringify({ records: records.length, countersChanged: changed })),
        (err: CounterdError) => fail(res, state, err))
    })
  })
}

function validateReplicaRecords (records: DeltaRecord[], partitions: number): string | null {
  for (let i = 0; i < records.length; i++) {
    const r = records[i]
    if (r.partition >= partitions) return `record ${i}: partition ${r.partition} does not exist here (PARTITIONS=${partitions})`
    if (r.replica === undefined || !/^[A-Za-z0-9_.:-]{1,64}$/.test(r.replica)) return `record ${i}: no valid replica id`
    if (r.ps === undefined || r.ns === undefined) return `record ${i}: carries no replica totals`
    for (let k = 0; k < r.keys.length; k++) {
      if (fnv1a32(r.keys[k]) % partitions !== r.partition) return `record ${i}: key ${r.keys[k]} is not in partition ${r.partition}`
      if (!Number.isSafeInteger(r.ps[k]) || r.ps[k] < 0 || !Number.isSafeInteger(r.ns[k]) || r.ns[k] < 0) return `record ${i}: totals of ${r.keys[k]} are not integers in 0..2^53-1`
    }
  }
  return null
}
