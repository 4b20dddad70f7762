// The state of one partition: its counters (a KeyTable), its dedup tables, and the net deltas not
// yet sealed into a log record. Owned by exactly one actor host thread; everything is synchronous.
//
// Memory per counter is what a node's capacity is made of, so each entry keeps only what cannot be
// derived (about 14 bytes + the key here and in the table, besides the table's slots):
//   the table's 16-byte record: value f64; the recent rate f32, forward-decayed
//     (Σ d·e^((t − landmark)/τ) over own increments d at t), so an increment adds one product and
//     needs no timestamp per entry; the key's place u32 with two flags in its top bits (touched
//     since the last seal, changed since the last capture);
//   the key as u8 length | bytes in the table's arena;
//   and its slot (5 to 7.5 bytes).
// This replica's PN totals (P, N) are derived while they can be: N is 0 until some counter is
// decremented (then `ns` holds N per entry), and P = value − pending + N as long as no other
// replica contributed to any counter and every total is a safe integer; after that `ps` holds P
// per entry. A node of one replica that only increments never allocates either.
// The net delta of a counter since the last seal is not kept per entry either: the first change
// after a seal lists the entry in `touched` with its value then, and the seal logs value − that.
// Per-minute history (without ClickHouse) is not kept per entry either: each sealed or replayed
// record adds its net deltas to the minute of its ts (minute-history.ts), so a counter costs
// nothing there until it changes, and then a pair per minute it changed in.
import os from 'node:os'
import { NS_SEPARATOR_BYTE, prefixOf } from '../src/core/namespaces'
import {
  EncodedRecord, RecordFormatError, decodeTail, dedupSize, featuresSize, recordHeaderSize, writeDedupEntries, writeFeatures, writeRecordHeader,
  type PayloadLayout
} from '../src/core/record-codec'
import {
  DEDUP_IDEMPOTENCY, DEDUP_STREAM, FEATURE_ACTOR, FEATURE_LIKE, FEATURE_UNLIKE, packedCheckpoint,
  type Checkpoint, type DedupEntry, type DeltaRecord, type FeatureOp, type PackedCounters
} from '../src/core/records'
import { streamAdd } from '../src/core/stream-dedup'
import { STEP_SECONDS, minuteRange, type HistoryPoint, type HistoryStep } from '../src/core/history'
import { FeatureState } from './feature-state'
import { FLAG_A, FLAG_B, KeyTable, RECORD_CHUNK_BITS, hashBytes } from './key-table'
import { MinuteHistory } from './minute-history'

/** Recent rates decay with this time constant: a rate is "per second over about the last minute". */
const RATE_TAU_MS = 60_000
/** Forward-decayed rates grow as e^((t − landmark)/τ): past this many τ the landmark moves up (float32 range). */
const RATE_SPAN = 30
/** The smallest positive float32: a counter ever incremented keeps a rate above 0 (top() lists it). */
const MIN_RATE = 2 ** -149

const TOUCHED = FLAG_A // entry flag: changed since the last seal (listed in touchedList)
const DIRTY = FLAG_B // entry flag: changed since the last capture (listed in dirtyList)
const CB = RECORD_CHUNK_BITS
const IN_CHUNK = (1 << CB) - 1
const SMALL_LIST = 16 // touched entries found by a scan up to this many, else through an index

export interface PartitionOptions {
  partition: number
  epoch: number
  replica: string
  dedupWindowMs: number
  dedupMaxEntries: number
  trackDirty: boolean
  sampleSize: number
  /** Minutes of per-minute history kept by the partition (0 or absent: none; ClickHouse has it). */
  historyMinutes?: number
}

export const MAX_VALUE = Number.MAX_SAFE_INTEGER

/** Insertion-ordered map with a time window and a size cap: the oldest entries go first. */
export class DedupTable {
  private readonly entries = new Map<string, { value: number, ts: number }>()

  constructor (private readonly windowMs: number, private readonly maxEntries: number) {}

  get (tag: string, now: number): number | undefined {
    const e = this.entries.get(tag)
    if (e === undefined || now - e.ts > this.windowMs) return undefined
    return e.value
  }

  set (tag: string, value: number, ts: number): void {
    this.entries.delete(tag) // re-insert so iteration order stays oldest-first
    this.entries.set(tag, { value, ts })
    this.evict(ts)
  }

  evict (now: number): void {
    for (const [tag, e] of this.entries) {
      if (this.entries.size <= this.maxEntries && now - e.ts <= this.windowMs) break
      this.entries.delete(tag)
    }
  }

  toEntries (kind: DedupEntry['kind'], out: DedupEntry[]): void {
    for (const [tag, e] of this.entries) out.push({ kind, tag, value: e.value, ts: e.ts })
  }

  get size (): number { return this.entries.size }
}

const LITTLE_ENDIAN = os.endianness() === 'LE'

/** Writes a's first n elements at buf[o] little-endian (a byte copy on a little-endian host); returns the end. */
function putLE (buf: Buffer, o: number, a: Uint32Array | Int32Array | Float64Array, n: number): number {
  const bytes = n * a.BYTES_PER_ELEMENT
  if (LITTLE_ENDIAN) {
    buf.set(new Uint8Array(a.buffer, a.byteOffset, bytes), o)
    return o + bytes
  }
  for (let i = 0; i < n; i++) {
    if (a instanceof Float64Array) o = buf.writeDoubleLE(a[i], o)
    else if (a instanceof Int32Array) o = buf.writeInt32LE(a[i], o)
    else o = buf.writeUInt32LE(a[i], o)
  }
  return o
}

