// Top-K fastest-rising keys: the keys with the highest recent increment rate, found with the
// Space-Saving algorithm (Metwally et al.) over exponentially decayed weights (forward decay,
// Cormode et al.): an add at time t weighs e^((t − L)/τ) against a landmark L, so decaying every
// counter is a no-op (all keep their order, and the min-heap stays valid) and only the reading
// multiplies by e^(−(now − L)/τ). With τ = windowMs (default 60 s) a key's decayed weight / τ is
// its rate averaged over roughly the last minute (exactly the rate, for a steady rate).
//
// Guarantees (on decayed weights, total W): at most `capacity` keys are tracked; a tracked key's
// estimate over-counts by at most its `error` and never under-counts; every key whose weight
// exceeds W / capacity is tracked. Summaries merge (Agarwal et al.): counts add, and a key missing
// from one side is charged that side's smallest count as possible error, unless the two
// summaries are known to see disjoint keys (partitions), when nothing is added.
import { CounterdError } from '../../src/errors'
import { ByteReader, ByteWriter } from './codec'
import { checkOptions, intOption, numberOption } from './options'

const RESCALE_AT = 50 // rescale the landmark once weights reach e^50

export interface SpaceSavingOptions {
  /** Keys tracked, 1..100000 (default 100): top(k) is meaningful for k well below this. */
  capacity?: number
  /** Decay time constant in ms (default 60000): how far back "recent" reaches. */
  windowMs?: number
}

export interface TopEntry {
  key: string
  /** Estimated increments per second over about the last windowMs. */
  rate: number
  /** The estimate may exceed the true rate by at most this much (per second). */
  error: number
}

export class SpaceSaving {
  readonly capacity: number
  readonly windowMs: number
  private readonly keys: string[] = []
  private readonly counts: Float64Array
  private readonly errors: Float64Array
  private readonly heap: Int32Array // min-heap of slots by count
  private readonly where: Int32Array // slot → heap position
  private readonly index = new Map<string, number>()
  private n = 0
  private landmark = 0

  constructor (options?: SpaceSavingOptions) {
    const o = checkOptions(options, ['capacity', 'windowMs'])
    this.capacity = intOption(o, 'capacity', 100, 1, 100_000)
    this.windowMs = numberOption(o, 'windowMs', 60_000, 0, 365 * 86_400_000)
    this.counts = new Float64Array(this.capacity)
    this.errors = new Float64Array(this.capacity)
    this.heap = new Int32Array(this.capacity)
    this.where = new Int32Array(this.capacity)
  }

  /** Counts `weight` (default 1) increments of key at nowMs. */
  add (key: string, nowMs: number, weight = 1): void {
    if (typeof key !== 'string') throw new CounterdError('invalid_argument', 'key must be a string')
    if (!(weight > 0 && weight <= Number.MAX_SAFE_INTEGER)) throw new CounterdError('invalid_argument', 'weight must be a positive number')
    const w = weight * this.scale(nowMs)
    const slot = this.index.get(key)
    if (slot !== undefined) {
      this.counts[slot] += w
      this.down(this.where[slot])
    } else if (this.n < this.capacity) {
      const s = this.n++
      this.keys[s] = key
      this.counts[s] = w
      this.errors[s] = 0
      this.heap[s] = s
      this.where[s] = s
      this.index.set(key, s)
      this.up(s)
    } else {
      const s = this.heap[0] // the smallest: its count becomes the newcomer's possible error
      this.index.delete(this.keys[s])
      this.keys[s] = key
      this.index.set(key, s)
      this.errors[s] = this.counts[s]
      this.counts[s] += w
      this.down(0)
    }
  }

  /** The k keys with the highest rate at nowMs, highest first. */
  top (k: number, nowMs: number): TopEntry[] {
    if (!Number.isInteger(k) || k < 0) throw new CounterdError('invalid_argument', 'k must be a non-negative integer')
    const d = this.decayTo(nowMs)
    const slots: number[] = []
    for (let s = 0; s < this.n; s++) slots.push(s)
    slots.sort((a, b) => this.counts[b] - this.counts[a] || (this.keys[a] < this.keys[b] ? -1 : 1))
    return slots.slice(0, k).map(s => ({ key: this.keys[s], rate: this.counts[s] * d, error: this.errors[s] * d }))
  }

  /** Estimated rate per second of key at nowMs (0 when the key is not tracked). */
  rate (key: string, nowMs: number): number {
    const s = this.index.get(key)
    return s === undefined ? 0 : this.counts[s] * this.decayTo(nowMs)
  }

  /** Keys tracked now. */
  get size (): number { return this.n }

