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
//   the open (newest) minute: each record's pairs appended as they come, in 16 KiB chunks of 2048
//     from the thread's chunk pool (no array grown by copying, no holes among transient buffers;
//     deltas i32 while they fit); a sealed record's pairs wait in a per-thread stage first (see
//     flushStage). A counter sealed in many records has several pairs until the minute is
//     compacted (summed per counter in entry order, zeros dropped): each time its pairs double,
//     and when it closes. The hashed per-counter accumulator that once stood in front of the
//     pairs missed the cache on nearly every pair of a busy shard and cost more than the
//     compactions it saved.
// Worst case per counter that changes every minute: `retention` pairs, 1440 × 12 B ≈ 17 KiB at the
// default retention (11.3 KiB while each minute's net change fits in 32 bits), plus the open
// minute's pairs until it is compacted.
// Entry indexes are the partition's KeyTable entries (never reused while the process lives);
// snapshots store keys instead (PartitionState encodes them).

import { chunkPool } from './key-table'

const FIRST_CHUNK = 64
const CHUNK_BITS = 11
const CHUNK = 1 << CHUNK_BITS // pairs per chunk of the open minute (the first starts smaller)
const CHUNK_BYTES = 16384 // a full chunk: CHUNK entries (u32) then CHUNK deltas (i32), from the thread's chunk pool
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
// Per thread: the sort's second buffers and a gather buffer, kept up to SCRATCH_KEEP pairs (larger
// ones are made per sort). Transient arrays of every size left holes in the heap that stay in the
// resident set, so the common sizes reuse these.
const SCRATCH_KEEP = 1 << 16
let scratchE: Uint32Array | null = null
let scratchD: Float64Array | null = null
let gatherE: Uint32Array | null = null
let gatherD: Float64Array | null = null

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
  let te: Uint32Array
  let td: Float64Array
  if (n <= SCRATCH_KEEP) {
    te = scratchE ??= new Uint32Array(SCRATCH_KEEP)
    td = scratchD ??= new Float64Array(SCRATCH_KEEP)
  } else {
    te = new Uint32Array(n)
    td = new Float64Array(n)
  }
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

let dense: Float64Array | null = null // per thread: sums by entry, all 0 between uses

/**
 * Sorts n pairs by entry, sums each entry's deltas and drops zero sums, in place; returns the
 * count left. When the entries are dense (as a partition's counters are: 0 … count − 1) they are
 * summed straight into a per-thread array indexed by entry and read back in order, which costs
 * one pass less than the radix sort and no scatter.
 */
export function sumPairs (e: Uint32Array, d: Float64Array, n: number): number {
  let max = 0
  for (let i = 0; i < n; i++) if (e[i] > max) max = e[i]
  if (n < 48 || max > 4 * n + 4096) {
    sortPairs(e, d, n)
    return mergeRuns(e, d, n)
  }
  let sums = dense
  if (sums === null || sums.length <= max) sums = dense = new Float64Array(Math.max(max + 1, 2 * (sums?.length ?? 0)))
  for (let i = 0; i < n; i++) sums[e[i]] += d[i]
  let out = 0
  for (let k = 0; k <= max; k++) {
    const v = sums[k]
    if (v === 0) continue
    e[out] = k
    d[out] = v
    sums[k] = 0
    out++
  }
  return out
}

function fitsInt32 (d: number): boolean { return d <= INT32_MAX && d >= -INT32_MAX }

