// The state of one partition: its counters (a KeyTable), its dedup tables, and the net deltas not
// yet sealed into a log record. Owned by exactly one actor host thread; everything is synchronous.
import { FNV_OFFSET, FNV_PRIME } from '../src/core/keys'
import {
  EncodedRecord, decodeTail, dedupSize, featuresSize, recordHeaderSize, writeDedupEntries, writeFeatures, writeRecordHeader,
  type PayloadLayout
} from '../src/core/record-codec'
import {
  DEDUP_IDEMPOTENCY, DEDUP_STREAM, FEATURE_ACTOR, FEATURE_LIKE, FEATURE_UNLIKE,
  type Checkpoint, type DedupEntry, type DeltaRecord, type FeatureOp
} from '../src/core/records'
import { FeatureState } from './feature-state'
import { KeyTable } from './key-table'

/** Recent rates decay with this time constant: a rate is "per second over about the last minute". */
const RATE_TAU_MS = 60_000

export interface PartitionOptions {
  partition: number
  epoch: number
  replica: string
  dedupWindowMs: number
  dedupMaxEntries: number
  trackDirty: boolean
  sampleSize: number
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

/** A growable list of entry indexes with a mark per entry, so each entry is listed once. */
class EntrySet {
  list = new Int32Array(64)
  count = 0
  mark = new Uint8Array(64)

  add (e: number): void {
    if (this.mark[e] !== 0) return
    this.mark[e] = 1
    if (this.count === this.list.length) this.list = grown(this.list, this.count * 2)
    this.list[this.count++] = e
  }

  clear (): void {
    for (let i = 0; i < this.count; i++) this.mark[this.list[i]] = 0
    this.count = 0
  }

  resize (entries: number): void { this.mark = grown(this.mark, entries) }
}

function grown<T extends Int32Array | Uint8Array | Float64Array | Float32Array> (a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n)
  b.set(a as never)
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

  // Per entry: this replica's PN-counter totals (values = P − N + other replicas' share), and a
  // decayed recent rate for top-K. Updated once per sealed record, not per op.
  private ps = new Float64Array(64)
  private ns = new Float64Array(64)
  private rates = new Float32Array(64) // a rate needs no more than float32's 7 digits
  private rateTs = new Float32Array(64) // seconds since this state was made
  private readonly born = Date.now()

  // Since the last seal: net delta per entry, the entries touched, dedup entries and feature ops
  // to log with them, and changes merged from other replicas (logged under their replica id).
  private pending = new Float64Array(64)
  private readonly touched = new EntrySet()
  private pendingDedup: DedupEntry[] = []
  private pendingFeatures: FeatureOp[] = []
  private readonly pendingForeign = new Map<string, Map<string, ForeignChange>>()
  // Entries changed since the last checkpoint capture (for incremental checkpoint stores).
  private readonly dirty: EntrySet | null

  constructor (o: PartitionOptions) {
    this.partition = o.partition
    this.epoch = o.epoch
    this.replica = o.replica
    this.features = new FeatureState(o.replica, o.sampleSize)
    this.streams = new DedupTable(o.dedupWindowMs, o.dedupMaxEntries)
    this.idempotency = new DedupTable(o.dedupWindowMs, o.dedupMaxEntries)
    this.dirty = o.trackDirty ? new EntrySet() : null
    this.table.onGrow = (n) => {
      this.pending = grown(this.pending, n)
      this.ps = grown(this.ps, n)
      this.ns = grown(this.ns, n)
      this.rates = grown(this.rates, n)
      this.rateTs = grown(this.rateTs, n)
      this.touched.resize(n)
      this.dirty?.resize(n)
    }
  }

  get hasPending (): boolean {
    return this.touched.count > 0 || this.pendingDedup.length > 0 || this.pendingFeatures.length > 0 || this.pendingForeign.size > 0
  }

  get (buf: Uint8Array, off: number, len: number, h: number): number {
    const e = this.table.find(buf, off, len, h)
    return e < 0 ? 0 : this.table.values[e]
  }

  /** Applies one increment; returns the new value, or NaN (nothing applied) when it would leave ±(2^53−1). */
  increment (buf: Uint8Array, off: number, len: number, h: number, delta: number, sealInto: DeltaRecord[]): number {
    const e = this.table.findOrInsert(buf, off, len, h)
    return this.add(e, delta, sealInto)
  }

  /** Resets to 0, logged as the delta −value so the log stays a log of deltas. */
  reset (buf: Uint8Array, off: number, len: number, h: number, sealInto: DeltaRecord[]): number {
    const e = this.table.find(buf, off, len, h)
    if (e >= 0) this.add(e, -this.table.values[e], sealInto)
    return 0
  }

