// HTTP requests waiting for their ops: each is the owner of one unit (routing/router.ts) and
// answers once every part of it is done. One class per reply shape; no closure per request.
import { CounterdError } from '../core/errors'
import { fnv1a32 } from '../core/keys'
import { PartsRead, type HotEntry } from '../routing/hot-routes'
import type { UnitOwner } from '../routing/router'
import type { FrontContext } from './context'
import { replyError, replyJson, replyNoContent, type Abortable } from './replies'
import { F_INCREMENTS_ACKED } from './status-board'
import type { HttpResponse } from './uws'

/** Base: counts parts down, keeps the first error, answers through `reply` when all are done. */
abstract class PendingRequest implements UnitOwner, Abortable {
  aborted = false
  parts = 0
  protected error: CounterdError | null = null

  constructor (readonly ctx: FrontContext, readonly res: HttpResponse) {}

  abstract onApplied (shard: number, values: Float64Array | null, n: number, refused: number, dup: boolean): void
  protected abstract reply (): void

  onPartDone (err: CounterdError | null): void {
    if (err !== null) this.error ??= err
    if (--this.parts > 0) return
    if (this.error !== null) this.fail(this.error)
    else this.reply()
  }

  fail (err: CounterdError): void {
    this.ctx.metrics.countError('http', err.code)
    replyError(this.res, this, err, this.ctx.config.retryAfterSeconds)
  }
}

/** A one-op request answered `{"type","id","value"}` (increment, reset, read). */
export class ValueReply extends PendingRequest {
  value = NaN

  /** `key`: the counter as stored (namespace-qualified: src/core/namespaces.ts). */
  constructor (ctx: FrontContext, res: HttpResponse, readonly type: string, readonly id: string, readonly countsIncrement = false,
    readonly key = type + ':' + id) {
    super(ctx, res)
  }

  onApplied (_shard: number, values: Float64Array | null): void {
    if (values !== null) this.value = values[0]
  }

  protected reply (): void {
    if (Number.isNaN(this.value)) { this.fail(new CounterdError('value_out_of_range')); return }
    if (!Number.isInteger(this.value)) {
      // A split counter's home answered a read with its ways + 0.5, an increment with its own
      // value + 0.5 (src/core/hot-keys.ts): add the other parts.
      const home = this.countsIncrement ? Math.floor(this.value) : null
      new SumRead(this.key, (v) => { this.value = v; this.answer() }, (err) => this.fail(err), home).start(this.ctx.router)
      return
    }
    this.answer()
  }

  private answer (): void {
    if (this.countsIncrement) this.ctx.metrics.add(F_INCREMENTS_ACKED)
    replyJson(this.res, this, 200, `{"type":"${this.type}","id":"${this.id}","value":${this.value}}`)
  }
}

/**
 * An increment sent with `Prefer: return=minimal`: 204 once applied, without the value (so it may
 * go to a sub-counter of a hot counter: routing/hot-routes.ts).
 */
export class AckReply extends PendingRequest {
  private refused = false

  onApplied (_shard: number, _values: Float64Array | null, _n: number, refused: number): void {
    if (refused > 0) this.refused = true
  }

  protected reply (): void {
    if (this.refused) { this.fail(new CounterdError('value_out_of_range')); return }
    this.ctx.metrics.add(F_INCREMENTS_ACKED)
    replyNoContent(this.res, this)
  }
}

/** DELETE: answered `{"type","id","value":0}` (the op's value is the one before the reset). */
export class ResetReply extends ValueReply {
  override onApplied (): void {
    this.value = 0
  }
}

/** A request answered as {…fields, [field]: value} (likes, unique counts, rates): the sum of its ops' values (a split counter's rate). */
export class FieldReply extends PendingRequest {
  value = NaN

  constructor (ctx: FrontContext, res: HttpResponse, readonly fields: Record<string, string | boolean>,
    readonly field: string, readonly asBoolean = false) {
    super(ctx, res)
  }

  onApplied (_shard: number, values: Float64Array | null, n: number): void {
    if (values === null) return
    let sum = Number.isNaN(this.value) ? 0 : this.value
    for (let k = 0; k < n; k++) sum += values[k]
    this.value = sum
  }

  protected reply (): void {
    replyJson(this.res, this, 200, JSON.stringify({ ...this.fields, [this.field]: this.asBoolean ? this.value === 1 : this.value }))
  }
}

/**
 * One read op per key, answered as {[wrapper]: {key: value}}. A shard answers its keys' values in
 * the order they were added, so the keys are remembered per shard.
 */