/** Whether a minute's deltas need f64 in a snapshot (some delta past 32 bits). */
function isWide (d: Int32Array | Float64Array, n: number): boolean {
  if (d instanceof Int32Array) return false
  for (let i = 0; i < n; i++) if (d[i] > 0x7fffffff || d[i] < -0x7fffffff) return true
  return false
}

// Per thread: encodeHistory's work arrays, grown as needed (every partition of the thread uses them in turn).
const encodeScratch = { index: new Int32Array(0), order: new Int32Array(0), u32: new Uint32Array(0), i32: new Int32Array(0) }

// Per thread: a sealed record's net deltas on their way to the minute history. Kept up to
// SEAL_DELTAS_KEEP (a record of a larger burst gets its own).
const SEAL_DELTAS_KEEP = 1 << 14
let sealDeltasScratch = new Float64Array(256)
function sealDeltas (n: number): Float64Array {
  if (n <= sealDeltasScratch.length) return sealDeltasScratch
  if (n > SEAL_DELTAS_KEEP) return new Float64Array(n)
  return (sealDeltasScratch = new Float64Array(Math.min(SEAL_DELTAS_KEEP, Math.max(n, 2 * sealDeltasScratch.length))))
}

function grown<T extends Int32Array | Uint8Array | Float64Array | Float32Array> (a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n)
  b.set(a.length > n ? a.subarray(0, n) as never : a as never)
  return b
}

interface ForeignChange { delta: number, p: number, n: number }

export class PartitionState {
  readonly partition: number
  epoch: number
  readonly replica: string
  readonly table = new KeyTable()
  readonly features: FeatureState
  readonly streams: DedupTable // clientId → last applied frame seq
  readonly idempotency: DedupTable // key + '\n' + Idempotency-Key → value returned
  seq = 0 // seq of the last record sealed (or recovered)
  nonZero = 0 // counters whose value is not 0
  readonly historyMinutes: number
  // Net change per counter per minute, from the records' deltas and ts; made on the first record.
  private minutes: MinuteHistory | null = null

  // Per entry, parallel to the table's records (see the top of this file).
  private rateLandmark = Date.now() // ms
  private replayedEpoch = 0 // the epoch of the checkpoint loaded or the last record replayed
  private ns: Float64Array | null = null // this replica's N per entry; null: every N is 0
  private ps: Float64Array | null = null // this replica's P per entry; null: P = value − pending + N

  // Since the last seal: the entries touched with their values before (the net delta of each is
  // value − base), dedup entries and feature ops to log with them, and changes merged from other
  // replicas (logged under their replica id).
  private touchedList = new Int32Array(64)
  private touchedBase = new Float64Array(64)
  private touchedCount = 0
  private touchedMaxAbs = 0 // the largest |base|: bounds a net delta without looking it up
  private touchedIndex: Map<number, number> | null = null // entry → position, when many are touched
  private pendingDedup: DedupEntry[] = []
  private pendingFeatures: FeatureOp[] = []
  private readonly pendingForeign = new Map<string, Map<string, ForeignChange>>()
  // Entries changed since the last checkpoint capture (for incremental checkpoint stores).
  private readonly trackDirty: boolean
  private dirtyList = new Int32Array(0)
  private dirtyCount = 0

  constructor (o: PartitionOptions) {
    this.partition = o.partition
    this.epoch = o.epoch
    this.replica = o.replica
    this.features = new FeatureState(o.replica, o.sampleSize)
    this.streams = new DedupTable(o.dedupWindowMs, o.dedupMaxEntries)
    this.idempotency = new DedupTable(o.dedupWindowMs, o.dedupMaxEntries)
    this.trackDirty = o.trackDirty
    this.historyMinutes = o.historyMinutes ?? 0
    if (o.trackDirty) this.dirtyList = new Int32Array(64)
    // The table grows a chunk at a time; these (rarely there) grow by half, so copies stay few.
    this.table.onGrow = (n) => {
      if (this.ns !== null && this.ns.length < n) this.ns = grown(this.ns, Math.max(n, Math.ceil(this.ns.length * 1.5)))
      if (this.ps !== null && this.ps.length < n) this.ps = grown(this.ps, Math.max(n, Math.ceil(this.ps.length * 1.5)))
    }
  }

  get hasPending (): boolean {
    return this.touchedCount > 0 || this.pendingDedup.length > 0 || this.pendingFeatures.length > 0 || this.pendingForeign.size > 0
  }

  get (buf: Uint8Array, off: number, len: number, h: number): number {
    const e = this.table.find(buf, off, len, h)
    return e < 0 ? 0 : this.table.value(e)
  }

  /** Applies one increment; returns the new value, or NaN (nothing applied) when it would leave ±(2^53−1). */
  increment (buf: Uint8Array, off: number, len: number, h: number, delta: number, sealInto: DeltaRecord[]): number {
    const e = this.table.findOrInsert(buf, off, len, h)
    return this.add(e, delta, sealInto)
  }

  /**
   * Resets to 0, logged as the delta −value so the log stays a log of deltas. Returns the value
   * before (Redis DEL answers whether there was one).
   */
  reset (buf: Uint8Array, off: number, len: number, h: number, sealInto: DeltaRecord[]): number {
    const e = this.table.find(buf, off, len, h)
    if (e < 0) return 0
    const before = this.table.value(e)
    this.add(e, -before, sealInto)
    return before
  }

