// Per-minute history of one partition's counters, for nodes without ClickHouse: the net change of
// each counter per UTC minute, for the last `retention` minutes. Fed with the net deltas of the
// partition's log records (a record's ts picks its minute), when a record is sealed and when one is
// replayed, so a recovered partition rebuilds the very same buckets.
//
// Memory is what matters (a node holds millions of counters), so nothing is kept per counter: a
// counter costs something only in the minutes it changed in, as one (entry, delta) pair there.
//   closed minutes: entries sorted ascending (u32) with their deltas (i32 when every delta of the
//     minute fits, else f64) in exact-size arrays: 8 or 12 bytes per counter per minute; a query
//     finds a counter in a minute by binary search.
//   the open (newest) minute: pairs appended as records are sealed, in chunks (no array grown by
//     copying), so a counter sealed in many records has many pairs until the minute is compacted
//     (sorted, summed per counter, zeros dropped) — whenever its pairs double, and when it closes.
// Worst case per counter that changes every minute: `retention` pairs, 1440 × 12 B ≈ 17 KiB at the
// default retention (11.3 KiB while each minute's net change fits in 32 bits).
// Entry indexes are the partition's KeyTable entries (never reused while the process lives);
// snapshots store keys instead (PartitionState encodes them).

const FIRST_CHUNK = 64
const CHUNK_BITS = 10
const CHUNK = 1 << CHUNK_BITS // pairs per chunk of the open minute (the first starts smaller)
const MIN_COMPACT = 4096 // the open minute is first compacted at this many pairs
const INT32_MAX = 0x7fffffff
const RADIX_BITS = 11
const RADIX = 1 << RADIX_BITS

/** One closed minute: the counters that changed in it and by how much, sorted by entry. */
export interface ClosedMinute {
  minute: number // minutes since the Unix epoch
  entries: Uint32Array
  deltas: Int32Array | Float64Array
}

let radixCounts: Uint32Array | null = null // per thread: the sort's bucket counts

/** Sorts n (entry, delta) pairs by entry in place (LSD radix on the entries; stable). */
export function sortPairs (e: Uint32Array, d: Float64Array, n: number): void {
  if (n < 48) {
    for (let i = 1; i < n; i++) {
      const ke = e[i]
      const kd = d[i]
      let j = i - 1
      for (; j >= 0 && e[j] > ke; j--) { e[j + 1] = e[j]; d[j + 1] = d[j] }
      e[j + 1] = ke
      d[j + 1] = kd
    }
    return
  }
  let max = 0
  for (let i = 0; i < n; i++) if (e[i] > max) max = e[i]
  const c = radixCounts ??= new Uint32Array(RADIX)
  let se: Uint32Array = e
  let sd: Float64Array = d
  let te: Uint32Array = new Uint32Array(n)
  let td: Float64Array = new Float64Array(n)
  for (let shift = 0; shift === 0 || (shift < 32 && (max >>> shift) !== 0); shift += RADIX_BITS) {
    c.fill(0)
    for (let i = 0; i < n; i++) c[(se[i] >>> shift) & (RADIX - 1)]++
    let sum = 0
    for (let k = 0; k < RADIX; k++) { const x = c[k]; c[k] = sum; sum += x }
    for (let i = 0; i < n; i++) {
      const p = c[(se[i] >>> shift) & (RADIX - 1)]++
      te[p] = se[i]
      td[p] = sd[i]
    }
    const xe = se; se = te; te = xe
    const xd = sd; sd = td; td = xd
  }
  if (se !== e) { e.set(se.subarray(0, n)); d.set(sd.subarray(0, n)) }
}

/** Sums the runs of equal entries of sorted pairs and drops zero sums, in place; returns the count left. */
function mergeRuns (e: Uint32Array, d: Float64Array, n: number): number {
  let out = 0
  for (let i = 0; i < n;) {
    const k = e[i]
    let s = d[i++]
    while (i < n && e[i] === k) s += d[i++]
    if (s !== 0) { e[out] = k; d[out] = s; out++ }
  }
  return out
}

