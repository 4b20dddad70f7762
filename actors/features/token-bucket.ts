// Per-user token buckets (default: 100 tokens, refilled at 100 per minute). Each user's bucket is
// one number, the time at which it will be full again (the "theoretical arrival time" of the
// generic cell rate algorithm, which is a token bucket stated differently):
//   tokens(now) = capacity − max(0, full − now) / msPerToken
// so a full bucket needs no state at all: users whose bucket has refilled are dropped, and memory
// is bounded by the users active within one refill period (capacity × msPerToken). New users
// drop up to two refilled entries as they arrive; sweep() does the rest.
//
// Time is the caller's (ms since the Unix epoch): replaying a log with its recorded timestamps
// rebuilds the same buckets. A clock that steps back gives no extra tokens.
import { CounterdError } from '../../src/core/errors'
import { ByteReader, ByteWriter } from './codec'
import { checkOptions, intOption, numberOption } from './options'

const EPS = 0.01 // ms: absorbs rounding of fractional msPerToken added to epoch-sized times (ulp 2^-12 ms)
const MAX_MS = 8.64e15 // the largest Date

export interface TokenBucketOptions {
  /** Bucket size: the most tokens a user can hold (default 100). */
  capacity?: number
  /** Tokens added every refillIntervalMs (default 100). */
  refillTokens?: number
  /** Refill period in ms (default 60000). */
  refillIntervalMs?: number
}

export class TokenBuckets {
  readonly capacity: number
  readonly refillTokens: number
  readonly refillIntervalMs: number
  private readonly msPerToken: number
  private readonly burstMs: number
  private readonly full = new Map<string, number>()
  private sweeper: IterableIterator<[string, number]> | null = null

  constructor (options?: TokenBucketOptions) {
    const o = checkOptions(options, ['capacity', 'refillTokens', 'refillIntervalMs'])
    this.capacity = intOption(o, 'capacity', 100, 1, 1e9)
    this.refillTokens = numberOption(o, 'refillTokens', 100, 0, 1e9)
    this.refillIntervalMs = numberOption(o, 'refillIntervalMs', 60_000, 0, 365 * 86_400_000)
    this.msPerToken = this.refillIntervalMs / this.refillTokens
    this.burstMs = this.capacity * this.msPerToken
  }

  /**
   * Takes `cost` tokens from user's bucket at nowMs. Returns 0 when taken; otherwise nothing is
   * taken and the result is how many ms until the bucket holds `cost` tokens (>= 1).
   */
  take (user: string, nowMs: number, cost = 1): number {
    this.check(user, nowMs, cost)
    const prev = this.full.get(user)
    const next = (prev === undefined || prev < nowMs ? nowMs : prev) + cost * this.msPerToken
    const wait = next - nowMs - this.burstMs
    if (wait > EPS) return Math.max(1, Math.ceil(wait))
    this.full.set(user, next)
    if (prev === undefined) this.sweep(nowMs, 2)
    return 0
  }

  /** Whole tokens user holds at nowMs (capacity for an unknown user). Changes nothing. */
  peek (user: string, nowMs: number): number {
    this.check(user, nowMs, 1)
    const f = this.full.get(user)
    if (f === undefined || f <= nowMs) return this.capacity
    return Math.max(0, Math.floor((this.burstMs - (f - nowMs) + EPS) / this.msPerToken))
  }

  /** Gives back tokens taken for work that was then not done (never beyond a full bucket). */
  refund (user: string, nowMs: number, cost = 1): void {
    this.check(user, nowMs, cost)
    const f = this.full.get(user)
    if (f === undefined) return
    const back = f - cost * this.msPerToken
    if (back <= nowMs) this.full.delete(user)
    else this.full.set(user, back)
  }

  /** Users with a bucket that is not full (the entries held in memory). */
  get size (): number { return this.full.size }

  /**
   * Drops buckets that are full at nowMs, examining at most `limit` entries and carrying on
   * where the previous call stopped. Returns how many were dropped.
   */
  sweep (nowMs: number, limit = Infinity): number {
    if (!(nowMs >= 0 && nowMs <= MAX_MS)) throw new CounterdError('invalid_argument', 'nowMs must be a time in ms since the Unix epoch')
    let dropped = 0
    let seen = 0
    const total = this.full.size
    while (seen < limit && seen < total) {
      if (this.sweeper === null) this.sweeper = this.full.entries()
      const step = this.sweeper.next()
      if (step.done === true) {
        this.sweeper = null
        if (seen === 0) break // nothing to look at
        continue
      }
      seen++
      if (step.value[1] <= nowMs) {
        this.full.delete(step.value[0])
        dropped++
      }
    }
    return dropped
  }

  /** "CTBK" v1 | f64 capacity | f64 refillTokens | f64 refillIntervalMs | u32 n | n × (str user, f64 full). */
  encode (): Buffer {
    const w = new ByteWriter(37 + this.full.size * 24)
    w.magic('CTBK', 1).f64(this.capacity).f64(this.refillTokens).f64(this.refillIntervalMs).u32(this.full.size)
    for (const [user, f] of this.full) w.str(user).f64(f)
    return w.finish()
  }

  static decode (input: Uint8Array): TokenBuckets {
    const r = new ByteReader(input, 'TokenBuckets')
    r.magic('CTBK', [1])
    const capacity = r.f64()
    const refillTokens = r.f64()
    const refillIntervalMs = r.f64()
    const tb = (() => {
      try {
        return new TokenBuckets({ capacity, refillTokens, refillIntervalMs })
      } catch (err) {
        return r.fail(`bad options (${(err as Error).message})`)
      }
    })()
    const n = r.count(10)
    for (let i = 0; i < n; i++) {
      const user = r.str()
      const f = r.num('bucket time', 0, MAX_MS + tb.burstMs)
      if (tb.full.has(user)) r.fail(`user listed twice`)
      tb.full.set(user, f)
    }
    r.end()
    return tb
  }

  private check (user: string, nowMs: number, cost: number): void {
    if (typeof user !== 'string') throw new CounterdError('invalid_argument', 'user must be a string')
    if (!(nowMs >= 0 && nowMs <= MAX_MS)) throw new CounterdError('invalid_argument', 'nowMs must be a time in ms since the Unix epoch')
    if (!Number.isInteger(cost) || cost < 1 || cost > this.capacity) {
      throw new CounterdError('invalid_argument', `cost must be an integer between 1 and the capacity (${this.capacity})`)
    }
  }
}
