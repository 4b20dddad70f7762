// The state of one partition: its counters (a KeyTable), its dedup tables, and the net deltas not
// yet sealed into a log record. Owned by exactly one actor host thread; everything is synchronous.
import { EncodedRecord, RECORD_HEADER_BYTES, dedupSize, writeDedupEntries, writeRecordHeader } from '../src/log/record-codec'
import { DEDUP_IDEMPOTENCY, DEDUP_STREAM, type Checkpoint, type DedupEntry, type DeltaRecord } from '../src/log/types'
import { KeyTable } from './key-table'

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

function grown<T extends Int32Array | Uint8Array | Float64Array> (a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n)
  b.set(a as never)
  return b
}

export class PartitionState {
  readonly table = new KeyTable()
  readonly streams: DedupTable // clientId → last applied frame seq
  readonly idempotency: DedupTable // key + '\n' + Idempotency-Key → value returned
  seq = 0 // seq of the last record sealed (or recovered)
  nonZero = 0 // counters whose value is not 0

  // Since the last seal: net delta per entry, the entries touched, dedup entries to log with them.
  private pending = new Float64Array(64)
  private readonly touched = new EntrySet()
  private pendingDedup: DedupEntry[] = []
  // Entries changed since the last checkpoint capture (for incremental checkpoint stores).
  private readonly dirty: EntrySet | null

  constructor (readonly partition: number, public epoch: number, windowMs: number, maxEntries: number, trackDirty: boolean) {
    this.streams = new DedupTable(windowMs, maxEntries)
    this.idempotency = new DedupTable(windowMs, maxEntries)
    this.dirty = trackDirty ? new EntrySet() : null
    this.table.onGrow = (n) => {
      this.pending = grown(this.pending, n)
      this.touched.resize(n)
      this.dirty?.resize(n)
    }
  }

  get hasPending (): boolean { return this.touched.count > 0 || this.pendingDedup.length > 0 }

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

  recordStream (clientId: string, seq: number, now: number): void {
    this.streams.set(clientId, seq, now)
    this.pendingDedup.push({ kind: DEDUP_STREAM, tag: clientId, value: seq, ts: now })
  }

  recordIdempotent (tag: string, value: number, now: number): void {
    this.idempotency.set(tag, value, now)
    this.pendingDedup.push({ kind: DEDUP_IDEMPOTENCY, tag, value, ts: now })
  }

  /** Moves everything pending into one log record, encoded straight from the key arena. */
  seal (now: number, out: DeltaRecord[]): void {
    if (!this.hasPending) return
    const t = this.table
    const list = this.touched.list
    const n = this.touched.count
    let size = RECORD_HEADER_BYTES + dedupSize(this.pendingDedup)
    for (let i = 0; i < n; i++) size += 9 + t.keyLen[list[i]]
    const buf = Buffer.allocUnsafe(size)
    const seq = ++this.seq
    let o = writeRecordHeader(buf, 0, this.partition, this.epoch, seq, now, n)
    for (let i = 0; i < n; i++) {
      const e = list[i]
      const len = t.keyLen[e]
      buf[o++] = len
      const arena = t.arena
      for (let k = t.keyOff[e], end = k + len; k < end; k++) buf[o++] = arena[k]
      o = buf.writeDoubleLE(this.pending[e], o)
      this.pending[e] = 0
      this.dirty?.add(e)
    }
    writeDedupEntries(buf, o, this.pendingDedup)
    this.touched.clear()
    this.pendingDedup = []
    out.push(new EncodedRecord(this.partition, this.epoch, seq, now, buf))
  }

  /** Applies a recovered log record (replay); records at or below the current seq are skipped. */
  replay (r: DeltaRecord): boolean {
    if (r.seq <= this.seq) return false
    const keys = r.keys
    for (let i = 0; i < keys.length; i++) this.setValue(keys[i], this.valueOf(keys[i]) + r.deltas[i])
    this.restoreDedup(r.dedup)
    this.seq = r.seq
    return true
  }

  load (cp: Checkpoint): void {
    for (let i = 0; i < cp.keys.length; i++) if (cp.values[i] !== 0) this.setValue(cp.keys[i], cp.values[i])
    this.restoreDedup(cp.dedup)
    this.seq = cp.seq
  }

  /** String-keyed read (recovery, tests). */
  valueOf (key: string): number {
    const e = this.table.entryOf(key, false)
    return e < 0 ? 0 : this.table.values[e]
  }

  private setValue (key: string, value: number): void {
    const e = this.table.entryOf(key, true)
    const cur = this.table.values[e]
    this.table.values[e] = value
    this.dirty?.add(e)
    if (cur === 0 && value !== 0) this.nonZero++
    else if (cur !== 0 && value === 0) this.nonZero--
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
    if (full || this.dirty === null) {
      for (let e = 0; e < t.count; e++) {
        if (t.values[e] !== 0) { keys.push(t.key(e)); values.push(t.values[e]) }
      }
    } else {
      for (let i = 0; i < this.dirty.count; i++) {
        const e = this.dirty.list[i]
        keys.push(t.key(e))
        values.push(t.values[e])
      }
    }
    this.dirty?.clear()
    const dedup: DedupEntry[] = []
    this.streams.evict(now)
    this.idempotency.evict(now)
    this.streams.toEntries(DEDUP_STREAM, dedup)
    this.idempotency.toEntries(DEDUP_IDEMPOTENCY, dedup)
    return { partition: this.partition, epoch: this.epoch, seq: this.seq, ts: now, keys, values, dedup }
  }
}