function closedOf (minute: number, e: Uint32Array, d: Float64Array, n: number): ClosedMinute {
  let small = true
  for (let i = 0; i < n; i++) if (d[i] > INT32_MAX || d[i] < -INT32_MAX) { small = false; break }
  return { minute, entries: e.slice(0, n), deltas: small ? Int32Array.from(d.subarray(0, n)) : d.slice(0, n) }
}

/** Index of `e` in sorted entries, or −1. */
function find (entries: Uint32Array, e: number): number {
  let lo = 0
  let hi = entries.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const x = entries[mid]
    if (x < e) lo = mid + 1
    else if (x > e) hi = mid - 1
    else return mid
  }
  return -1
}

export class MinuteHistory {
  /** Closed minutes, oldest first. */
  readonly closed: ClosedMinute[] = []
  private openMinute = -1 // −1: none yet
  private openE: Uint32Array[] = []
  private openD: Float64Array[] = []
  private openN = 0 // pairs in the open minute
  private compactAt = MIN_COMPACT
  // Pairs of a record older than the open minute (a clock that stepped back): merged at end().
  private lateMinute = -1
  private lateE: number[] = []
  private lateD: number[] = []

  constructor (readonly retention: number) {}

  /** The newest minute holding data (−1: none). */
  get newest (): number { return this.openMinute }

  /**
   * Starts the pairs of one record sealed (or replayed) at `ts` ms: push() them, then end().
   * A record older than the retention behind the newest minute is not kept (returns false).
   */
  begin (ts: number): boolean {
    const m = Math.floor(ts / 60_000)
    if (m > this.openMinute) {
      this.closeOpen()
      this.openMinute = m
      this.evict()
      return true
    }
    if (m === this.openMinute) return true
    if (m <= this.openMinute - this.retention) return false
    this.lateMinute = m
    return true
  }

  push (e: number, d: number): void {
    if (this.lateMinute >= 0) {
      this.lateE.push(e)
      this.lateD.push(d)
      return
    }
    if (d === 0) return
    const n = this.openN
    const c = n >>> CHUNK_BITS
    const at = n & (CHUNK - 1)
    if (c === this.openE.length) {
      const size = c === 0 ? FIRST_CHUNK : CHUNK
      this.openE.push(new Uint32Array(size))
      this.openD.push(new Float64Array(size))
    } else if (at === this.openE[c].length) {
      // Only the first chunk starts short (a partition with little history stays small): grow it.
      const e2 = new Uint32Array(Math.min(CHUNK, at * 4))
      const d2 = new Float64Array(e2.length)
      e2.set(this.openE[c])
      d2.set(this.openD[c])
      this.openE[c] = e2
      this.openD[c] = d2
    }
    this.openE[c][at] = e
    this.openD[c][at] = d
    this.openN = n + 1
  }

  end (): void {
    if (this.lateMinute >= 0) {
      this.mergeLate()
      return
    }
    if (this.openN >= this.compactAt) this.compactOpen()
  }

  /** Net change of entry e per minute, for minutes in [fromMin, toMin): calls out(minute, delta). */
  series (e: number, fromMin: number, toMin: number, out: (minute: number, delta: number) => void): void {
    for (const m of this.closed) {
      if (m.minute < fromMin || m.minute >= toMin) continue
      const i = find(m.entries, e)
      if (i >= 0) out(m.minute, m.deltas[i])
    }
    if (this.openN > 0 && this.openMinute >= fromMin && this.openMinute < toMin) {
      let s = 0
      for (let c = 0; c < this.openE.length; c++) {
        const es = this.openE[c]
        const ds = this.openD[c]
        const len = Math.min(es.length, this.openN - c * CHUNK)
        for (let i = 0; i < len; i++) if (es[i] === e) s += ds[i]
      }
      if (s !== 0) out(this.openMinute, s)
    }
  }

