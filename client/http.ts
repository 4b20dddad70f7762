// Typed calls for the whole HTTP API (README "HTTP API v1", "Beyond plain counts"). Every method
// resolves with the reply's data or rejects with a CounterdClientError carrying the server's code;
// nothing is retried here (a caller that wants retries reads `err.retriable`).
import { CounterdClientError } from './errors'
import { isValidId, isValidType } from './keys'

export interface ClientOptions {
  /** the node, e.g. `http://127.0.0.1:8080` */
  url: string
  /** per request, default 10 000 */
  timeoutMs?: number
}

interface ClientConfig {
  readonly base: string
  readonly timeoutMs: number
}

const DEFAULTS = { timeoutMs: 10_000 }

export function httpConfig (options: ClientOptions): ClientConfig {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object')
  let url: URL
  try { url = new URL(options.url) } catch { throw new TypeError(`options.url must be an http(s) URL, got ${JSON.stringify(options.url)}`) }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`options.url must be an http(s) URL, got ${JSON.stringify(options.url)}`)
  const timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new TypeError('options.timeoutMs must be a positive integer')
  return Object.freeze({ base: url.origin + url.pathname.replace(/\/+$/, ''), timeoutMs })
}

export interface CounterValue { type: string, id: string, value: number }
export interface ReplicaValue { replica: string, p: number, n: number }
export interface LikeResult { user_id: string, item_id: string, item_type: string, liked: boolean, count: number }
export interface TopEntry { key: string, type: string, id: string, rate_per_sec: number }
export interface Quota { user_id: string, limit_per_minute: number, remaining: number, retry_after_ms: number }
export interface HistoryReply { type: string, id: string, step: 'minute' | 'hour' | 'day', from: number, to: number, points: Array<{ ts: number, value: number }> }
export interface IncrementOptions { by?: number, actor?: string, idempotencyKey?: string }

function checkKey (type: string, id: string): void {
  if (!isValidType(type)) throw new CounterdClientError('invalid_type', `type ${JSON.stringify(type)} must match [a-z0-9_-]{1,32}`)
  if (!isValidId(id)) throw new CounterdClientError('invalid_id', `id ${JSON.stringify(id)} must match [A-Za-z0-9_.:-]{1,128}`)
}

const path = (type: string, id: string, suffix = ''): string => `/v1/counter/${type}/${encodeURIComponent(id)}${suffix}`

export class CounterdClient {
  readonly config: ClientConfig

  constructor (options: ClientOptions) {
    this.config = httpConfig(options)
  }

  async increment (type: string, id: string, o: IncrementOptions = {}): Promise<number> {
    checkKey(type, id)
    const body: Record<string, unknown> = { by: o.by ?? 1 }
    if (o.actor !== undefined) body.actor = o.actor
    const headers = o.idempotencyKey === undefined ? undefined : { 'idempotency-key': o.idempotencyKey }
    return (await this.json<CounterValue>('POST', path(type, id, '/increment'), body, headers)).value
  }

  async get (type: string, id: string): Promise<number> {
    checkKey(type, id)
    return (await this.json<CounterValue>('GET', path(type, id))).value
  }

  async replicas (type: string, id: string): Promise<{ value: number, replicas: ReplicaValue[] }> {
    checkKey(type, id)
    const r = await this.json<CounterValue & { replicas: ReplicaValue[] }>('GET', path(type, id) + '?replicas=true')
    return { value: r.value, replicas: r.replicas }
  }

  async reset (type: string, id: string): Promise<void> {
    checkKey(type, id)
    await this.json('DELETE', path(type, id))
  }

  /** Values of many `type:id` keys (the server takes at most MAX_QUERY_KEYS per call). */
  async query (keys: readonly string[]): Promise<Record<string, number>> {
    return (await this.json<{ values: Record<string, number> }>('POST', '/v1/counters/query', { keys })).values
  }

  async unique (type: string, id: string): Promise<number> {
    checkKey(type, id)
    return (await this.json<{ unique: number }>('GET', path(type, id, '/unique'))).unique
  }

  async rate (type: string, id: string): Promise<number> {
    checkKey(type, id)
    return (await this.json<{ rate_per_sec: number }>('GET', path(type, id, '/rate'))).rate_per_sec
  }

  async sample (type: string, id: string, n?: number): Promise<string[]> {
    checkKey(type, id)
    return (await this.json<{ sample: string[] }>('GET', path(type, id, '/sample') + (n === undefined ? '' : `?n=${n}`))).sample
  }