  private add (e: number, delta: number, sealInto: DeltaRecord[]): number {
    const cur = this.table.values[e]
    const next = cur + delta
    if (next > MAX_VALUE || next < -MAX_VALUE) return NaN
    // A record's net delta must stay a safe integer too; seal first if it would not.
    if (Math.abs(this.pending[e] + delta) > MAX_VALUE) this.seal(Date.now(), sealInto)
    this.pending[e] += delta
    this.touched.add(e)
    this.table.values[e] = next
    if (cur === 0 && next !== 0) this.nonZero++
    else if (cur !== 0 && next === 0) this.nonZero--
    return next
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
      if (delta !== 0) this.setValue(keys[i], this.valueOf(keys[i]) + delta)
      if (log === undefined) this.pendingForeign.set(replica, log = new Map())
      const prev = log.get(keys[i])
      log.set(keys[i], { delta: (prev?.delta ?? 0) + delta, p: now.p, n: now.n })
      changed++
    }
    return changed
  }

  /** Other replicas' totals of a counter, and this replica's own. */
  replicas (buf: Uint8Array, off: number, len: number, h: number): Array<{ replica: string, p: number, n: number }> {
    const e = this.table.find(buf, off, len, h)
    const own = { replica: this.replica, p: e < 0 ? 0 : this.ps[e], n: e < 0 ? 0 : this.ns[e] }
    if (e < 0) return [own]
    return [own, ...this.features.remoteOf(this.table.key(e))]
  }

  /** Increments per second over about the last minute. */
  rate (buf: Uint8Array, off: number, len: number, h: number, now: number): number {
    const e = this.table.find(buf, off, len, h)
    return e < 0 ? 0 : this.rateAt(e, now)
  }

  private rateAt (e: number, now: number): number {
    return this.rates[e] * Math.exp(-(now - this.born - this.rateTs[e] * 1000) / RATE_TAU_MS) / (RATE_TAU_MS / 1000)
  }

  /** The k counters (of `type`, or any) rising fastest: a scan, kept out of the hot path. */
  top (type: string | null, k: number, now: number): Array<{ key: string, rate: number }> {
    const t = this.table
    const best: Array<{ e: number, rate: number }> = []
    const prefix = type === null ? null : Buffer.from(type + ':', 'latin1')
    for (let e = 0; e < t.count; e++) {
      if (this.rates[e] === 0) continue
      if (prefix !== null && !t.hasPrefix(e, prefix)) continue
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
      if (this.ps[e] === 0 && this.ns[e] === 0) continue
      keys.push(t.key(e))
      ps.push(this.ps[e])
      ns.push(this.ns[e])
    }
    return { partition: this.partition, epoch: this.epoch, seq: this.seq, ts: now, replica: this.replica, keys, deltas: new Array(keys.length).fill(0), ps, ns, dedup: [] }
  }

  recordStream (clientId: string, seq: number, now: number): void {
    this.streams.set(clientId, seq, now)
    this.pendingDedup.push({ kind: DEDUP_STREAM, tag: clientId, value: seq, ts: now })
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
    if (this.touched.count > 0 || this.pendingDedup.length > 0 || this.pendingFeatures.length > 0) this.sealOwn(now, out)
    for (const [replica, changes] of this.pendingForeign) {
      const keys = [...changes.keys()]
      const vals = [...changes.values()]
      out.push({
        partition: this.partition, epoch: this.epoch, seq: ++this.seq, ts: now, replica, keys, dedup: [],
        deltas: vals.map((c) => c.delta), ps: vals.map((c) => c.p), ns: vals.map((c) => c.n)
      })
      for (const k of keys) { const e = this.table.entryOf(k, false); if (e >= 0) this.dirty?.add(e) }
    }
    this.pendingForeign.clear()
  }

  private sealOwn (now: number, out: DeltaRecord[]): void {
    const t = this.table
    const list = this.touched.list
    const n = this.touched.count
    let size = recordHeaderSize(this.replica) + dedupSize(this.pendingDedup) + featuresSize(this.pendingFeatures)
    for (let i = 0; i < n; i++) size += 9 + t.keyLen[list[i]]
    const buf = Buffer.allocUnsafe(size)
    const seq = ++this.seq
    let o = writeRecordHeader(buf, 0, this.partition, this.epoch, seq, now, this.replica, false, n)
    for (let i = 0; i < n; i++) {
      const e = list[i]
      const len = t.keyLen[e]
      buf[o++] = len
      const arena = t.arena
      for (let k = t.keyOff[e], end = k + len; k < end; k++) buf[o++] = arena[k]
      const d = this.pending[e]
      o = buf.writeDoubleLE(d, o)
      this.pending[e] = 0
      this.countOwn(e, d, now)
      this.dirty?.add(e)
    }
    o = writeDedupEntries(buf, o, this.pendingDedup)
    writeFeatures(buf, o, this.pendingFeatures)
    this.touched.clear()
    this.pendingDedup = []
    this.pendingFeatures = []
    out.push(new EncodedRecord(this.partition, this.epoch, seq, now, buf))
  }

  /** A sealed (or replayed) own net delta: this replica's P or N grows, and the key's recent rate. */
  private countOwn (e: number, d: number, now: number): void {
    if (d > 0) {
      this.ps[e] += d
      const t = (now - this.born) / 1000
      this.rates[e] = this.rates[e] * Math.exp(-(t - this.rateTs[e]) * 1000 / RATE_TAU_MS) + d
      this.rateTs[e] = t
    } else {
      this.ns[e] -= d
    }
  }

  /** Applies a recovered log record (replay); records at or below the current seq are skipped. */
  replay (r: DeltaRecord): boolean {
    if (r.seq <= this.seq) return false
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
    if (replica === this.replica) {
      for (let i = 0; i < keys.length; i++) {
        const e = this.setValue(keys[i], this.valueOf(keys[i]) + r.deltas[i])
        this.countOwn(e, r.deltas[i], r.ts)
      }
    } else if (r.ps !== undefined && r.ns !== undefined) {
      for (let i = 0; i < keys.length; i++) {
        this.features.applyRemote(keys[i], replica, r.ps[i], r.ns[i])
        this.setValue(keys[i], this.valueOf(keys[i]) + r.deltas[i])
      }
    }
    for (const f of r.features ?? []) this.features.apply(f)
    this.restoreDedup(r.dedup)
    this.seq = r.seq
    return true
  }

  /** Replay of this replica's own record straight from its bytes: no key strings (recovery speed). */
  private replayOwnBytes (buf: Buffer, L: PayloadLayout, ts: number): void {
    let o = L.keysAt
    const t = this.table
    for (let i = 0; i < L.nKeys; i++) {
      const len = buf[o]
      const off = o + 1
      let h = FNV_OFFSET
      for (let k = off; k < off + len; k++) h = Math.imul(h ^ buf[k], FNV_PRIME)
      const e = t.findOrInsert(buf, off, len, h >>> 0)
      const d = buf.readDoubleLE(off + len)
      const cur = t.values[e]
      const next = cur + d
      t.values[e] = next
      if (cur === 0 && next !== 0) this.nonZero++
      else if (cur !== 0 && next === 0) this.nonZero--
      this.dirty?.add(e)
      this.countOwn(e, d, ts)
      o = off + len + (L.totals ? 24 : 8)
    }
    const { dedup, features } = decodeTail(buf, o, buf.length, L.version)
    for (const f of features) this.features.apply(f)
    this.restoreDedup(dedup)
  }

  load (cp: Checkpoint): void {
    for (let i = 0; i < cp.keys.length; i++) {
      if (cp.values[i] === 0 && (cp.ps?.[i] ?? 0) === 0 && (cp.ns?.[i] ?? 0) === 0) continue
      const e = this.setValue(cp.keys[i], cp.values[i])
      this.ps[e] = cp.ps?.[i] ?? Math.max(cp.values[i], 0)
      this.ns[e] = cp.ns?.[i] ?? Math.max(-cp.values[i], 0)
    }
    if (cp.features !== undefined) this.features.load(cp.features)
    this.restoreDedup(cp.dedup)
    this.seq = cp.seq
  }

  /** String-keyed read (recovery, tests). */
  valueOf (key: string): number {
    const e = this.table.entryOf(key, false)
    return e < 0 ? 0 : this.table.values[e]
  }

  private setValue (key: string, value: number): number {
    const e = this.table.entryOf(key, true)
    const cur = this.table.values[e]
    this.table.values[e] = value
    this.dirty?.add(e)
    if (cur === 0 && value !== 0) this.nonZero++
    else if (cur !== 0 && value === 0) this.nonZero--
    return e
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
   */
  capture (full: boolean, now: number): Checkpoint {
    const t = this.table
    const keys: string[] = []
    const values: number[] = []
    const ps: number[] = []
    const ns: number[] = []
    const take = (e: number): void => {
      keys.push(t.key(e))
      values.push(t.values[e])
      ps.push(this.ps[e])
      ns.push(this.ns[e])
    }
    if (full || this.dirty === null) {
      for (let e = 0; e < t.count; e++) if (t.values[e] !== 0 || this.ps[e] !== 0 || this.ns[e] !== 0) take(e)
    } else {
      for (let i = 0; i < this.dirty.count; i++) take(this.dirty.list[i])
    }
    this.dirty?.clear()
    const dedup: DedupEntry[] = []
    this.streams.evict(now)
    this.idempotency.evict(now)
    this.streams.toEntries(DEDUP_STREAM, dedup)
    this.idempotency.toEntries(DEDUP_IDEMPOTENCY, dedup)
    return {
      partition: this.partition, epoch: this.epoch, seq: this.seq, ts: now, keys, values, ps, ns, dedup,
      features: this.features.encode(), hlls: this.features.takeChangedHlls()
    }
  }
}