  private add (e: number, delta: number, sealInto: DeltaRecord[]): number {
    const t = this.table
    const f64 = t.f64s[e >>> CB]
    const r = e & IN_CHUNK
    const cur = f64[r << 1]
    const next = cur + delta
    if (next > MAX_VALUE || next < -MAX_VALUE) return NaN
    // A record's net delta (next − base) must stay a safe integer too; seal first if it would not.
    if ((t.u32s[e >>> CB][(r << 2) + 3] & TOUCHED) === 0) {
      if (delta > MAX_VALUE || delta < -MAX_VALUE) this.seal(Date.now(), sealInto)
      this.touch(e, cur)
    } else if (Math.abs(next) + this.touchedMaxAbs > MAX_VALUE) {
      const net = next - this.touchedBase[this.touchedPos(e)]
      if (net > MAX_VALUE || net < -MAX_VALUE) {
        this.seal(Date.now(), sealInto)
        this.touch(e, cur)
      }
    }
    f64[r << 1] = next
    if (cur === 0 && next !== 0) this.nonZero++
    else if (cur !== 0 && next === 0) this.nonZero--
    return next
  }

  private touch (e: number, base: number): void {
    const i = this.touchedCount
    if (i === this.touchedList.length) {
      this.touchedList = grown(this.touchedList, i * 2)
      this.touchedBase = grown(this.touchedBase, i * 2)
    }
    this.touchedList[i] = e
    this.touchedBase[i] = base
    this.touchedCount = i + 1
    this.table.setFlag(e, TOUCHED)
    const abs = Math.abs(base)
    if (abs > this.touchedMaxAbs) this.touchedMaxAbs = abs
    this.touchedIndex?.set(e, i)
  }

  /** Position of a touched entry in touchedList. */
  private touchedPos (e: number): number {
    const n = this.touchedCount
    if (this.touchedIndex === null) {
      if (n <= SMALL_LIST) {
        for (let i = 0; i < n; i++) if (this.touchedList[i] === e) return i
        throw new Error(`entry ${e} is not touched`)
      }
      const index = this.touchedIndex = new Map()
      for (let i = 0; i < n; i++) index.set(this.touchedList[i], i)
    }
    const i = this.touchedIndex.get(e)
    if (i === undefined) throw new Error(`entry ${e} is not touched`)
    return i
  }

  /** Net delta of entry e since the last seal. */
  private pendingOf (e: number): number {
    return this.touchedCount === 0 || !this.table.hasFlag(e, TOUCHED) ? 0 : this.table.value(e) - this.touchedBase[this.touchedPos(e)]
  }

  private clearTouched (): void {
    const list = this.touchedList
    for (let i = 0; i < this.touchedCount; i++) this.table.clearFlag(list[i], TOUCHED)
    // A burst (a large commit window) leaves a large list: give most of it back.
    if (list.length > 4096 && this.touchedCount * 4 < list.length) {
      const n = Math.max(64, this.touchedCount * 2)
      this.touchedList = new Int32Array(n)
      this.touchedBase = new Float64Array(n)
    }
    this.touchedCount = 0
    this.touchedMaxAbs = 0
    this.touchedIndex = null
  }

  private markDirty (e: number): void {
    if (!this.trackDirty || this.table.hasFlag(e, DIRTY)) return
    this.table.setFlag(e, DIRTY)
    if (this.dirtyCount === this.dirtyList.length) this.dirtyList = grown(this.dirtyList, Math.max(64, this.dirtyCount * 2))
    this.dirtyList[this.dirtyCount++] = e
  }

  /**
   * Sets entry e's value for a reason other than this replica's own ops (another replica's
   * totals, a checkpoint): the net delta pending for the next seal stays what it was.
   */
  private changeValue (e: number, value: number): void {
    const t = this.table
    const cur = t.value(e)
    if (this.touchedCount > 0 && t.hasFlag(e, TOUCHED)) {
      const i = this.touchedPos(e)
      const base = this.touchedBase[i] += value - cur
      if (Math.abs(base) > this.touchedMaxAbs) this.touchedMaxAbs = Math.abs(base)
    }
    t.setValue(e, value)
    this.markDirty(e)
    if (cur === 0 && value !== 0) this.nonZero++
    else if (cur !== 0 && value === 0) this.nonZero--
  }

  /** This replica's N of entry e. */
  private ownN (e: number): number {
    return this.ns === null ? 0 : this.ns[e]
  }

  /** This replica's P of entry e. */
  private ownP (e: number): number {
    return this.ps !== null ? this.ps[e] : this.table.value(e) - this.pendingOf(e) + this.ownN(e)
  }

  private allocNs (): Float64Array {
    return (this.ns = new Float64Array(this.table.capacity))
  }

  /**
   * From now on P is kept per entry rather than derived: another replica contributed to a value,
   * a checkpoint holds totals that are not value + N, or a total is about to pass 2^53 − 1.
   */
  private makePExplicit (): void {
    if (this.ps !== null) return
    const t = this.table
    const ps = new Float64Array(t.capacity)
    for (let e = 0; e < t.count; e++) ps[e] = this.ownP(e)
    this.ps = ps
  }

