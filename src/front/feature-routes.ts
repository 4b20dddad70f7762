// HTTP routes beyond plain counts: likes, samples, top-K, quotas, and replication between regions.
// Same rules as counter-routes.ts: copy from req at once, onAborted first, validate everything
// before any op.
import { baseOfSub, isPartKey } from '../core/hot-keys'
import { CounterdError } from '../core/errors'
import { jsonIdString } from '../core/json-ids'
import { fnv1a32, isValidId, isValidType } from '../core/keys'
import { qualify, unqualify } from '../core/namespaces'
import { OP_HAS_LIKED, OP_LIKE, OP_LIKE_COUNT, OP_QUOTA_PEEK, OP_QUOTA_TAKE, OP_UNLIKE } from '../core/op-codec'
import { decodeFrames, decodeRecord, encodeFrames } from '../core/record-codec'
import type { DeltaRecord } from '../core/records'
import type { UnitOwner } from '../routing/router'
import { failRequest, readBody, readJsonBody } from './body'
import { admit, askEveryShard, overloaded, type FrontContext } from './context'
import { IDEMPOTENCY_KEY_RE, readKeys, shardOfKey } from './counter-routes'
import { observeAnswer } from './metrics'
import { FieldReply } from './pending'
import { replyJson, type Abortable } from './replies'
import { F_HTTP_REQUESTS } from './status-board'
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws'

interface LikeTarget { user: string, type: string, id: string }

/** The user and item a body or query names; ids may be JSON numbers (src/core/json-ids.ts). */
function likeTarget (user: unknown, type: unknown, id: unknown, needUser: boolean): LikeTarget | CounterdError {
  const t = jsonIdString(type, 'type', 'item_type')
  if (t instanceof CounterdError) return t
  const i = jsonIdString(id, 'id', 'item_id')
  if (i instanceof CounterdError) return i
  if (!needUser) return { user: '', type: t, id: i }
  const u = jsonIdString(user, 'user', 'user_id')
  if (u instanceof CounterdError) return u
  return { user: u, type: t, id: i }
}

/**
 * A like or unlike: first a token from the user's bucket (kept by the shard that owns the user's
 * hash, so a node has one bucket per user), then the op on the item's partition.
 */
class LikeRequest implements UnitOwner {
  parts = 0
  private wait = NaN
  private error: CounterdError | null = null

  constructor (readonly ctx: FrontContext, readonly res: HttpResponse, readonly state: Abortable, readonly t: LikeTarget,
    readonly idem: string, readonly kind: number, readonly ns: string) {}

  onApplied (_shard: number, values: Float64Array | null): void {
    if (values !== null) this.wait = values[0]
  }

  onPartDone (err: CounterdError | null): void {
    this.error ??= err
    if (--this.parts > 0) return
    const { ctx, res, state, t } = this
    if (this.error !== null) { failRequest(ctx, res, state, this.error); return }
    if (this.wait > 0) {
      failRequest(ctx, res, state, new CounterdError('rate_limited', `user ${t.user} is over ${ctx.config.likesPerMinute} likes per minute; retry in ${Math.ceil(this.wait / 1000)} s`))
      return
    }
    if (state.aborted) return
    const liked = this.kind === OP_LIKE
    const pending = new FieldReply(ctx, res, { user_id: t.user, item_id: t.id, item_type: t.type, liked }, 'count')
    res.onAborted(() => { pending.aborted = true; state.aborted = true })
    const item = qualify(this.ns, t.type + ':' + t.id)
    const router = ctx.router
    router.beginUnit(pending, this.idem === '' ? null : item + '\n' + (liked ? 'like:' : 'unlike:') + t.user + '\n' + this.idem, -1, true)
    router.op(this.kind, fnv1a32(item), item, 0, t.user)
    if (!router.endUnit()) pending.fail(overloaded())
  }
}

/** GET /v1/quota: the user's bucket, read where it is kept. */
class QuotaRequest implements UnitOwner, Abortable {
  aborted = false
  parts = 0
  private remaining = 0
  private error: CounterdError | null = null

  constructor (readonly ctx: FrontContext, readonly res: HttpResponse, readonly user: string) {}

  onApplied (_shard: number, values: Float64Array | null): void {
    if (values !== null) this.remaining = values[0]
  }

  onPartDone (err: CounterdError | null): void {
    this.error ??= err
    if (--this.parts > 0) return
    if (this.error !== null) { failRequest(this.ctx, this.res, this, this.error); return }
    const limit = this.ctx.config.likesPerMinute
    replyJson(this.res, this, 200, JSON.stringify({
      user_id: this.user, limit_per_minute: limit, remaining: this.remaining, retry_after_ms: this.remaining > 0 ? 0 : Math.ceil(60_000 / limit)
    }))
  }
}

