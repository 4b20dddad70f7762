// Open-addressing hash table keyed by 64-bit hashes held as two 32-bit words in one Uint32Array,
// optionally with a 32-bit value per key: no per-entry objects, so the heap cost is the array
// itself (8 or 12 bytes a slot). Linear probing from a home slot chosen by "fastrange" on the
// high word (any capacity works, not only powers of two, so growth can be ×1.3); deletion shifts
// later entries back (no tombstones, lookups never slow down with churn). The load stays between
// about 0.65 and 0.85.
//
// The all-zero key marks an empty slot, so the key 0:0 is stored as 0:1 (two distinct 64-bit
// hashes sharing a slot this way has probability 2^-64 per key: the same order as any collision).
import { CounterdError } from '../../src/core/errors'

const MAX_LOAD = 0.85
const GROWTH = 1.3
const TWO32 = 4294967296

export class HashTable64 {
  private t: Uint32Array
  private cap: number
  private n = 0
  private readonly stride: number

  /** withValue: keep a u32 value per key (a count); initialCapacity: slots to start with. */
  constructor (withValue: boolean, initialCapacity = 16) {
    if (!Number.isInteger(initialCapacity) || initialCapacity < 4 || initialCapacity > 2 ** 30) {
      throw new CounterdError('invalid_option', 'options.initialCapacity must be an integer between 4 and 2^30')
    }
    this.stride = withValue ? 3 : 2
    this.cap = initialCapacity
    this.t = new Uint32Array(initialCapacity * this.stride)
  }

  get size (): number { return this.n }
  get capacity (): number { return this.cap }
  get byteSize (): number { return this.t.byteLength }

  private home (hi: number): number {
    return Math.floor(((hi >>> 0) * this.cap) / TWO32)
  }

  /** Slot holding the key, or -1. */
  find (lo: number, hi: number): number {
    lo >>>= 0
    hi >>>= 0
    if ((lo | hi) === 0) hi = 1
    const t = this.t
    const st = this.stride
    const cap = this.cap
    let s = this.home(hi)
    for (;;) {
      const o = s * st
      const a = t[o]
      const b = t[o + 1]
      if (a === lo && b === hi) return s
      if ((a | b) === 0) return -1
      if (++s === cap) s = 0
    }
  }

  has (lo: number, hi: number): boolean {
    return this.find(lo, hi) >= 0
  }

  /** Inserts the key (value 0) unless present. True when it was added. */
  add (lo: number, hi: number): boolean {
    lo >>>= 0
    hi >>>= 0
    if ((lo | hi) === 0) hi = 1
    if (this.n + 1 > this.cap * MAX_LOAD) this.resize(Math.ceil(this.cap * GROWTH))
    const t = this.t
    const st = this.stride
    const cap = this.cap
    let s = this.home(hi)
    for (;;) {
      const o = s * st
      const a = t[o]
      const b = t[o + 1]
      if (a === lo && b === hi) return false
      if ((a | b) === 0) {
        t[o] = lo
        t[o + 1] = hi
        this.n++
        return true
      }
      if (++s === cap) s = 0
    }
  }

  /** Removes the key. True when it was there. */
  delete (lo: number, hi: number): boolean {
    const s = this.find(lo, hi)
    if (s < 0) return false
    this.removeSlot(s)
    return true
  }

  /** The key's value (0 when absent). */
  get (lo: number, hi: number): number {
    const s = this.find(lo, hi)
    return s < 0 ? 0 : this.t[s * this.stride + 2]
  }

  /**
   * Adds delta to the key's value, inserting the key when absent and removing it when the value
   * reaches 0. Returns the new value. The value must stay within [0, 2^32 - 1].
   */
  adjust (lo: number, hi: number, delta: number): number {
    let s = this.find(lo, hi)
    const cur = s < 0 ? 0 : this.t[s * this.stride + 2]
    const next = cur + delta
    if (next < 0 || next > 0xffffffff) throw new CounterdError('value_out_of_range', `a count must stay within 0..${0xffffffff}`)
    if (next === 0) {
      if (s >= 0) this.removeSlot(s)
      return 0
    }
    if (s < 0) {
      this.add(lo, hi)
      s = this.find(lo, hi)
    }
    this.t[s * this.stride + 2] = next
    return next
  }

  isUsed (slot: number): boolean { const o = slot * this.stride; return (this.t[o] | this.t[o + 1]) !== 0 }
  loAt (slot: number): number { return this.t[slot * this.stride] }
  hiAt (slot: number): number { return this.t[slot * this.stride + 1] }
  valueAt (slot: number): number { return this.t[slot * this.stride + 2] }

  /** Grows so that `n` keys fit without further resizing. */
  reserve (n: number): void {
    const need = Math.ceil(n / MAX_LOAD) + 1
    if (need > this.cap) this.resize(need)
  }

  private resize (cap: number): void {
    const old = this.t
    const st = this.stride
    this.cap = cap
    this.t = new Uint32Array(cap * st)
    const t = this.t
    for (let o = 0; o < old.length; o += st) {
      const lo = old[o]
      const hi = old[o + 1]
      if ((lo | hi) === 0) continue
      let s = this.home(hi)
      while ((t[s * st] | t[s * st + 1]) !== 0) if (++s === cap) s = 0
      t[s * st] = lo
      t[s * st + 1] = hi
      if (st === 3) t[s * st + 2] = old[o + 2]
    }
  }

  /** Empties slot i and shifts back the entries whose probe path crosses it. */
  private removeSlot (i: number): void {
    const t = this.t
    const st = this.stride
    const cap = this.cap
    let j = i
    for (;;) {
      if (++j === cap) j = 0
      const oj = j * st
      if ((t[oj] | t[oj + 1]) === 0) break
      const h = this.home(t[oj + 1])
      // The entry at j may fill the hole at i when i lies on its path h → j.
      if ((j - h + cap) % cap >= (j - i + cap) % cap) {
        const oi = i * st
        t[oi] = t[oj]
        t[oi + 1] = t[oj + 1]
        if (st === 3) t[oi + 2] = t[oj + 2]
        i = j
      }
    }
    const oi = i * st
    t[oi] = 0
    t[oi + 1] = 0
    if (st === 3) t[oi + 2] = 0
    this.n--
  }
}