  async history (type: string, id: string, o: { from?: number, to?: number, step?: 'minute' | 'hour' | 'day' } = {}): Promise<HistoryReply> {
    checkKey(type, id)
    const q = new URLSearchParams()
    if (o.from !== undefined) q.set('from', String(o.from))
    if (o.to !== undefined) q.set('to', String(o.to))
    if (o.step !== undefined) q.set('step', o.step)
    return await this.json<HistoryReply>('GET', path(type, id, '/history') + (q.size > 0 ? `?${q.toString()}` : ''))
  }

  async like (userId: string, itemType: string, itemId: string, o: { idempotencyKey?: string } = {}): Promise<LikeResult> {
    return await this.likeOp('/v1/like', userId, itemType, itemId, o.idempotencyKey)
  }

  async unlike (userId: string, itemType: string, itemId: string, o: { idempotencyKey?: string } = {}): Promise<LikeResult> {
    return await this.likeOp('/v1/unlike', userId, itemType, itemId, o.idempotencyKey)
  }

  async likeCount (itemType: string, itemId: string): Promise<number> {
    const q = new URLSearchParams({ item_type: itemType, item_id: itemId })
    return (await this.json<{ count: number }>('GET', `/v1/count?${q.toString()}`)).count
  }

  async likeCounts (items: ReadonlyArray<{ itemType: string, itemId: string }>): Promise<Record<string, number>> {
    const body = { items: items.map(i => ({ item_type: i.itemType, item_id: i.itemId })) }
    return (await this.json<{ counts: Record<string, number> }>('POST', '/v1/counts', body)).counts
  }

  async hasLiked (userId: string, itemType: string, itemId: string): Promise<boolean> {
    const q = new URLSearchParams({ user_id: userId, item_type: itemType, item_id: itemId })
    return (await this.json<{ liked: boolean }>('GET', `/v1/has-liked?${q.toString()}`)).liked
  }

  async quota (userId: string): Promise<Quota> {
    return await this.json<Quota>('GET', `/v1/quota?${new URLSearchParams({ user_id: userId }).toString()}`)
  }

  async top (o: { type?: string, k?: number } = {}): Promise<TopEntry[]> {
    const q = new URLSearchParams()
    if (o.type !== undefined) q.set('type', o.type)
    if (o.k !== undefined) q.set('k', String(o.k))
    return (await this.json<{ top: TopEntry[] }>('GET', '/v1/top' + (q.size > 0 ? `?${q.toString()}` : ''))).top
  }

  /** This replica's totals, to hand to another region's `replicationMerge`. */
  async replicationState (): Promise<Buffer> {
    const r = await this.request('GET', '/v1/replication/state')
    if (r.status !== 200) throw CounterdClientError.fromReply(r.status, await r.json().catch(() => null))
    return Buffer.from(await r.arrayBuffer())
  }

  async replicationMerge (state: Buffer): Promise<{ records: number, countersChanged: number }> {
    return await this.json('POST', '/v1/replication/merge', state)
  }

  async health (): Promise<boolean> {
    try { return (await this.request('GET', '/health')).status === 200 } catch { return false }
  }

  async ready (): Promise<boolean> {
    try {
      const r = await this.request('GET', '/ready')
      await r.arrayBuffer()
      return r.status === 200
    } catch { return false }
  }

  private async likeOp (route: string, userId: string, itemType: string, itemId: string, idempotencyKey?: string): Promise<LikeResult> {
    const headers = idempotencyKey === undefined ? undefined : { 'idempotency-key': idempotencyKey }
    return await this.json<LikeResult>('POST', route, { user_id: userId, item_id: itemId, item_type: itemType }, headers)
  }

  private async request (method: string, route: string, body?: unknown, headers?: Record<string, string>): Promise<Response> {
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : JSON.stringify(body)
    try {
      return await fetch(this.config.base + route, { method, body: payload, headers, signal: AbortSignal.timeout(this.config.timeoutMs) })
    } catch (err) {
      throw new CounterdClientError('network', `${method} ${route}: ${(err as Error).message}`)
    }
  }

  private async json<T> (method: string, route: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
    const r = await this.request(method, route, body, headers)
    let parsed: unknown
    try { parsed = await r.json() } catch { throw new CounterdClientError('bad_reply', `${method} ${route}: HTTP ${r.status} with a body that is not JSON`, r.status) }
    if (r.status !== 200) throw CounterdClientError.fromReply(r.status, parsed)
    return parsed as T
  }
}