/** A split counter's sub-counters count for it (their rates add up); its other parts are not listed. */
function mergeHotParts (list: Array<{ key: string, rate: number }>): Array<{ key: string, rate: number }> {
  if (!list.some((t) => isPartKey(t.key))) return list
  const rates = new Map<string, number>()
  for (const t of list) {
    const key = isPartKey(t.key) ? baseOfSub(t.key) : t.key
    if (key !== null) rates.set(key, (rates.get(key) ?? 0) + t.rate)
  }
  return [...rates].map(([key, rate]) => ({ key, rate }))
}

export function installFeatureRoutes (app: TemplatedApp, ctx: FrontContext): void {
  const { config, metrics } = ctx
  const fail = (res: HttpResponse, state: Abortable, err: CounterdError): void => failRequest(ctx, res, state, err)

  const likeRoute = (path: string, kind: number): void => {
    app.post(path, (res: HttpResponse, req: HttpRequest, ns = '') => {
      metrics.add(F_HTTP_REQUESTS)
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
        if (idem !== '' && !IDEMPOTENCY_KEY_RE.test(idem)) { fail(res, state, new CounterdError('invalid_idempotency_key')); return }
        const refused = admit(ctx)
        if (refused !== null) { fail(res, state, refused); return }
        const like = new LikeRequest(ctx, res, state, t, idem, kind, ns)
        // A user's quota is per namespace too: "u42" of one tenant is not "u42" of another.
        const user = qualify(ns, t.user)
        ctx.router.beginUnit(like, null, -1, true, true)
        ctx.router.op(OP_QUOTA_TAKE, fnv1a32(user), user, 0, idem)
        if (!ctx.router.endUnit()) fail(res, state, overloaded())
      })
    })
  }
  likeRoute('/v1/like', OP_LIKE)
  likeRoute('/v1/unlike', OP_UNLIKE)

  app.get('/v1/count', (res: HttpResponse, req: HttpRequest, ns = '') => {
    metrics.add(F_HTTP_REQUESTS)
    const t = likeTarget('', req.getQuery('item_type'), req.getQuery('item_id'), false)
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    if (t instanceof CounterdError) { fail(res, state, t); return }
    const refused = admit(ctx)
    if (refused !== null) { fail(res, state, refused); return }
    const pending = new FieldReply(ctx, res, { item_id: t.id, item_type: t.type }, 'count')
    res.onAborted(() => { pending.aborted = true })
    const item = qualify(ns, t.type + ':' + t.id)
    ctx.router.beginUnit(pending, null, -1, true, true)
    ctx.router.op(OP_LIKE_COUNT, fnv1a32(item), item)
    if (!ctx.router.endUnit()) pending.fail(overloaded())
  })

  app.get('/v1/has-liked', (res: HttpResponse, req: HttpRequest, ns = '') => {
    metrics.add(F_HTTP_REQUESTS)
    const t = likeTarget(req.getQuery('user_id'), req.getQuery('item_type'), req.getQuery('item_id'), true)
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    if (t instanceof CounterdError) { fail(res, state, t); return }
    const refused = admit(ctx)
    if (refused !== null) { fail(res, state, refused); return }
    const pending = new FieldReply(ctx, res, { user_id: t.user, item_id: t.id, item_type: t.type }, 'liked', true)
    res.onAborted(() => { pending.aborted = true })
    const item = qualify(ns, t.type + ':' + t.id)
    ctx.router.beginUnit(pending, null, -1, true, true)
    ctx.router.op(OP_HAS_LIKED, fnv1a32(item), item, 0, t.user)
    if (!ctx.router.endUnit()) pending.fail(overloaded())
  })

  // Batch like counts: {"items":[{"item_type":"post","item_id":"1"}, ...]} → {"counts":{"post:1":3}}
  app.post('/v1/counts', (res: HttpResponse, req: HttpRequest, ns = '') => {
    metrics.add(F_HTTP_REQUESTS)
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
      const refused = admit(ctx)
      if (refused !== null) { fail(res, state, refused); return }
      readKeys(ctx, res, state, keys, OP_LIKE_COUNT, 'counts', ns)
    })
  })

  app.get('/v1/counter/:type/:id/sample', (res: HttpResponse, req: HttpRequest, ns = '') => {
    metrics.add(F_HTTP_REQUESTS)
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
    const refused = admit(ctx)
    if (refused !== null) { fail(res, state, refused); return }
    const key = qualify(ns, type + ':' + id)
    ctx.router.control(shardOfKey(ctx, key).shard, 'sample', { key, n }).then(
      (sample) => replyJson(res, state, 200, JSON.stringify({ type, id, sample })),
      (err: CounterdError) => fail(res, state, err))
  })

  app.get('/v1/top', (res: HttpResponse, req: HttpRequest, ns = '') => {
    metrics.add(F_HTTP_REQUESTS)
    const type = req.getQuery('type') ?? ''
    const kq = req.getQuery('k') ?? ''
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    if (type !== '' && !isValidType(type)) { fail(res, state, new CounterdError('invalid_type')); return }
    const k = kq === '' ? 10 : Number(kq)
    if (!/^\d*$/.test(kq) || !Number.isInteger(k) || k < 1 || k > 1000) { fail(res, state, new CounterdError('invalid_argument', 'k must be an integer from 1 to 1000')); return }
    const refused = admit(ctx)
    if (refused !== null) { fail(res, state, refused); return }
    // Each shard lists only this namespace's counters; their keys come back as the caller spells them.
    askEveryShard(ctx, 'top', { type: type === '' ? null : type, k, ns }).then((perShard) => {
      const top = mergeHotParts((perShard as Array<Array<{ key: string, rate: number }>>).flat()).sort((a, b) => b.rate - a.rate).slice(0, k)
      const out = top.map(({ key: stored, rate }) => {
        const key = unqualify(ns, stored)
        const colon = key.indexOf(':')
        return { key, type: key.slice(0, colon), id: key.slice(colon + 1), rate_per_sec: Math.round(rate * 1000) / 1000 }
      })
      replyJson(res, state, 200, JSON.stringify({ type: type === '' ? null : type, k, top: out }))
    }, (err: CounterdError) => fail(res, state, err))
  })

  app.get('/v1/quota', (res: HttpResponse, req: HttpRequest, ns = '') => {
    metrics.add(F_HTTP_REQUESTS)
    const user = req.getQuery('user_id') ?? ''
    const pending = new QuotaRequest(ctx, res, user)
    res.onAborted(() => { pending.aborted = true })
    if (!isValidId(user)) { fail(res, pending, new CounterdError('invalid_user_id')); return }
    const refused = admit(ctx)
    if (refused !== null) { fail(res, pending, refused); return }
    const stored = qualify(ns, user)
    ctx.router.beginUnit(pending, null, -1, true, true)
    ctx.router.op(OP_QUOTA_PEEK, fnv1a32(stored), stored)
    if (!ctx.router.endUnit()) fail(res, pending, overloaded())
  })

  // Replication between regions (README): this replica's totals out, another's in.
  app.get('/v1/replication/state', (res: HttpResponse) => {
    metrics.add(F_HTTP_REQUESTS)
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    const refused = admit(ctx)
    if (refused !== null) { fail(res, state, refused); return }
    askEveryShard(ctx, 'export', null).then((perShard) => {
      if (state.aborted) return
      state.aborted = true
      const records = (perShard as DeltaRecord[][]).flat().sort((a, b) => a.partition - b.partition)
      observeAnswer(res, 200)
      res.cork(() => res.writeHeader('content-type', 'application/octet-stream').end(encodeFrames(records)))
    }, (err: CounterdError) => fail(res, state, err))
  })

  app.post('/v1/replication/merge', (res: HttpResponse, req: HttpRequest) => {
    metrics.add(F_HTTP_REQUESTS)
    const contentLength = req.getHeader('content-length')
    const state: Abortable = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    readBody(ctx, res, state, contentLength, (body) => {
      if (body === null) return
      // Fully decoded and checked here; each shard gets the records of its partitions.
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
      const refused = admit(ctx)
      if (refused !== null) { fail(res, state, refused); return }
      // By owner: a shard of this node, or (ring mode) the peer link to another node's shard.
      const byShard = new Map<number, DeltaRecord[]>()
      for (const r of records) {
        const t = ctx.router.shardOf(r.partition)
        const list = byShard.get(t)
        if (list === undefined) byShard.set(t, [r])
        else list.push(r)
      }
      Promise.all([...byShard].map(async ([t, rs]) => await ctx.router.control(t, 'merge', { records: rs }) as number)).then(
        (changed) => replyJson(res, state, 200, JSON.stringify({ records: records.length, countersChanged: changed.reduce((a, b) => a + b, 0) })),
        (err: CounterdError) => fail(res, state, err))
    }, config.maxFrameBytes * 64)
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
