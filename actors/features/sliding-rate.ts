// Recent rate of one key over a sliding window, kept as a ring of per-bucket counts (default
// 60 buckets of 1 s for a 60 s window). count(now) is the sum of the buckets that overlap the
// last windowMs, so it covers between windowMs − bucketMs and windowMs of history: exact to
// one bucket at the old edge. 8 bytes a bucket (480 for the default) plus the object.
import { CounterdError } from '../../src/errors'
import { ByteReader, ByteWriter } from './codec'
import { checkOptions, intOption, numberOption } from './options'

const MAX_MS = 8.64e15

export interface SlidingRateOptions {
  /** Window length in ms (default 60000). */
  windowMs?: number
  /** Buckets in the window, 1..3600 (default 60): the window's resolution. */
  buckets?: number
}

export class SlidingRate {
  readonly windowMs: number
  readonly buckets: number
  private readonly bucketMs: number
  private readonly values: Float64Array
  private head = -1 // absolute number of the newest bucket (⌊t / bucketMs⌋); -1 = nothing yet
  private total = 0

  constructor (options?: SlidingRateOptions) {
    const o = checkOptions(options, ['windowMs', 'buckets'])
    this.windowMs = numberOption(o, 'windowMs', 60_000, 0, 365 * 86_400_000)
    this.buckets = intOption(o, 'buckets', 60, 1, 3600)
    this.bucketMs = this.windowMs / this.buckets
    this.values = new Float64Array(this.buckets)
  }

  /** Counts n (default 1) events at nowMs. Events older than the window are ignored. */
  add (nowMs: number, n = 1): void {
    if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER)) throw new CounterdError('invalid_argument', 'n must be a non-negative number')
    const b = this.bucketOf(nowMs)
    if (b > this.head) this.advance(b)
    else if (b <= this.head - this.buckets) return
    this.values[b % this.buckets] += n
    this.total += n
  }

  /** Events in the window ending at nowMs. */
  count (nowMs: number): number {
    const b = this.bucketOf(nowMs)
    if (this.head < 0 || b <= this.head) return this.total
    if (b - this.head >= this.buckets) return 0
    let gone = 0 // buckets that leave the window between head and b
    for (let a = this.head - this.buckets + 1; a <= b - this.buckets; a++) gone += this.values[a % this.buckets]
    return this.total - gone
  }

  /** Events per second over the window ending at nowMs. */
  perSecond (nowMs: number): number {
    return this.count(nowMs) * 1000 / this.windowMs
  }

  /** "CSWR" v1 | f64 windowMs | u32 buckets | f64 head | buckets × f64. */
  encode (): Buffer {
    const w = new ByteWriter(25 + 8 * this.buckets).magic('CSWR', 1).f64(this.windowMs).u32(this.buckets).f64(this.head)
    for (let i = 0; i < this.buckets; i++) w.f64(this.values[i])
    return w.finish()
  }

  static decode (input: Uint8Array): SlidingRate {
    const r = new ByteReader(input, 'SlidingRate')
    r.magic('CSWR', [1])
    const windowMs = r.f64()
    const buckets = r.u32()
    const sr = (() => {
      try {
        return new SlidingRate({ windowMs, buckets })
      } catch (err) {
        return r.fail(`bad options (${(err as Error).message})`)
      }
    })()
    sr.head = r.num('head', -1, MAX_MS)
    if (!Number.isInteger(sr.head)) r.fail('head must be an integer')
    for (let i = 0; i < buckets; i++) {
      sr.values[i] = r.num('bucket', 0, Number.MAX_VALUE)
      sr.total += sr.values[i]
    }
    if (sr.head < 0 && sr.total !== 0) r.fail('counts without a head bucket')
    r.end()
    return sr
  }

  private bucketOf (nowMs: number): number {
    if (!(nowMs >= 0 && nowMs <= MAX_MS)) throw new CounterdError('invalid_argument', 'nowMs must be a time in ms since the Unix epoch')
    return Math.floor(nowMs / this.bucketMs)
  }

  private advance (b: number): void {
    const v = this.values
    if (this.head < 0 || b - this.head >= this.buckets) {
      v.fill(0)
    } else {
      for (let a = this.head + 1; a <= b; a++) v[a % this.buckets] = 0
    }
    this.head = b
    let sum = 0 // summed afresh so fractional counts never drift
    for (let i = 0; i < v.length; i++) sum += v[i]
    this.total = sum
  }
}