  /**
   * Counts an own net delta d of entry e (a seal, or a replayed record) in this replica's totals
   * and e's rate. Call it while e's value and pending delta are still as before d was sealed or
   * replayed (`pending`: e's pending delta then). w: rateWeight of d's time.
   */
  private countOwn (e: number, d: number, w: number, pending: number): void {
    if (d > 0) {
      const t = this.table
      if (this.ps === null && t.value(e) - pending + this.ownN(e) + d > MAX_VALUE) this.makePExplicit()
      if (this.ps !== null) this.ps[e] += d
      const f32 = t.f32s[e >>> CB]
      const r = ((e & IN_CHUNK) << 2) + 2
      f32[r] += d * w
      if (f32[r] === 0) f32[r] = MIN_RATE
    } else if (d < 0) {
      const ns = this.ns ?? this.allocNs()
      if (this.ps === null && ns[e] - d > MAX_VALUE) this.makePExplicit()
      ns[e] -= d
    }
  }

  /** The weight of an increment at time t (ms) in the forward-decayed rates. */
  private rateWeight (t: number): number {
    const x = (t - this.rateLandmark) / RATE_TAU_MS
    if (x <= RATE_SPAN) return Math.exp(x)
    // Move the landmark to t: every rate scales by e^(−x); none that was above 0 becomes 0.
    const f = Math.exp(-x)
    for (const f32 of this.table.f32s) {
      for (let r = 2; r < f32.length; r += 4) {
        if (f32[r] === 0) continue
        f32[r] *= f
        if (f32[r] === 0) f32[r] = MIN_RATE
      }
    }
    this.rateLandmark = t
    return 1
  }

  /** An increment that names its actor: counted, and seen by the unique count and the sample. */
  incrementWithActor (buf: Uint8Array, off: number, len: number, h: number, delta: number, actor: string, sealInto: DeltaRecord[]): number {
    const v = this.increment(buf, off, len, h, delta, sealInto)
    if (Number.isNaN(v)) return v
    const key = this.table.key(this.table.find(buf, off, len, h))
    this.features.addActor(key, actor)
    this.pendingFeatures.push({ kind: FEATURE_ACTOR, key, arg: actor })
    return v
  }

  /** An actor joins the counter's unique actors without changing its count: 1 if the HLL changed, else 0. */
  addActor (key: string, actor: string): number {
    const changed = this.features.addActor(key, actor)
    this.pendingFeatures.push({ kind: FEATURE_ACTOR, key, arg: actor })
    return changed ? 1 : 0
  }

  /** Returns the item's like count after; a like that was already there changes nothing. */
  like (item: string, user: string): number {
    if (this.features.likes.like(item, user)) this.pendingFeatures.push({ kind: FEATURE_LIKE, key: item, arg: user })
    return this.features.likes.count(item)
  }

  unlike (item: string, user: string): number {
    if (this.features.likes.unlike(item, user)) this.pendingFeatures.push({ kind: FEATURE_UNLIKE, key: item, arg: user })
    return this.features.likes.count(item)
  }

  /**
   * Merges another replica's totals for some counters (a record it logged or exported). Taking
   * the larger total is idempotent and order-free; what changed is logged under that replica.
   * Returns how many counters changed.
   */
  mergeReplica (replica: string, keys: readonly string[], ps: readonly number[], ns: readonly number[]): number {
    if (replica === this.replica) return 0 // our own totals: we are their source of truth
    let changed = 0
    let log = this.pendingForeign.get(replica)
    for (let i = 0; i < keys.length; i++) {
      const before = this.features.remote.get(keys[i])?.entry(replica)
      const delta = this.features.applyRemote(keys[i], replica, ps[i], ns[i])
      const now = this.features.remote.get(keys[i])?.entry(replica)
      if (now === undefined || (before !== undefined && before.p === now.p && before.n === now.n)) continue // nothing new
      if (delta !== 0) this.addForeign(this.table.entryOf(keys[i], true), delta)
      if (log === undefined) this.pendingForeign.set(replica, log = new Map())
      const prev = log.get(keys[i])
      log.set(keys[i], { delta: (prev?.delta ?? 0) + delta, p: now.p, n: now.n })
      changed++
    }
    return changed
  }

  /** Another replica's share of entry e's value changed by delta. */
  private addForeign (e: number, delta: number): void {
    if (delta !== 0) this.makePExplicit() // value − pending + N would count it as ours
    this.changeValue(e, this.table.value(e) + delta)
  }

  /** Other replicas' totals of a counter, and this replica's own. */
  replicas (buf: Uint8Array, off: number, len: number, h: number): Array<{ replica: string, p: number, n: number }> {
    const e = this.table.find(buf, off, len, h)
    const own = { replica: this.replica, p: e < 0 ? 0 : this.ownP(e), n: e < 0 ? 0 : this.ownN(e) }
    // Other replicas' totals may exist with no entry here (merged totals that left the value as it was).
    const key = e < 0 ? Buffer.from(buf.buffer, buf.byteOffset + off, len).toString('latin1') : this.table.key(e)
    return [own, ...this.features.remoteOf(key)]
  }

  /** Increments per second over about the last minute. */
  rate (buf: Uint8Array, off: number, len: number, h: number, now: number): number {
    const e = this.table.find(buf, off, len, h)
    return e < 0 ? 0 : this.rateAt(e, now)
  }

  private rateAt (e: number, now: number): number {
    const g = this.table.aux(e)
    // (0, not 0 × ∞, should a record from a clock far ahead have moved the landmark past now)
    return g === 0 ? 0 : g * Math.exp(-(now - this.rateLandmark) / RATE_TAU_MS) / (RATE_TAU_MS / 1000)
  }