  /**
   * Folds other into this (other is unchanged). `disjoint`: the two never see the same key
   * (different partitions), so a key's absence from one side means zero there.
   */
  merge (other: SpaceSaving, options?: { disjoint?: boolean }): void {
    if (!(other instanceof SpaceSaving)) throw new CounterdError('invalid_argument', 'merge needs a SpaceSaving')
    if (other.windowMs !== this.windowMs) throw new CounterdError('invalid_argument', 'merge needs the same windowMs on both sides')
    const disjoint = options?.disjoint === true
    const landmark = Math.max(this.landmark, other.landmark)
    const fa = Math.exp((this.landmark - landmark) / this.windowMs)
    const fb = Math.exp((other.landmark - landmark) / this.windowMs)
    const minA = !disjoint && this.n === this.capacity ? this.counts[this.heap[0]] * fa : 0
    const minB = !disjoint && other.n === other.capacity ? other.counts[other.heap[0]] * fb : 0
    const merged = new Map<string, [number, number]>()
    for (let s = 0; s < this.n; s++) merged.set(this.keys[s], [this.counts[s] * fa + minB, this.errors[s] * fa + minB])
    for (let s = 0; s < other.n; s++) {
      const key = other.keys[s]
      const c = other.counts[s] * fb
      const e = other.errors[s] * fb
      const mine = merged.get(key)
      if (mine === undefined) merged.set(key, [c + minA, e + minA])
      else merged.set(key, [mine[0] - minB + c, mine[1] - minB + e])
    }
    const entries = [...merged].sort((a, b) => b[1][0] - a[1][0] || (a[0] < b[0] ? -1 : 1)).slice(0, this.capacity)
    this.load(landmark, entries.map(([key, [c, e]]) => [key, c, e]))
  }

  /** "CSSV" v1 | u32 capacity | f64 windowMs | f64 landmark | u32 n | n × (str key, f64 count, f64 error). */
  encode (): Buffer {
    const w = new ByteWriter(33 + this.n * 32)
    w.magic('CSSV', 1).u32(this.capacity).f64(this.windowMs).f64(this.landmark).u32(this.n)
    for (let s = 0; s < this.n; s++) w.str(this.keys[s]).f64(this.counts[s]).f64(this.errors[s])
    return w.finish()
  }

  static decode (input: Uint8Array): SpaceSaving {
    const r = new ByteReader(input, 'SpaceSaving')
    r.magic('CSSV', [1])
    const capacity = r.u32()
    const windowMs = r.f64()
    const ss = (() => {
      try {
        return new SpaceSaving({ capacity, windowMs })
      } catch (err) {
        return r.fail(`bad options (${(err as Error).message})`)
      }
    })()
    const landmark = r.num('landmark', -8.64e15, 8.64e15)
    const n = r.count(18)
    if (n > capacity) r.fail(`${n} keys in a summary of ${capacity}`)
    const entries: Array<[string, number, number]> = []
    const seen = new Set<string>()
    for (let i = 0; i < n; i++) {
      const key = r.str()
      const c = r.num('count', 0, Number.MAX_VALUE)
      const e = r.num('error', 0, c)
      if (seen.has(key)) r.fail('key listed twice')
      seen.add(key)
      entries.push([key, c, e])
    }
    r.end()
    ss.load(landmark, entries)
    return ss
  }

  /** e^((now − L)/τ) for an add at nowMs, moving the landmark first when weights grow large. */
  private scale (nowMs: number): number {
    if (!(nowMs >= 0 && nowMs <= 8.64e15)) throw new CounterdError('invalid_argument', 'nowMs must be a time in ms since the Unix epoch')
    let x = (nowMs - this.landmark) / this.windowMs
    if (x > RESCALE_AT) {
      const f = Math.exp(-x) // every weight decays by the same factor: order and heap unchanged
      for (let s = 0; s < this.n; s++) {
        this.counts[s] *= f
        this.errors[s] *= f
      }
      this.landmark = nowMs
      x = 0
    }
    return Math.exp(x)
  }

  /** Factor turning a stored weight into a per-second rate at nowMs. */
  private decayTo (nowMs: number): number {
    if (!(nowMs >= 0 && nowMs <= 8.64e15)) throw new CounterdError('invalid_argument', 'nowMs must be a time in ms since the Unix epoch')
    return Math.exp(-(nowMs - this.landmark) / this.windowMs) * 1000 / this.windowMs
  }

  private load (landmark: number, entries: Array<[string, number, number]>): void {
    this.index.clear()
    this.landmark = landmark
    this.n = entries.length
    for (let s = 0; s < entries.length; s++) {
      const [key, c, e] = entries[s]
      this.keys[s] = key
      this.counts[s] = c
      this.errors[s] = e
      this.heap[s] = s
      this.where[s] = s
      this.index.set(key, s)
    }
    this.keys.length = this.n
    for (let i = (this.n >>> 1) - 1; i >= 0; i--) this.down(i)
  }

  private up (i: number): void {
    const h = this.heap
    const c = this.counts
    const s = h[i]
    while (i > 0) {
      const p = (i - 1) >>> 1
      if (c[h[p]] <= c[s]) break
      h[i] = h[p]
      this.where[h[i]] = i
      i = p
    }
    h[i] = s
    this.where[s] = i
  }

  private down (i: number): void {
    const h = this.heap
    const c = this.counts
    const n = this.n
    const s = h[i]
    for (;;) {
      let m = 2 * i + 1
      if (m >= n) break
      if (m + 1 < n && c[h[m + 1]] < c[h[m]]) m++
      if (c[h[m]] >= c[s]) break
      h[i] = h[m]
      this.where[h[i]] = i
      i = m
    }
    h[i] = s
    this.where[s] = i
  }
}
