// HTTP requests waiting for their ops: each is the owner of one unit (routing/router.ts) and
// answers once every part of it is done. One class per reply shape; no closure per request.
import { CounterdError } from '../core/errors'
import type { UnitOwner } from '../routing/router'
import type { FrontContext } from './context'
import { replyError, replyJson, type Abortable } from './replies'
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

  constructor (ctx: FrontContext, res: HttpResponse, readonly type: string, readonly id: string, readonly countsIncrement = false) {
    super(ctx, res)
  }

  onApplied (_shard: number, values: Float64Array | null): void {
    if (values !== null) this.value = values[0]
  }

  protected reply (): void {
    if (Number.isNaN(this.value)) { this.fail(new CounterdError('value_out_of_range')); return }
    if (this.countsIncrement) this.ctx.metrics.add(F_INCREMENTS_ACKED)
    replyJson(this.res, this, 200, `{"type":"${this.type}","id":"${this.id}","value":${this.value}}`)
  }
}

/** DELETE: answered `{"type","id","value":0}` (the op's value is the one before the reset). */
export class ResetReply extends ValueReply {
  override onApplied (): void {
    this.value = 0
  }
}

/** A one-op request answered as {…fields, [field]: value} (likes, unique counts, rates). */
export class FieldReply extends PendingRequest {
  value = NaN

  constructor (ctx: FrontContext, res: HttpResponse, readonly fields: Record<string, string | boolean>,
    readonly field: string, readonly asBoolean = false) {
    super(ctx, res)
  }

  onApplied (_shard: number, values: Float64Array | null): void {
    if (values !== null) this.value = values[0]
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

  constructor (ctx: FrontContext, res: HttpResponse, readonly keys: string[], readonly wrapper: string, shards: number) {
    super(ctx, res)
    this.values = new Array(keys.length).fill(0)
    this.order = Array.from({ length: shards }, () => [])
  }

  /** Key `index` was added to the unit for `shard` (a shard of this node, or a peer link's: ring mode). */
  added (shard: number, index: number): void {
    (this.order[shard] ??= []).push(index)
  }

  onApplied (shard: number, values: Float64Array | null, n: number): void {
    if (values === null) return
    const order = this.order[shard]
    for (let j = 0; j < n; j++) this.values[order[j]] = values[j]
  }

  protected reply (): void {
    const out: Record<string, number> = {}
    for (let i = 0; i < this.keys.length; i++) out[this.keys[i]] = this.values[i]
    replyJson(this.res, this, 200, JSON.stringify({ [this.wrapper]: out }))
  }
}
