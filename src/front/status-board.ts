// The node's state in shared memory, so that the front of any shard answers /ready and /metrics
// for the whole node without asking the others: the node's phase (written by the supervisor),
// and per shard one row of health and counters (written only by that shard's thread, read by
// all; a reader may see a figure a moment old, never a torn one: 8-byte aligned stores).
import { ERROR_CODES, type ErrorCode } from '../core/errors'

export const PHASE_RECOVERING = 0 // the supervisor's initial phase: the board's memory starts zeroed
export const PHASE_READY = 1
export const PHASE_DRAINING = 2

// Numbers of a shard row.
export const F_HTTP_REQUESTS = 0
export const F_WS_CONNECTIONS = 1
export const F_WS_FRAMES = 2
export const F_WS_OPS = 3
export const F_INCREMENTS_ACKED = 4
export const F_HISTORY_PENDING_ROWS = 5
export const F_LOG_OK = 6 // 1 ok, 0 failing (text in the log error slot)
export const F_HISTORY = 7 // 0 none, 1 ok, 2 failing (text in the history error slot)
export const F_COUNTERS = 8 // counters held by the shard (the Redis front's DBSIZE and INFO read the sum)
export const F_RESP_CONNECTIONS = 9
export const F_RESP_COMMANDS = 10
export const F_INGEST_EVENTS = 11 // ingested events applied (durable), redeliveries not counted
export const F_INGEST_DUPLICATES = 12 // ingested events already applied (a redelivery): counted once before
export const F_INGEST_PARTITIONS = 13 // topic partitions assigned to this shard's consumer (-1: it runs none)
const FIXED = 14
const HTTP_ERRORS = FIXED
const WS_ERRORS = HTTP_ERRORS + ERROR_CODES.length
const INGEST_ERRORS = WS_ERRORS + ERROR_CODES.length // dead-lettered events by reason
/** Kafka partitions of the ingest topic whose lag a row can show (0 … INGEST_LAG_SLOTS−1). */
export const INGEST_LAG_SLOTS = 256
const INGEST_LAG = INGEST_ERRORS + ERROR_CODES.length // lag + 1 per topic partition; 0 = not assigned here
const ROW = INGEST_LAG + INGEST_LAG_SLOTS
const TEXT_BYTES = 512 // per message slot: u16 length + UTF-8
export type ErrorKind = 'http' | 'ws' | 'ingest'
const ERROR_BASE: Record<ErrorKind, number> = { http: HTTP_ERRORS, ws: WS_ERRORS, ingest: INGEST_ERRORS }
const CODE_INDEX = new Map<string, number>(ERROR_CODES.map((c, i) => [c, i]))

export class StatusBoard {
  private readonly phase: Int32Array
  private readonly rows: Float64Array
  private readonly text: Uint8Array

  static allocate (shards: number): SharedArrayBuffer {
    return new SharedArrayBuffer(8 + shards * ROW * 8 + shards * 2 * TEXT_BYTES)
  }

  constructor (sab: SharedArrayBuffer, readonly shards: number) {
    this.phase = new Int32Array(sab, 0, 1)
    this.rows = new Float64Array(sab, 8, shards * ROW)
    this.text = new Uint8Array(sab, 8 + shards * ROW * 8, shards * 2 * TEXT_BYTES)
  }

  get nodePhase (): number { return Atomics.load(this.phase, 0) }
  setPhase (phase: number): void { Atomics.store(this.phase, 0, phase) }

  /** The row of shard `s` (for that shard's writers: the front's metrics and the health updates). */
  row (s: number): ShardRow {
    return new ShardRow(this.rows.subarray(s * ROW, (s + 1) * ROW), this.text.subarray(s * 2 * TEXT_BYTES, (s + 1) * 2 * TEXT_BYTES))
  }

  /** A number summed over every shard. */
  sum (field: number): number {
    let n = 0
    for (let s = 0; s < this.shards; s++) n += this.rows[s * ROW + field]
    return n
  }

