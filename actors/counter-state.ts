// The state of one partition: its counters, its dedup tables, and the deltas not yet sealed into a
// log record. Owned by exactly one actor host thread; everything here is synchronous.
import { DEDUP_IDEMPOTENCY, DEDUP_STREAM, type Checkpoint, type DedupEntry, type DeltaRecord } from '../src/log/types'

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

export class PartitionState {
  readonly counters = new Map<string, number>()
  readonly streams: DedupTable // clientId → last applied frame seq
  readonly idempotency: DedupTable // key + '\n' + Idempotency-Key → value returned
  seq = 0 // seq of the last record sealed (or recovered)
  epoch: number

  // Since the last seal: net delta per key, and dedup entries to log with them.
  private pending = new Map<string, number>()
  private pendingDedup: DedupEntry[] = []
  // Keys changed since the last checkpoint capture (for incremental checkpoint stores).
  private readonly dirty: Set<string> | null

  constructor (readonly partition: number, epoch: number, windowMs: number, maxEntries: number, trackDirty: boolean) {
    this.epoch = epoch
    this.streams = new DedupTable(windowMs, maxEntries)
    this.idempotency = new DedupTable(windowMs, maxEntries)
    this.dirty = trackDirty ? new Set() : null
  }

  get hasPending (): boolean { return this.pending.size > 0 || this.pendingDedup.length > 0 }

  get (key: string): number {
    return this.counters.get(key) ?? 0
  }

  /** Applies one increment; returns the new value, or NaN (nothing applied) when it would leave ±(2^53−1). */
  increment (key: string, delta: number, sealInto: DeltaRecord[]): number {
    const cur = this.counters.get(key) ?? 0
    const next = cur + delta
    if (next > MAX_VALUE || next < -MAX_VALUE) return NaN
    const pend = this.pending.get(key) ?? 0
    // A record's net delta must stay a safe integer too; seal first if it would not.
    if (Math.abs(pend + delta) > MAX_VALUE) this.seal(Date.now(), sealInto)
    this.addPending(key, delta)
    if (next === 0) this.counters.delete(key)
    else this.counters.set(key, next)
    return next
  }

  /** Resets to 0, logged as the delta −value so the log stays a log of deltas. */
  reset (key: string, sealInto: DeltaRecord[]): number {
    const cur = this.counters.get(key)
    if (cur === undefined) return 0
    const pend = this.pending.get(key) ?? 0
    if (Math.abs(pend - cur) > MAX_VALUE) this.seal(Date.now(), sealInto)
    this.addPending(key, -cur)
    this.counters.delete(key)
    return 0
  }

  private addPending (key: string, delta: number): void {
    this.pending.set(key, (this.pending.get(key) ?? 0) + delta)
  }

  recordStream (clientId: string, seq: number, now: number): void {
    this.streams.set(clientId, seq, now)
    this.pendingDedup.push({ kind: DEDUP_STREAM, tag: clientId, value: seq, ts: now })
  }

  recordIdempotent (tag: string, value: number, now: number): void {
    this.idempotency.set(tag, value, now)
    this.pendingDedup.push({ kind: DEDUP_IDEMPOTENCY, tag, value, ts: now })
  }

  /** Moves everything pending into one log record (appended to `out`), if there is anything. */
  seal (now: number, out: DeltaRecord[]): void {
    if (!this.hasPending) return
    const n = this.pending.size
    const keys: string[] = new Array(n)
    const deltas: number[] = new Array(n)
    let i = 0
    for (const [k, d] of this.pending) {
      keys[i] = k
      deltas[i++] = d
      this.dirty?.add(k)
    }
    out.push({ partition: this.partition, epoch: this.epoch, seq: ++this.seq, ts: now, keys, deltas, dedup: this.pendingDedup })
    this.pending = new Map()
    this.pendingDedup = []
  }

  /** Applies a recovered log record (replay); records at or below the current seq are skipped. */
  replay (r: DeltaRecord): boolean {
    if (r.seq <= this.seq) return false
    for (let i = 0; i < r.keys.length; i++) {
      const next = (this.counters.get(r.keys[i]) ?? 0) + r.deltas[i]
      if (next === 0) this.counters.delete(r.keys[i])
      else this.counters.set(r.keys[i], next)
      this.dirty?.add(r.keys[i])
    }
    this.restoreDedup(r.dedup)
    this.seq = r.seq
    return true
  }

  load (cp: Checkpoint): void {
    for (let i = 0; i < cp.keys.length; i++) {
      if (cp.values[i] !== 0) this.counters.set(cp.keys[i], cp.values[i])
    }
    this.restoreDedup(cp.dedup)
    this.seq = cp.seq
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
    const source: Iterable<string> = full || this.dirty === null ? this.counters.keys() : this.dirty
    const keys: string[] = []
    const values: number[] = []
    for (const k of source) {
      keys.push(k)
      values.push(this.counters.get(k) ?? 0)
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