export class KeysReply extends PendingRequest {
  private readonly values: number[]
  private readonly order: number[][]

  /** `prefix`: the namespace prefix of the stored keys (src/core/namespaces.ts), '' without. */
  constructor (ctx: FrontContext, res: HttpResponse, readonly keys: string[], readonly wrapper: string, shards: number, readonly prefix = '') {
    super(ctx, res)
    this.values = new Array(keys.length).fill(0)
    this.order = Array.from({ length: shards }, () => [])
  }

  /**
   * An op for key `index` was added to the unit for `shard` (a shard of this node, or a peer
   * link's: ring mode); its value counts for the key (a split counter's parts add up), negated
   * with `negate` (an absorbed marker).
   */
  added (shard: number, index: number, negate = false): void {
    (this.order[shard] ??= []).push(negate ? ~index : index)
  }

  onApplied (shard: number, values: Float64Array | null, n: number): void {
    if (values === null) return
    const order = this.order[shard]
    for (let j = 0; j < n; j++) {
      const i = order[j]
      if (i >= 0) this.values[i] += values[j]
      else this.values[~i] -= values[j]
    }
  }

  protected reply (): void {
    // A split counter this thread did not know of: its home answered ways + 0.5; read its parts.
    const splits: Array<Promise<void>> = []
    for (let i = 0; i < this.keys.length; i++) {
      if (Number.isInteger(this.values[i])) continue
      const key = this.keys[i]
      splits.push(new Promise<number>((resolve, reject) => {
        new SumRead(this.prefix + key, resolve, reject).start(this.ctx.router)
      }).then((v) => { this.values[i] = v }))
    }
    if (splits.length > 0) {
      Promise.all(splits).then(() => this.answer(), (err: CounterdError) => this.fail(err))
      return
    }
    this.answer()
  }

  private answer (): void {
    const out: Record<string, number> = {}
    for (let i = 0; i < this.keys.length; i++) out[this.keys[i]] = this.values[i]
    replyJson(this.res, this, 200, JSON.stringify({ [this.wrapper]: out }))
  }
}

/**
 * A counter's value, split or not. `home`: the home's own value an increment answered (then the
 * value is that plus the other parts as they are now, so the answers of a pipeline of increments
 * keep their order); null: the sum of every part.
 */
export class SumRead extends PartsRead {
  constructor (key: string, private readonly resolve: (v: number) => void, private readonly reject: (e: CounterdError) => void,
    private readonly homeValue: number | null = null) {
    super(null, { key, hash: fnv1a32(key) })
  }

  protected done (err: CounterdError | null): void {
    if (err !== null) this.reject(err)
    else if (this.homeValue === null) this.resolve(this.sum)
    else this.resolve(this.homeValue + (this.split ? this.sum - this.values[1] : 0))
  }
}

/**
 * GET of a counter that may be split (or any counter with ?shards=true): every part read in one
 * unit and summed (routing/hot-routes.ts); with `showShards` the answer lists the parts.
 * `state`: the request's abort flag (another reply may have started the request).
 */
export class PartsReply extends PartsRead {
  /** `key`: the counter as stored (namespace-qualified), `hash` its hash. */
  constructor (readonly ctx: FrontContext, readonly res: HttpResponse, readonly state: Abortable, readonly type: string, readonly id: string,
    private readonly entry: HotEntry | undefined, key: string, hash: number, readonly showShards: boolean) {
    super(entry?.names ?? null, { key, hash })
  }

  protected done (err: CounterdError | null): void {
    if (err !== null) {
      this.ctx.metrics.countError('http', err.code)
      replyError(this.res, this.state, err, this.ctx.config.retryAfterSeconds)
      return
    }
    const body: Record<string, unknown> = { type: this.type, id: this.id, value: this.sum }
    if (this.showShards) {
      const n = this.split ? this.names : null
      const P = this.ctx.router.partitions
      const cut = this.home.key.length - (this.type.length + 1 + this.id.length) // a namespace's prefix: not shown
      const parts = [{ key: this.home.key.slice(cut), partition: this.home.hash % P, value: n === null ? this.values[0] : this.values[1] }]
      if (n !== null) {
        const w = n.ways
        for (let j = 0; j < w; j++) parts.push({ key: n.subs[j].slice(cut), partition: n.subPartitions[j], value: this.values[2 + j] + this.values[2 + w + j] - this.values[2 + 2 * w + j] })
      }
      body.split = n === null ? null : { ways: n.ways, state: this.entry?.merging === true ? 'merging' : 'split' }
      body.shards = parts
    }
    replyJson(this.res, this.state, 200, JSON.stringify(body))
  }
}