function closedOf (minute: number, e: Uint32Array, d: Float64Array, n: number): ClosedMinute {
  let small = true
  for (let i = 0; i < n; i++) if (!fitsInt32(d[i])) { small = false; break }
  return { minute, entries: e.slice(0, n), deltas: small ? new Int32Array(d.subarray(0, n)) : d.slice(0, n) }
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

// Per thread: sealed records' pairs on their way to their partitions' open minutes. Appending a
// record's few pairs straight to its partition's chunks missed the cache on that partition's
// arrays at nearly every record (a shard seals each of its partitions per commit, with much else
// in between); staged here they are copied to each partition in one run per partition, when the
// stage is full or before anything reads or closes a minute holding staged pairs.
const STAGE = 8192 // pairs (and at most as many records)
let stageE: Int32Array | null = null
let stageD: Float64Array | null = null
let stageN = 0
let segs = 0 // records staged
const segStart = new Int32Array(STAGE)
const segLen = new Int32Array(STAGE)
const segNext = new Int32Array(STAGE) // the owner's next staged record, −1: none
const stagedOwners: MinuteHistory[] = [] // histories with staged records, in the order first staged

/** Moves every staged pair into its history's open minute (the minute open when it was staged). */
function flushStage (): void {
  const e = stageE as Int32Array
  const d = stageD as Float64Array
  for (const h of stagedOwners) h.takeStaged(e, d)
  stagedOwners.length = 0
  stageN = 0
  segs = 0
}

export class MinuteHistory {
  /** Closed minutes, oldest first. */
  readonly closed: ClosedMinute[] = []
  private openMinute = -1 // −1: none yet
  private openE: Uint32Array[] = []
  private openD: Array<Int32Array | Float64Array> = [] // i32 until a delta does not fit
  private openRaw: Array<Uint8Array | null> = [] // a full chunk's memory, given back to the pool when dropped
  private openN = 0 // pairs in the open minute
  private compactAt = MIN_COMPACT
  // Pairs of a record older than the open minute (a clock that stepped back): merged at end().
  private lateMinute = -1
  private lateE: number[] = []
  private lateD: number[] = []
  // This history's staged records (segment indexes into the thread's stage), −1: none.
  private stageFirst = -1
  private stageLast = -1

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
      if (this.stageFirst >= 0) flushStage()
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
    this.room()
    const n = this.openN
    const c = n >>> CHUNK_BITS
    let ds = this.openD[c]
    if (!fitsInt32(d) && ds instanceof Int32Array) ds = this.openD[c] = Float64Array.from(ds)
    this.openE[c][n & (CHUNK - 1)] = e
    ds[n & (CHUNK - 1)] = d
    this.openN = n + 1
  }

  /**
   * push() of a record's n pairs at once (a sealed record's): staged, then copied to the open
   * minute with other records of this partition. Zero deltas are kept (a compaction drops them).
   */
  pushMany (es: Int32Array, ds: Float64Array, n: number): void {
    if (this.lateMinute >= 0) {
      for (let i = 0; i < n; i++) { this.lateE.push(es[i]); this.lateD.push(ds[i]) }
      return
    }
    if (n === 0) return
    if (n > STAGE >>> 2) { // a large record is a run on its own
      if (this.stageFirst >= 0) flushStage()
      this.appendMany(es, ds, 0, n)
      return
    }
    if (stageN + n > STAGE || segs === STAGE) flushStage()
    const e = stageE ??= new Int32Array(STAGE)
    const d = stageD ??= new Float64Array(STAGE)
    const at = stageN
    for (let i = 0; i < n; i++) { e[at + i] = es[i]; d[at + i] = ds[i] }
    stageN = at + n
    const seg = segs++
    segStart[seg] = at
    segLen[seg] = n
    segNext[seg] = -1
    if (this.stageLast < 0) {
      this.stageFirst = seg
      stagedOwners.push(this)
    } else {
      segNext[this.stageLast] = seg
    }
    this.stageLast = seg
  }

  /** flushStage()'s part for this history: its staged records into the open minute. */
  takeStaged (e: Int32Array, d: Float64Array): void {
    for (let s = this.stageFirst; s >= 0; s = segNext[s]) this.appendMany(e, d, segStart[s], segLen[s])
    this.stageFirst = -1
    this.stageLast = -1
    if (this.openN >= this.compactAt) this.compactOpen()
  }

  /** Appends pairs from..from+n of es/ds to the open minute: a copy per chunk. */
  private appendMany (es: Int32Array, ds: Float64Array, from: number, n: number): void {
    let i = from
    const stop = from + n
    while (i < stop) {
      this.room()
      const at0 = this.openN
      const c = at0 >>> CHUNK_BITS
      const base = at0 & (CHUNK - 1)
      const E = this.openE[c]
      const k = Math.min(stop - i, E.length - base)
      const D = this.openD[c]
      let j = 0
      if (D instanceof Int32Array) {
        for (; j < k; j++) {
          const d = ds[i + j]
          if (d > INT32_MAX || d < -INT32_MAX) break
          E[base + j] = es[i + j]
          D[base + j] = d
        }
      }
      if (j < k) {
        // A delta past 32 bits: this chunk's deltas become f64 (Float64 already, or converted now).
        const F = D instanceof Float64Array ? D : (this.openD[c] = Float64Array.from(D))
        for (; j < k; j++) {
          E[base + j] = es[i + j]
          F[base + j] = ds[i + j]
        }
      }
      this.openN = at0 + k
      i += k
    }
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
    if (this.stageFirst >= 0) flushStage()
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

  /** Every minute kept, oldest first (the open one compacted): (minute, entries sorted, deltas, n). */
  forEachMinute (cb: (minute: number, entries: Uint32Array, deltas: Int32Array | Float64Array, n: number) => void): void {
    if (this.stageFirst >= 0) flushStage()
    for (const m of this.closed) cb(m.minute, m.entries, m.deltas, m.entries.length)
    this.compactOpen()
    if (this.openN > 0) {
      const { e, d } = this.gatherOpen()
      cb(this.openMinute, e, d, this.openN)
    }
  }

  /** Pairs kept (4 + 4 or 8 bytes each, besides the open minute's last chunk). */
  get pairs (): number {
    if (this.stageFirst >= 0) flushStage()
    let n = this.openN
    for (const m of this.closed) n += m.entries.length
    return n
  }

  /** Gives the open minute's chunks back to the pool; the history must not be used afterwards. */
  dispose (): void {
    if (this.stageFirst >= 0) flushStage()
    this.keepChunks(0)
    this.openN = 0
    this.closed.length = 0
  }

  /** Makes the pair at openN writable: a first chunk, a larger first chunk, or a new full chunk. */
  private room (): void {
    const n = this.openN
    const c = n >>> CHUNK_BITS
    const at = n & (CHUNK - 1)
    if (c === this.openE.length) {
      if (c === 0) {
        this.openE.push(new Uint32Array(FIRST_CHUNK))
        this.openD.push(new Int32Array(FIRST_CHUNK))
        this.openRaw.push(null)
      } else {
        this.addFullChunk()
      }
    } else if (at === this.openE[c].length) {
      // Only the first chunk starts short (a partition with little history stays small): grow it.
      const oldE = this.openE[c]
      const oldD = this.openD[c]
      if (at * 4 < CHUNK) {
        this.openE[c] = new Uint32Array(at * 4)
        this.openD[c] = oldD instanceof Int32Array ? new Int32Array(at * 4) : new Float64Array(at * 4)
      } else {
        this.openE.pop(); this.openD.pop(); this.openRaw.pop()
        this.addFullChunk()
        if (!(oldD instanceof Int32Array)) this.openD[c] = new Float64Array(CHUNK)
      }
      this.openE[c].set(oldE)
      this.openD[c].set(oldD)
    }
  }

  /**
   * A full-size chunk from the thread's chunk pool (the key tables' 1 MiB slabs): long-lived 4 KiB
   * arrays among the service's transient buffers left holes in the resident set.
   */
  private addFullChunk (): void {
    const raw = chunkPool.take()
    this.openRaw.push(raw)
    this.openE.push(new Uint32Array(raw.buffer, raw.byteOffset, CHUNK))
    this.openD.push(new Int32Array(raw.buffer, raw.byteOffset + CHUNK_BYTES / 2, CHUNK))
  }

  /** Keeps the first `chunks` chunks of the open minute, giving the others back. */
  private keepChunks (chunks: number): void {
    for (let c = chunks; c < this.openRaw.length; c++) {
      const raw = this.openRaw[c]
      if (raw !== null) chunkPool.give(raw)
    }
    this.openE.length = chunks
    this.openD.length = chunks
    this.openRaw.length = chunks
  }

  /** Drops minutes at or before `newest − retention`. */
  private evict (): void {
    const oldest = this.openMinute - this.retention
    let k = 0
    while (k < this.closed.length && this.closed[k].minute <= oldest) k++
    if (k > 0) this.closed.splice(0, k)
  }

  /** The open minute's pairs in one pair of arrays (a thread scratch up to SCRATCH_KEEP pairs). */
  private gatherOpen (): { e: Uint32Array, d: Float64Array } {
    const n = this.openN
    let e: Uint32Array
    let d: Float64Array
    if (n <= SCRATCH_KEEP) {
      e = gatherE ??= new Uint32Array(SCRATCH_KEEP)
      d = gatherD ??= new Float64Array(SCRATCH_KEEP)
    } else {
      e = new Uint32Array(n)
      d = new Float64Array(n)
    }
    for (let c = 0; c < this.openE.length; c++) {
      const len = Math.min(this.openE[c].length, n - c * CHUNK)
      if (len <= 0) break
      e.set(this.openE[c].subarray(0, len), c * CHUNK)
      d.set(this.openD[c].subarray(0, len), c * CHUNK)
    }
    return { e, d }
  }

  /**
   * Sums the open minute's pairs per counter, in entry order, zeros dropped: the minute stays open.
   * Entries are dense (a partition's counters are 0 … count − 1), so this usually sums straight
   * from the chunks into a per-thread array indexed by entry and writes the sums back in order.
   */
  private compactOpen (): void {
    const n = this.openN
    let max = 0
    for (let c = 0; c < this.openE.length; c++) {
      const es = this.openE[c]
      const len = Math.min(es.length, n - c * CHUNK)
      for (let i = 0; i < len; i++) if (es[i] > max) max = es[i]
    }
    let out: number
    if (n >= 48 && max <= 4 * n + 4096) {
      let sums = dense
      if (sums === null || sums.length <= max) sums = dense = new Float64Array(Math.max(max + 1, 2 * (sums?.length ?? 0)))
      for (let c = 0; c < this.openE.length; c++) {
        const es = this.openE[c]
        const ds = this.openD[c]
        const len = Math.min(es.length, n - c * CHUNK)
        for (let i = 0; i < len; i++) sums[es[i]] += ds[i]
      }
      out = 0
      for (let k = 0; k <= max; k++) {
        const v = sums[k]
        if (v === 0) continue
        sums[k] = 0
        const c = out >>> CHUNK_BITS
        const at = out & (CHUNK - 1)
        this.openE[c][at] = k
        let ds = this.openD[c]
        if (!fitsInt32(v) && ds instanceof Int32Array) ds = this.openD[c] = Float64Array.from(ds)
        ds[at] = v
        out++
      }
    } else {
      const { e, d } = this.gatherOpen()
      out = sumPairs(e, d, n)
      for (let i = 0; i < out; i++) {
        const c = i >>> CHUNK_BITS
        const at = i & (CHUNK - 1)
        this.openE[c][at] = e[i]
        let ds = this.openD[c]
        if (!fitsInt32(d[i]) && ds instanceof Int32Array) ds = this.openD[c] = Float64Array.from(ds)
        ds[at] = d[i]
      }
    }
    // The chunks no longer needed are given up.
    this.keepChunks(out === 0 ? 0 : 1 + ((out - 1) >>> CHUNK_BITS))
    this.openN = out
    this.compactAt = Math.max(MIN_COMPACT, 2 * out)
  }

  private closeOpen (): void {
    this.compactOpen()
    const n = this.openN
    if (n > 0) {
      const entries = new Uint32Array(n)
      let small = true
      for (let c = 0; c < this.openD.length; c++) if (!(this.openD[c] instanceof Int32Array)) small = false
      const deltas = small ? new Int32Array(n) : new Float64Array(n)
      for (let c = 0; c < this.openE.length; c++) {
        const len = Math.min(this.openE[c].length, n - c * CHUNK)
        entries.set(this.openE[c].subarray(0, len), c * CHUNK)
        deltas.set(this.openD[c].subarray(0, len), c * CHUNK)
      }
      this.closed.push({ minute: this.openMinute, entries, deltas })
    }
    this.keepChunks(0)
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
    const left = sumPairs(e, d, n)
    const seg = left > 0 ? closedOf(m, e, d, left) : null
    if (old !== null) {
      if (seg !== null) this.closed[at] = seg
      else this.closed.splice(at, 1)
    } else if (seg !== null) {
      this.closed.splice(at < 0 ? this.closed.length : at, 0, seg)
    }
  }
}