  /**
   * The k counters (of `type`, or any) of namespace `ns` rising fastest: a scan, kept out of the
   * hot path. ns '' lists only keys of no namespace (src/core/namespaces.ts).
   */
  top (type: string | null, k: number, now: number, ns = ''): Array<{ key: string, rate: number }> {
    const t = this.table
    const best: Array<{ e: number, rate: number }> = []
    const p = prefixOf(ns) + (type === null ? '' : type + ':')
    const prefix = p === '' ? null : Buffer.from(p, 'latin1')
    for (let e = 0; e < t.count; e++) {
      if (t.aux(e) === 0) continue
      if (prefix !== null && !t.hasPrefix(e, prefix)) continue
      if (ns === '' && prefix === null && t.hasByte(e, NS_SEPARATOR_BYTE)) continue // (a type prefix already excludes them)
      const rate = this.rateAt(e, now)
      if (best.length === k && rate <= best[k - 1].rate) continue
      let i = best.length < k ? best.length : k - 1
      best[i] = { e, rate }
      for (; i > 0 && best[i - 1].rate < best[i].rate; i--) [best[i - 1], best[i]] = [best[i], best[i - 1]]
    }
    return best.map((b) => ({ key: t.key(b.e), rate: b.rate }))
  }

  /** A record of this replica's totals of every counter, for another region to merge. */
  exportTotals (now: number): DeltaRecord {
    const t = this.table
    const keys: string[] = []
    const ps: number[] = []
    const ns: number[] = []
    for (let e = 0; e < t.count; e++) {
      const p = this.ownP(e)
      const n = this.ownN(e)
      if (p === 0 && n === 0) continue
      keys.push(t.key(e))
      ps.push(p)
      ns.push(n)
    }
    return { partition: this.partition, epoch: this.epoch, seq: this.seq, ts: now, replica: this.replica, keys, deltas: new Array(keys.length).fill(0), ps, ns, dedup: [] }
  }

  /** Frame `seq` of a stream client was applied here (the entry keeps a window of seqs: src/core/stream-dedup.ts). */
  recordStream (clientId: string, seq: number, now: number): void {
    const value = streamAdd(this.streams.get(clientId, now), seq)
    this.streams.set(clientId, value, now)
    this.pendingDedup.push({ kind: DEDUP_STREAM, tag: clientId, value, ts: now })
  }

  recordIdempotent (tag: string, value: number, now: number): void {
    this.idempotency.set(tag, value, now)
    this.pendingDedup.push({ kind: DEDUP_IDEMPOTENCY, tag, value, ts: now })
  }

  /**
   * Moves everything pending into log records: one for this replica's own ops (encoded straight
   * from the key arena), and one per other replica whose totals were merged since the last seal.
   */
  seal (now: number, out: DeltaRecord[]): void {
    if (!this.hasPending) return
    if (this.touchedCount > 0 || this.pendingDedup.length > 0 || this.pendingFeatures.length > 0) this.sealOwn(now, out)
    for (const [replica, changes] of this.pendingForeign) {
      const keys = [...changes.keys()]
      const vals = [...changes.values()]
      out.push({
        partition: this.partition, epoch: this.epoch, seq: ++this.seq, ts: now, replica, keys, dedup: [],
        deltas: vals.map((c) => c.delta), ps: vals.map((c) => c.p), ns: vals.map((c) => c.n)
      })
      const hist = this.historyAt(now)
      for (let i = 0; i < keys.length; i++) {
        const e = this.table.entryOf(keys[i], false)
        if (e < 0) continue
        this.markDirty(e)
        hist?.push(e, vals[i].delta)
      }
      hist?.end()
    }
    this.pendingForeign.clear()
  }

  private sealOwn (now: number, out: DeltaRecord[]): void {
    const t = this.table
    const list = this.touchedList
    const base = this.touchedBase
    const n = this.touchedCount
    let size = recordHeaderSize(this.replica) + dedupSize(this.pendingDedup) + featuresSize(this.pendingFeatures)
    for (let i = 0; i < n; i++) size += 9 + t.keyLength(list[i])
    const buf = Buffer.allocUnsafe(size)
    const seq = ++this.seq
    let o = writeRecordHeader(buf, 0, this.partition, this.epoch, seq, now, this.replica, false, n)
    const w = this.rateWeight(now)
    const hist = this.historyAt(now)
    // The record's deltas for history, handed over at once after the loop.
    const hd = hist === null ? null : sealDeltas(n)
    for (let i = 0; i < n; i++) {
      const e = list[i]
      o = t.copyKey(e, buf, o)
      const v = t.value(e)
      const d = v - base[i]
      o = buf.writeDoubleLE(d, o)
      this.countOwn(e, d, w, d)
      base[i] = v // sealed: nothing pending for e any more
      this.markDirty(e)
      if (hd !== null) hd[i] = d
    }
    if (hist !== null && hd !== null) {
      hist.pushMany(list, hd, n)
      hist.end()
    }
    o = writeDedupEntries(buf, o, this.pendingDedup)
    writeFeatures(buf, o, this.pendingFeatures)
    this.clearTouched()
    this.pendingDedup = []
    this.pendingFeatures = []
    out.push(new EncodedRecord(this.partition, this.epoch, seq, now, buf))
  }