  /** One shard's errors by code (the non-zero ones), for the http or ws counters or dead-lettered events. */
  errorsOf (shard: number, kind: ErrorKind): Array<[string, number]> {
    const base = shard * ROW + ERROR_BASE[kind]
    const out: Array<[string, number]> = []
    for (let c = 0; c < ERROR_CODES.length; c++) if (this.rows[base + c] > 0) out.push([ERROR_CODES[c], this.rows[base + c]])
    return out
  }

  /** One shard's count of one error code. */
  errorCountOf (shard: number, kind: ErrorKind, code: ErrorCode): number {
    return this.rows[shard * ROW + ERROR_BASE[kind] + (CODE_INDEX.get(code) as number)]
  }

  /** Ingest lag (messages behind the high watermark) per topic partition this shard consumes. */
  ingestLagOf (shard: number): Array<[number, number]> {
    const out: Array<[number, number]> = []
    for (let p = 0; p < INGEST_LAG_SLOTS; p++) {
      const v = this.rows[shard * ROW + INGEST_LAG + p]
      if (v > 0) out.push([p, v - 1])
    }
    return out
  }

  /** The first failing shard's log error, or undefined when every log works. */
  logError (): string | undefined {
    for (let s = 0; s < this.shards; s++) if (this.rows[s * ROW + F_LOG_OK] !== 1) return this.row(s).logError
    return undefined
  }

  /** History status over every shard: undefined without history. */
  history (): { ok: boolean, error?: string, pendingRows: number } | undefined {
    let seen = false
    let error: string | undefined
    for (let s = 0; s < this.shards; s++) {
      const h = this.rows[s * ROW + F_HISTORY]
      if (h === 0) continue
      seen = true
      if (h === 2 && error === undefined) error = this.row(s).historyError
    }
    if (!seen) return undefined
    const pendingRows = this.sum(F_HISTORY_PENDING_ROWS)
    return error === undefined ? { ok: true, pendingRows } : { ok: false, error, pendingRows }
  }
}

/** One shard's row; only that shard's thread writes it. */
export class ShardRow {
  constructor (readonly nums: Float64Array, private readonly text: Uint8Array) {}

  add (field: number, n = 1): void { this.nums[field] += n }
  set (field: number, v: number): void { this.nums[field] = v }

  countError (kind: ErrorKind, code: ErrorCode | string): void {
    const c = CODE_INDEX.get(code)
    if (c !== undefined) this.nums[ERROR_BASE[kind] + c]++
  }

  /** Lag of ingest topic partition p as consumed by this shard; null: not consumed here (any more). */
  setIngestLag (p: number, lag: number | null): void {
    if (p < INGEST_LAG_SLOTS) this.nums[INGEST_LAG + p] = lag === null ? 0 : lag + 1
  }

  get logError (): string { return this.readText(0) }
  get historyError (): string { return this.readText(1) }

  setLog (error: string | undefined): void {
    if (error !== undefined) this.writeText(0, error)
    this.nums[F_LOG_OK] = error === undefined ? 1 : 0
  }

  setHistory (status: { ok: boolean, error?: string, pendingRows: number } | undefined): void {
    if (status === undefined) { this.nums[F_HISTORY] = 0; return }
    if (!status.ok) this.writeText(1, status.error ?? 'failing')
    this.nums[F_HISTORY_PENDING_ROWS] = status.pendingRows
    this.nums[F_HISTORY] = status.ok ? 1 : 2
  }

  private writeText (slot: number, s: string): void {
    const bytes = Buffer.from(s.slice(0, TEXT_BYTES), 'utf8').subarray(0, TEXT_BYTES - 2)
    const o = slot * TEXT_BYTES
    this.text.set(bytes, o + 2)
    this.text[o] = bytes.length & 0xff
    this.text[o + 1] = bytes.length >>> 8
  }

  private readText (slot: number): string {
    const o = slot * TEXT_BYTES
    const len = this.text[o] | (this.text[o + 1] << 8)
    return Buffer.from(this.text.subarray(o + 2, o + 2 + len)).toString('utf8')
  }
}