  /** Every minute kept, oldest first, the open one compacted: (minute, entries sorted, deltas, n). */
  forEachMinute (cb: (minute: number, entries: Uint32Array, deltas: Int32Array | Float64Array, n: number) => void): void {
    for (const m of this.closed) cb(m.minute, m.entries, m.deltas, m.entries.length)
    if (this.openN > 0) {
      this.compactOpen()
      const { e, d } = this.gatherOpen()
      cb(this.openMinute, e, d, this.openN)
    }
  }

  /** Pairs kept (the memory they take is 8 to 12 bytes each, besides the open minute's chunks). */
  get pairs (): number {
    let n = this.openN
    for (const m of this.closed) n += m.entries.length
    return n
  }

  /** Drops minutes at or before `newest − retention`. */
  private evict (): void {
    const oldest = this.openMinute - this.retention
    let k = 0
    while (k < this.closed.length && this.closed[k].minute <= oldest) k++
    if (k > 0) this.closed.splice(0, k)
  }

  private gatherOpen (): { e: Uint32Array, d: Float64Array } {
    const n = this.openN
    if (this.openE.length === 1) return { e: this.openE[0], d: this.openD[0] }
    const e = new Uint32Array(n)
    const d = new Float64Array(n)
    for (let c = 0; c < this.openE.length; c++) {
      const len = Math.min(this.openE[c].length, n - c * CHUNK)
      if (len <= 0) break
      e.set(this.openE[c].subarray(0, len), c * CHUNK)
      d.set(this.openD[c].subarray(0, len), c * CHUNK)
    }
    return { e, d }
  }

  /** Sorts the open minute's pairs and sums each counter's: the minute stays open. */
  private compactOpen (): void {
    const { e, d } = this.gatherOpen()
    sortPairs(e, d, this.openN)
    const n = mergeRuns(e, d, this.openN)
    // Back into chunks: whole chunks for the pairs left, the rest given up.
    if (this.openE.length > 1) {
      const chunks = n === 0 ? 0 : 1 + Math.floor((n - 1) / CHUNK)
      this.openE.length = Math.max(chunks, 1)
      this.openD.length = Math.max(chunks, 1)
      for (let c = 0; c < chunks; c++) {
        const len = Math.min(CHUNK, n - c * CHUNK)
        this.openE[c].set(e.subarray(c * CHUNK, c * CHUNK + len))
        this.openD[c].set(d.subarray(c * CHUNK, c * CHUNK + len))
      }
    }
    this.openN = n
    this.compactAt = Math.max(MIN_COMPACT, 2 * n)
  }

  private closeOpen (): void {
    if (this.openN > 0) {
      const { e, d } = this.gatherOpen()
      sortPairs(e, d, this.openN)
      const n = mergeRuns(e, d, this.openN)
      if (n > 0) this.closed.push(closedOf(this.openMinute, e, d, n))
    }
    this.openE = []
    this.openD = []
    this.openN = 0
    this.compactAt = MIN_COMPACT
  }

  /** Merges the pending late pairs into their (closed) minute. */
  private mergeLate (): void {
    const m = this.lateMinute
    this.lateMinute = -1
    const at = this.closed.findIndex((c) => c.minute >= m)
    const old = at >= 0 && this.closed[at].minute === m ? this.closed[at] : null
    const n = (old?.entries.length ?? 0) + this.lateE.length
    const e = new Uint32Array(n)
    const d = new Float64Array(n)
    let k = 0
    if (old !== null) for (; k < old.entries.length; k++) { e[k] = old.entries[k]; d[k] = old.deltas[k] }
    for (let i = 0; i < this.lateE.length; i++, k++) { e[k] = this.lateE[i]; d[k] = this.lateD[i] }
    this.lateE = []
    this.lateD = []
    sortPairs(e, d, n)
    const left = mergeRuns(e, d, n)
    const seg = left > 0 ? closedOf(m, e, d, left) : null
    if (old !== null) {
      if (seg !== null) this.closed[at] = seg
      else this.closed.splice(at, 1)
    } else if (seg !== null) {
      this.closed.splice(at < 0 ? this.closed.length : at, 0, seg)
    }
  }
}