  /**
   * Applies a recovered log record (replay). Skipped: a copy (its epoch's seq at or below the
   * current one: a produce retried) and a stale owner's late record (an epoch below one already
   * applied: written after its successor took over, never acknowledged: see checkOwners). A
   * successor numbers its records on from what it loaded, so a record of a higher epoch is applied
   * even when a stale owner's late records already used its seq.
   */
  replay (r: DeltaRecord): boolean {
    if (r.epoch < this.replayedEpoch || (r.epoch === this.replayedEpoch && r.seq <= this.seq)) return false
    this.replayedEpoch = r.epoch
    if (r instanceof EncodedRecord) {
      const L = r.layout()
      if (L.replica === undefined || L.replica === this.replica) {
        this.replayOwnBytes(r.payload, L, r.ts)
        this.seq = r.seq
        return true
      }
    }
    const keys = r.keys
    const replica = r.replica ?? this.replica
    const hist = this.historyAt(r.ts)
    if (replica === this.replica) {
      const w = this.rateWeight(r.ts)
      for (let i = 0; i < keys.length; i++) {
        const e = this.table.entryOf(keys[i], true)
        this.replayOwn(e, r.deltas[i], w)
        hist?.push(e, r.deltas[i])
      }
    } else if (r.ps !== undefined && r.ns !== undefined) {
      for (let i = 0; i < keys.length; i++) {
        this.features.applyRemote(keys[i], replica, r.ps[i], r.ns[i])
        const e = this.table.entryOf(keys[i], true)
        this.addForeign(e, r.deltas[i])
        hist?.push(e, r.deltas[i])
      }
    }
    hist?.end()
    for (const f of r.features ?? []) this.features.apply(f)
    this.restoreDedup(r.dedup)
    this.seq = r.seq
    return true
  }

  /** Replay of this replica's own record straight from its bytes: no key strings (recovery speed). */
  private replayOwnBytes (buf: Buffer, L: PayloadLayout, ts: number): void {
    let o = L.keysAt
    const t = this.table
    const stride = L.totals ? 24 : 8
    const w = this.rateWeight(ts)
    const hist = this.historyAt(ts)
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    for (let i = 0; i < L.nKeys; i++) {
      const len = buf[o]
      const off = o + 1
      if (off + len + stride > buf.length) throw new RecordFormatError(`record truncated at byte ${o}`)
      const e = t.findOrInsert(buf, off, len, hashBytes(buf, off, len))
      const d = view.getFloat64(off + len, true)
      this.replayOwn(e, d, w)
      if (hist !== null) hist.push(e, d)
      o = off + len + stride
    }
    hist?.end()
    const { dedup, features } = decodeTail(buf, o, buf.length, L.version)
    for (const f of features) this.features.apply(f)
    this.restoreDedup(dedup)
  }

  /** One replayed own net delta: already sealed, so what is pending stays as it was. */
  private replayOwn (e: number, d: number, w: number): void {
    // Recovery has nothing touched: then the flags (another cache miss) are not read at all.
    const touched = this.touchedCount > 0 && this.table.hasFlag(e, TOUCHED)
    this.countOwn(e, d, w, touched ? this.pendingOf(e) : 0)
    const f64 = this.table.f64s[e >>> CB]
    const r = (e & IN_CHUNK) << 1
    const cur = f64[r]
    const next = cur + d
    if (touched) {
      const base = this.touchedBase[this.touchedPos(e)] += d
      if (Math.abs(base) > this.touchedMaxAbs) this.touchedMaxAbs = Math.abs(base)
    }
    f64[r] = next
    if (cur === 0 && next !== 0) this.nonZero++
    else if (cur !== 0 && next === 0) this.nonZero--
    this.markDirty(e)
  }

  /**
   * Loads a checkpoint (recovery). Counters come from `cp.packed` when it is there (a snapshot
   * file's: no string per key), else from its keys and values.
   */
  load (cp: Checkpoint): void {
    const packed = cp.packed
    if (packed !== undefined) {
      this.loadPacked(packed)
    } else {
      const t = this.table
      t.reserve(t.count + cp.keys.length)
      for (let i = 0; i < cp.keys.length; i++) {
        const v = cp.values[i]
        if (v === 0 && (cp.ps?.[i] ?? 0) === 0 && (cp.ns?.[i] ?? 0) === 0) continue
        this.setTotals(t.entryOf(cp.keys[i], true), v, cp.ps?.[i] ?? Math.max(v, 0), cp.ns?.[i] ?? Math.max(-v, 0))
      }
    }
    if (cp.features !== undefined) this.features.load(cp.features)
    if (cp.history !== undefined) this.loadHistory(cp.history)
    this.restoreDedup(cp.dedup)
    this.seq = cp.seq
    this.replayedEpoch = cp.epoch
  }

  /** Loads packed counters (as Checkpoint.packed holds them) straight into the table. */
  loadPacked (p: PackedCounters): void {
    const t = this.table
    t.reserve(t.count + p.count)
    const keys = p.keys
    let o = 0
    for (let i = 0; i < p.count; i++) {
      const len = keys[o]
      const off = o + 1
      o = off + len
      const v = p.values[i]
      const n = p.ns === null ? 0 : p.ns[i]
      const pv = p.ps === null ? v + n : p.ps[i]
      if (v === 0 && pv === 0 && n === 0) continue
      this.setTotals(t.findOrInsert(keys, off, len, hashBytes(keys, off, len)), v, pv, n)
    }
  }

  private setTotals (e: number, value: number, p: number, n: number): void {
    this.changeValue(e, value)
    if (n !== 0 || this.ns !== null) (this.ns ?? this.allocNs())[e] = n
    if (this.ps === null && (p !== value - this.pendingOf(e) + n || p > MAX_VALUE || n > MAX_VALUE)) this.makePExplicit()
    if (this.ps !== null) this.ps[e] = p
  }

  /** The minute history, ready for a record's pairs at `ts` (push, then end), or null: none kept. */
  private historyAt (ts: number): MinuteHistory | null {
    if (this.historyMinutes === 0) return null
    const h = this.minutes ??= new MinuteHistory(this.historyMinutes)
    return h.begin(ts) ? h : null
  }

  /**
   * Net change of a counter per step in [fromMs, toMs) from the minutes kept: the minutes older
   * than the retention before `now` are not answered (even while still held), so an answer does
   * not depend on when old minutes were dropped.
   */
  history (buf: Uint8Array, off: number, len: number, h: number, fromMs: number, toMs: number, step: HistoryStep, now: number): HistoryPoint[] {
    const e = this.table.find(buf, off, len, h)
    if (e < 0 || this.minutes === null) return []
    let { first, end } = minuteRange(fromMs, toMs)
    first = Math.max(first, Math.floor(now / 60_000) - this.historyMinutes + 1)
    const stepMin = STEP_SECONDS[step] / 60
    const buckets = new Map<number, number>()
    this.minutes.series(e, first, end, (minute, delta) => {
      const b = Math.floor(minute / stepMin) * stepMin
      buckets.set(b, (buckets.get(b) ?? 0) + delta)
    })
    const out: HistoryPoint[] = []
    for (const [b, v] of buckets) if (v !== 0) out.push({ ts: b * 60_000, value: v })
    return out.sort((a, b) => a.ts - b.ts)
  }

  /** (minute, pairs) held, for tests and memory probes. */
  get historyPairs (): number {
    return this.minutes?.pairs ?? 0
  }

  /**
   * The minute history as snapshot bytes: keys are stored rather than entries (entries are
   * renumbered by a load). u32 nKeys | nKeys × (u8 len | key) | u32 nMinutes | nMinutes ×
   * (f64 minute | u32 n | u8 width (4: i32 deltas, 8: f64) | n × u32 key index | n × delta).
   * A checkpoint rewrites all of it and runs too seldom for its code to be optimised, so the
   * per-pair work is a few tight loops and the arrays are copied as bytes.
   */
  private encodeHistory (): Buffer | undefined {
    const h = this.minutes
    if (h === null) return undefined
    const t = this.table
    const minutes: Array<{ m: number, e: Uint32Array, d: Int32Array | Float64Array, n: number }> = []
    h.forEachMinute((m, e, d, n) => { minutes.push({ m, e, d, n }) })
    // index: entry → key index, −1 until seen; order: key index → entry.
    const index = encodeScratch.index.length >= t.count ? encodeScratch.index : (encodeScratch.index = new Int32Array(t.count + (t.count >> 1)))
    const order = encodeScratch.order.length >= t.count ? encodeScratch.order : (encodeScratch.order = new Int32Array(index.length))
    index.fill(-1, 0, t.count)
    let nKeys = 0
    let maxN = 0
    let size = 4 + 4
    const wide: boolean[] = []
    for (const { e, d, n } of minutes) {
      const w = isWide(d, n)
      wide.push(w)
      size += 8 + 4 + 1 + n * (4 + (w ? 8 : 4))
      if (n > maxN) maxN = n
      for (let i = 0; i < n; i++) {
        const x = e[i]
        if (index[x] < 0) { index[x] = nKeys; order[nKeys++] = x }
      }
    }
    let keyBytes = 0
    for (let k = 0; k < nKeys; k++) keyBytes += 1 + t.keyLength(order[k])
    const buf = Buffer.allocUnsafe(size + keyBytes)
    let o = buf.writeUInt32LE(nKeys, 0)
    for (let k = 0; k < nKeys; k++) o = t.copyKey(order[k], buf, o)
    o = buf.writeUInt32LE(minutes.length, o)
    const ix = encodeScratch.u32.length >= maxN ? encodeScratch.u32 : (encodeScratch.u32 = new Uint32Array(maxN))
    for (let k = 0; k < minutes.length; k++) {
      const { m, e, d, n } = minutes[k]
      o = buf.writeDoubleLE(m, o)
      o = buf.writeUInt32LE(n, o)
      o = buf.writeUInt8(wide[k] ? 8 : 4, o)
      for (let i = 0; i < n; i++) ix[i] = index[e[i]]
      o = putLE(buf, o, ix, n)
      if (wide[k] || d instanceof Int32Array) {
        o = putLE(buf, o, d, n)
      } else {
        // f64 deltas that all fit in 32 bits are written as i32, as the minute would be once closed.
        const narrow = encodeScratch.i32.length >= n ? encodeScratch.i32 : (encodeScratch.i32 = new Int32Array(maxN))
        narrow.set(d.subarray(0, n))
        o = putLE(buf, o, narrow, n)
      }
    }
    return buf.subarray(0, o)
  }

  /** Loads history snapshot bytes (encodeHistory) into an empty history. */
  private loadHistory (buf: Buffer): void {
    if (this.historyMinutes === 0) return // kept by ClickHouse now: the old minutes are dropped
    const fail = (): never => { throw new RecordFormatError('snapshot history section is truncated') }
    const t = this.table
    if (buf.length < 8) fail()
    const nKeys = buf.readUInt32LE(0)
    let o = 4
    const entries = new Uint32Array(nKeys)
    for (let i = 0; i < nKeys; i++) {
      if (o >= buf.length || o + 1 + buf[o] > buf.length) fail()
      const len = buf[o]
      entries[i] = t.findOrInsert(buf, o + 1, len, hashBytes(buf, o + 1, len))
      o += 1 + len
    }
    if (o + 4 > buf.length) fail()
    const nMinutes = buf.readUInt32LE(o); o += 4
    this.minutes = null
    for (let k = 0; k < nMinutes; k++) {
      if (o + 13 > buf.length) fail()
      const m = buf.readDoubleLE(o)
      const n = buf.readUInt32LE(o + 8)
      const width = buf[o + 12]
      o += 13
      if ((width !== 4 && width !== 8) || o + n * (4 + width) > buf.length) fail()
      const hist = this.historyAt(m * 60_000)
      const at = o + n * 4
      for (let i = 0; i < n; i++) {
        const ki = buf.readUInt32LE(o + i * 4)
        if (ki >= nKeys) fail()
        hist?.push(entries[ki], width === 4 ? buf.readInt32LE(at + i * 4) : buf.readDoubleLE(at + i * 8))
      }
      hist?.end()
      o = at + n * width
    }
    if (o !== buf.length) throw new RecordFormatError(`snapshot history section has ${buf.length - o} trailing bytes`)
  }

  /** Keys holding `mark` with a value other than 0, and the values: a scan (after a load). */
  keysWith (mark: string): Array<[string, number]> {
    const t = this.table
    const out: Array<[string, number]> = []
    const first = mark.charCodeAt(0)
    for (let e = 0; e < t.count; e++) {
      const v = t.value(e)
      if (v === 0 || !t.hasByte(e, first)) continue
      const key = t.key(e)
      if (key.includes(mark)) out.push([key, v])
    }
    return out
  }

  /** String-keyed read (recovery, tests). */
  valueOf (key: string): number {
    const e = this.table.entryOf(key, false)
    return e < 0 ? 0 : this.table.value(e)
  }

  private restoreDedup (entries: DedupEntry[]): void {
    for (const d of entries) {
      if (d.kind === DEDUP_STREAM) this.streams.set(d.tag, d.value, d.ts)
      else if (d.kind === DEDUP_IDEMPOTENCY) this.idempotency.set(d.tag, d.value, d.ts)
    }
  }

  /**
   * The checkpoint as of `this.seq`. Call right after seal(): then the in-memory state is exactly
   * the state after record `seq`. `full` false: only counters changed since the previous capture.
   * The counters come packed (Checkpoint.packed; keys, values, ps and ns decode from it on use).
   */
  capture (full: boolean, now: number): Checkpoint {
    const t = this.table
    const all = full || !this.trackDirty
    let n = 0
    let keyBytes = 0
    let picked: Int32Array
    if (all) {
      picked = new Int32Array(t.count)
      for (let e = 0; e < t.count; e++) {
        if (t.value(e) === 0 && this.ownN(e) === 0 && this.ownP(e) === 0) continue
        picked[n++] = e
        keyBytes += 1 + t.keyLength(e)
      }
    } else {
      picked = this.dirtyList
      n = this.dirtyCount
      for (let i = 0; i < n; i++) keyBytes += 1 + t.keyLength(picked[i])
    }
    const keys = Buffer.allocUnsafe(keyBytes)
    const values = new Float64Array(n)
    // Without pending deltas and other replicas' shares P = value + N, which the packed form implies.
    const ps = this.ps !== null || this.touchedCount > 0 ? new Float64Array(n) : null
    const ns = this.ns !== null ? new Float64Array(n) : null
    let o = 0
    for (let i = 0; i < n; i++) {
      const e = picked[i]
      o = t.copyKey(e, keys, o)
      values[i] = t.value(e)
      if (ps !== null) ps[i] = this.ownP(e)
      if (ns !== null) ns[i] = this.ownN(e)
    }
    this.clearDirty()
    const dedup: DedupEntry[] = []
    this.streams.evict(now)
    this.idempotency.evict(now)
    this.streams.toEntries(DEDUP_STREAM, dedup)
    this.idempotency.toEntries(DEDUP_IDEMPOTENCY, dedup)
    const fields: Parameters<typeof packedCheckpoint>[0] = {
      partition: this.partition, epoch: this.epoch, seq: this.seq, ts: now, dedup,
      features: this.features.encode(), hlls: this.features.takeChangedHlls()
    }
    const history = this.encodeHistory()
    if (history !== undefined) fields.history = history
    return packedCheckpoint(fields, { count: n, keys, values, ps, ns })
  }

  /**
   * Gives the table's memory back to this thread's chunk pool, for the partitions made next (a
   * partition leaving this thread). The state must not be used afterwards.
   */
  dispose (): void {
    this.table.dispose()
    this.minutes?.dispose()
    this.minutes = null
    this.ns = null
    this.ps = null
    this.touchedCount = 0
    this.dirtyCount = 0
  }

  private clearDirty (): void {
    if (!this.trackDirty) return
    for (let i = 0; i < this.dirtyCount; i++) this.table.clearFlag(this.dirtyList[i], DIRTY)
    if (this.dirtyList.length > 4096 && this.dirtyCount * 4 < this.dirtyList.length) this.dirtyList = new Int32Array(Math.max(64, this.dirtyCount * 2))
    this.dirtyCount = 0
  }
}
