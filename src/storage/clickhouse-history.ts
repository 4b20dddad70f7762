// History of counters in ClickHouse: per-minute net deltas per counter key, fed with every durable
// DeltaRecord (add), flushed every few seconds as JSONEachRow.
//
// Never double counting without insert_deduplication_token (ClickHouse 18.16 has none): each flush
// covers, per counter partition, a contiguous range of log records (prevSeq, seq], and every row it
// writes is identified by (key, minute, partition, epoch, seq) with seq = the range's end. A retried
// insert sends the very same rows (a failed batch is kept frozen and resent as is), and reads
// collapse rows with the same identity (GROUP BY identity, any(delta)); ReplacingMergeTree also
// drops the copies when it merges. Each range also writes a progress row (key '', delta 0) in the
// same insert, so after a restart the sink knows which seqs ClickHouse already holds and skips them
// when records are fed again (replay after recovery or a partition handoff).
//
// Memory is bounded during an outage: rows accumulate per (partition, minute, key), so a hot key
// costs one row per minute however many increments it gets. Past maxPendingRows, new records are
// not added to history (counted in status().droppedRecords and logged); counters are unaffected.
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client'
import { CounterdError } from '../core/errors'
import { baseOfPart } from '../core/hot-keys'
import { isValidStoredKey } from '../core/namespaces'
import type { DeltaRecord } from '../core/records'

export type HistoryStep = 'minute' | 'hour' | 'day'
const STEP_SECONDS: Record<HistoryStep, number> = { minute: 60, hour: 3600, day: 86400 }

export interface HistoryPoint {
  ts: number // start of the bucket, ms since the Unix epoch (UTC buckets)
  value: number // net change of the counter within the bucket
}

export interface HistoryStatus {
  ok: boolean
  error?: string
  pendingRows: number // rows waiting for the next flush
  unconfirmedRows: number // rows sent or being retried, not yet confirmed
  droppedRecords: number // records left out of history because the buffer was full
  lagMs: number // how long the oldest row not yet confirmed by ClickHouse has waited (0: none)
}

export interface ClickHouseHistoryOptions {
  /** CLICKHOUSE_URL, e.g. http://user:password@host:8123/database */
  url: string
  /** Table name (default "counter_history"); created if missing. */
  table?: string
  /** How often rows go to ClickHouse (default 5000 ms). */
  flushIntervalMs?: number
  /** Bound on buffered rows (default 500 000, at most 1 000 000); past it, records are dropped from history. */
  maxPendingRows?: number
  /** Rows per INSERT (default 100 000): small enough that ClickHouse writes each insert as one part. */
  maxRowsPerInsert?: number
  /** HTTP request timeout (default 10 s). */
  requestTimeoutMs?: number
  /**
   * A flush ClickHouse has not confirmed after this long is reported as failing in status() (and
   * logged) before the request times out: a hung server holds an insert for requestTimeoutMs
   * (default 1000 ms).
   */
  stallMs?: number
  /** How far back open() and adopt() look for the progress of each partition (default 7 days). */
  progressLookbackMs?: number
  /** Longest series one query may return, in buckets (default 100 000). */
  maxPoints?: number
  logger?: { warn: (obj: object, msg: string) => void, info: (obj: object, msg: string) => void }
}

interface Row {
  key: string
  minute: number // unix seconds, start of the minute
  partition: number
  epoch: number
  seq: number
  delta: number
}

/** The open (not yet frozen) history of one counter partition. */
interface PartitionRows {
  epoch: number
  lastSeq: number // last record added (or skipped as already stored)
  lastMinute: number
  changed: boolean // records since the last freeze
  minutes: Map<number, Map<string, number>> // minute → key → net delta
}

interface FrozenBatch {
  chunks: Row[][] // each chunk holds whole partition ranges
  sent: boolean[] // chunk confirmed by ClickHouse
  ends: Map<number, number> // partition → seq the batch ends at
  rows: number
}

const MINUTE_MS = 60_000

export class ClickHouseHistory {
  readonly table: string
  private readonly client: ClickHouseClient
  private readonly opts: Required<Omit<ClickHouseHistoryOptions, 'logger'>> & Pick<ClickHouseHistoryOptions, 'logger'>
  private readonly parts = new Map<number, PartitionRows>()
  private readonly stored = new Map<number, number>() // partition → highest seq known to be in ClickHouse
  private pendingRows = 0
  private behindSince: number | null = null // when the oldest unconfirmed row came in
  private frozen: FrozenBatch | null = null
  private flushing: Promise<void> | null = null
  private readonly queries = new Set<Promise<unknown>>()
  private timer: NodeJS.Timeout | null = null
  private lastError: string | undefined
  private insertingSince: number | null = null // when the insert now waiting for ClickHouse was sent
  private stalled = false // a stall was logged and no flush has succeeded since
  private droppedRecords = 0
  private closed = false

  /** Connects, creates the table if missing and loads each partition's progress. */
  static async open (options: ClickHouseHistoryOptions): Promise<ClickHouseHistory> {
    const opts = validate(options)
    const client = createClient({
      url: opts.url,
      request_timeout: opts.requestTimeoutMs,
      compression: { request: false, response: false },
      max_open_connections: 4,
      // Failures reach the caller and status(); the client's own console logging would duplicate them.
      log: { level: ClickHouseLogLevel.OFF }
    })
    const sink = new ClickHouseHistory(client, opts)
    try {
      await client.command({ query: createTableSql(opts.table) })
      await sink.loadProgress(null)
    } catch (err) {
      await client.close()
      throw new CounterdError('storage_unavailable', `cannot open ClickHouse history table ${opts.table} at ${redact(opts.url)}: ${(err as Error).message}`)
    }
    sink.timer = setInterval(() => { void sink.flush().catch(() => {}) }, opts.flushIntervalMs)
    sink.timer.unref()
    return sink
  }

  private constructor (client: ClickHouseClient, opts: ClickHouseHistory['opts']) {
    this.client = client
    this.opts = opts
    this.table = opts.table
  }

  /** Highest seq of a partition that ClickHouse is known to hold (records up to it are skipped). */
  storedSeq (partition: number): number | undefined {
    return this.stored.get(partition)
  }

  /**
   * Reloads the progress of partitions this node just took over, so records the previous owner
   * already flushed are not counted again. Call before feeding their replayed records.
   */
  async adopt (partitions: readonly number[]): Promise<void> {
    await this.loadProgress(partitions)
  }

  /** Adds one durable record (hot path: no I/O). Records at or below the stored seq are skipped. */
  add (r: DeltaRecord): void {
    let part = this.parts.get(r.partition)
    if (part === undefined) {
      part = { epoch: r.epoch, lastSeq: this.stored.get(r.partition) ?? -1, lastMinute: 0, changed: false, minutes: new Map() }
      this.parts.set(r.partition, part)
    }
    if (r.seq <= part.lastSeq) return // already stored, or fed twice
    part.lastSeq = r.seq
    part.epoch = r.epoch
    part.changed = true
    const minute = Math.floor(r.ts / MINUTE_MS) * 60
    part.lastMinute = minute
    if (this.pendingRows + r.keys.length > this.opts.maxPendingRows) {
      if (this.droppedRecords++ === 0 || this.droppedRecords % 10_000 === 0) {
        this.opts.logger?.warn({ droppedRecords: this.droppedRecords, maxPendingRows: this.opts.maxPendingRows }, 'history buffer full; records left out of history')
      }
      return
    }
    let keys = part.minutes.get(minute)
    if (keys === undefined) {
      keys = new Map()
      part.minutes.set(minute, keys)
    }
    for (let i = 0; i < r.keys.length; i++) {
      const k = r.keys[i]
      const cur = keys.get(k)
      if (cur === undefined) {
        keys.set(k, r.deltas[i])
        this.pendingRows++
        this.behindSince ??= Date.now()
      } else {
        keys.set(k, cur + r.deltas[i])
      }
    }
  }

  status (): HistoryStatus {
    const base = { pendingRows: this.pendingRows, unconfirmedRows: this.frozen?.rows ?? 0, droppedRecords: this.droppedRecords, lagMs: this.behindSince === null ? 0 : Date.now() - this.behindSince }
    if (this.closed) return { ok: false, error: 'closed', ...base }
    if (this.lastError !== undefined) return { ok: false, error: this.lastError, ...base }
    const waited = this.insertingSince === null ? 0 : Date.now() - this.insertingSince
    if (waited >= this.opts.stallMs) return { ok: false, error: `ClickHouse has not confirmed an insert into ${this.table} for ${waited} ms`, ...base }
    return { ok: true, ...base }
  }

  private checkStall (): void {
    if (this.stalled || this.insertingSince === null || this.lastError !== undefined) return
    const waited = Date.now() - this.insertingSince
    this.stalled = true
    this.opts.logger?.warn({ table: this.table, waitedMs: waited }, 'ClickHouse has not confirmed a history insert; rows stay buffered')
  }

  /** Sends what is buffered now (also run by the timer). Rejects if ClickHouse did not confirm. */
  async flush (): Promise<void> {
    if (this.flushing !== null) {
      await this.flushing
      return
    }
    this.flushing = this.flushOnce().finally(() => { this.flushing = null })
    await this.flushing
  }

  private async flushOnce (): Promise<void> {
    // Reads in progress finish first: a read must not see a batch half in ClickHouse, half in memory.
    if (this.queries.size > 0) await Promise.allSettled([...this.queries])
    if (this.frozen === null) this.frozen = this.freeze()
    const batch = this.frozen
    if (batch === null) return
    const insertStarted = Date.now()
    const watchdog = setTimeout(() => this.checkStall(), this.opts.stallMs)
    watchdog.unref()
    try {
      for (let i = 0; i < batch.chunks.length; i++) {
        if (batch.sent[i]) continue
        this.insertingSince = Date.now()
        await this.client.insert({ table: this.table, values: batch.chunks[i], format: 'JSONEachRow' })
        batch.sent[i] = true
      }
    } catch (err) {
      const msg = `ClickHouse insert into ${this.table} failed: ${(err as Error).message}`
      if (this.lastError === undefined && !this.stalled) this.opts.logger?.warn({ err: (err as Error).message, rows: batch.rows }, 'history flush failed; retrying the same rows')
      this.lastError = msg
      throw new CounterdError('storage_unavailable', msg)
    } finally {
      clearTimeout(watchdog)
      this.insertingSince = null
    }
    for (const [p, seq] of batch.ends) if ((this.stored.get(p) ?? -1) < seq) this.stored.set(p, seq)
    this.frozen = null
    // Rows that came in during the insert are the oldest now; their exact arrival is not kept.
    this.behindSince = this.pendingRows > 0 ? insertStarted : null
    if (this.lastError !== undefined || this.stalled) this.opts.logger?.info({ table: this.table }, 'history flushes succeed again')
    this.lastError = undefined
    this.stalled = false
  }

  // Turns the open rows into an immutable batch: from now on these exact rows are what gets sent.
  private freeze (): FrozenBatch | null {
    const chunks: Row[][] = []
    const ends = new Map<number, number>()
    let chunk: Row[] = []
    let rows = 0
    for (const [partition, part] of this.parts) {
      if (!part.changed) continue
      const group: Row[] = []
      const seq = part.lastSeq
      for (const [minute, keys] of part.minutes) {
        for (const [key, delta] of keys) {
          if (delta !== 0) group.push({ key, minute, partition, epoch: part.epoch, seq, delta })
        }
      }
      group.push({ key: '', minute: part.lastMinute, partition, epoch: part.epoch, seq, delta: 0 })
      part.minutes = new Map()
      part.changed = false
      ends.set(partition, seq)
      rows += group.length
      if (chunk.length > 0 && chunk.length + group.length > this.opts.maxRowsPerInsert) {
        chunks.push(chunk)
        chunk = []
      }
      for (const row of group) chunk.push(row)
    }
    if (chunk.length > 0) chunks.push(chunk)
    this.pendingRows = 0
    if (chunks.length === 0) return null
    return { chunks, sent: chunks.map(() => false), ends, rows }
  }

  /**
   * Net change of `key` per bucket in [fromMs, toMs) (minutes whose start lies in it), buckets
   * aligned to UTC minute/hour/day. Sparse: buckets without a net change are left out. Includes
   * rows not flushed yet.
   */
  async query (key: string, fromMs: number, toMs: number, step: HistoryStep): Promise<HistoryPoint[]> {
    if (!isValidStoredKey(baseOfPart(key))) throw new CounterdError('invalid_key') // a hot counter's parts too
    if (!Number.isSafeInteger(fromMs) || !Number.isSafeInteger(toMs) || fromMs < 0 || toMs <= fromMs) {
      throw new CounterdError('invalid_argument', 'from and to must be integers (ms since the Unix epoch) with 0 <= from < to')
    }
    if (!Object.prototype.hasOwnProperty.call(STEP_SECONDS, step)) {
      throw new CounterdError('invalid_argument', 'step must be one of minute, hour, day')
    }
    const stepS = STEP_SECONDS[step]
    if ((toMs - fromMs) / 1000 / stepS > this.opts.maxPoints) {
      throw new CounterdError('invalid_argument', `the range holds more than ${this.opts.maxPoints} ${step}s`)
    }
    while (this.flushing !== null) await this.flushing.catch(() => {})
    const run = this.runQuery(key, fromMs, toMs, stepS)
    this.queries.add(run)
    try {
      return await run
    } finally {
      this.queries.delete(run)
    }
  }

  private async runQuery (key: string, fromMs: number, toMs: number, stepS: number): Promise<HistoryPoint[]> {
    const fromS = Math.floor(fromMs / MINUTE_MS) * 60
    const toS = Math.ceil(toMs / 1000)
    const k = quote(key)
    const buckets = new Map<number, number>()
    let frozenRows: Row[] = []
    try {
      const rs = await this.client.query({
        query: `SELECT toUInt32(intDiv(toUInt32(minute), ${stepS}) * ${stepS}) AS t, sum(d) AS v FROM (
            SELECT minute, partition, epoch, seq, any(delta) AS d FROM ${this.table}
            WHERE key = ${k} AND minute >= toDateTime(${fromS}) AND minute < toDateTime(${toS})
            GROUP BY minute, partition, epoch, seq
          ) GROUP BY t`,
        format: 'JSONEachRow'
      })
      for (const row of await rs.json<{ t: number | string, v: number | string }>()) {
        buckets.set(Number(row.t), Number(row.v))
      }
      // Rows of a batch that failed to confirm may be in ClickHouse already: count them only if not.
      frozenRows = this.frozenRowsOf(key, fromS, toS)
      if (frozenRows.length > 0) {
        const ids = new Set(frozenRows.map((r) => `(${r.partition},${r.epoch},${r.seq})`))
        const present = await this.client.query({
          query: `SELECT DISTINCT partition, epoch, seq FROM ${this.table} WHERE key = '' AND (partition, epoch, seq) IN (${[...ids].join(',')})`,
          format: 'JSONEachRow'
        })
        const there = new Set((await present.json<{ partition: number, epoch: number, seq: number | string }>()).map((r) => `${r.partition},${r.epoch},${Number(r.seq)}`))
        frozenRows = frozenRows.filter((r) => !there.has(`${r.partition},${r.epoch},${r.seq}`))
      }
    } catch (err) {
      throw new CounterdError('storage_unavailable', `ClickHouse history query failed: ${(err as Error).message}`)
    }
    const addTo = (minute: number, delta: number): void => {
      const t = Math.floor(minute / stepS) * stepS
      buckets.set(t, (buckets.get(t) ?? 0) + delta)
    }
    for (const r of frozenRows) addTo(r.minute, r.delta)
    for (const part of this.parts.values()) {
      for (const [minute, keys] of part.minutes) {
        if (minute < fromS || minute >= toS) continue
        const d = keys.get(key)
        if (d !== undefined) addTo(minute, d)
      }
    }
    const out: HistoryPoint[] = []
    for (const [t, v] of buckets) if (v !== 0) out.push({ ts: t * 1000, value: v })
    return out.sort((a, b) => a.ts - b.ts)
  }

  private frozenRowsOf (key: string, fromS: number, toS: number): Row[] {
    const out: Row[] = []
    if (this.frozen === null) return out
    for (let i = 0; i < this.frozen.chunks.length; i++) {
      if (this.frozen.sent[i]) continue // confirmed: the ClickHouse query saw it
      for (const r of this.frozen.chunks[i]) {
        if (r.key === key && r.minute >= fromS && r.minute < toS) out.push(r)
      }
    }
    return out
  }

  private async loadProgress (partitions: readonly number[] | null): Promise<void> {
    const since = Math.floor((Date.now() - this.opts.progressLookbackMs) / 1000)
    const only = partitions === null ? '' : partitions.length === 0 ? ' AND 0' : ` AND partition IN (${partitions.map((p) => String(Math.trunc(p))).join(',')})`
    const rs = await this.client.query({
      query: `SELECT partition, max(seq) AS seq FROM ${this.table} WHERE key = '' AND minute >= toDateTime(${since})${only} GROUP BY partition`,
      format: 'JSONEachRow'
    })
    for (const row of await rs.json<{ partition: number | string, seq: number | string }>()) {
      const p = Number(row.partition)
      const seq = Number(row.seq)
      if ((this.stored.get(p) ?? -1) < seq) this.stored.set(p, seq)
      const part = this.parts.get(p)
      if (part !== undefined && part.lastSeq < seq) part.lastSeq = seq
    }
  }

  /** Stops the timer and tries to flush what is buffered for up to `graceMs`; the rest is lost. */
  async close (graceMs = 10_000): Promise<void> {
    if (this.closed) return
    if (this.timer !== null) clearInterval(this.timer)
    const deadline = Date.now() + graceMs
    for (;;) {
      try {
        await this.flush()
        if (this.frozen === null && this.pendingRows === 0 && ![...this.parts.values()].some((p) => p.changed)) break
      } catch {
        if (Date.now() + 500 > deadline) break
        await new Promise((resolve) => setTimeout(resolve, 500))
      }
      if (Date.now() > deadline) break
    }
    const unsent = (this.frozen?.rows ?? 0) + this.pendingRows
    if (unsent > 0) this.opts.logger?.warn({ rows: unsent }, 'history rows not flushed at close')
    this.closed = true
    await this.client.close()
  }
}

/** The table; works on ClickHouse 18.16 and current releases (no TTL, no LowCardinality). */
export function createTableSql (table: string): string {
  return `CREATE TABLE IF NOT EXISTS ${table} (
    key String,
    minute DateTime('UTC'),
    partition UInt16,
    epoch UInt32,
    seq UInt64,
    delta Int64
  ) ENGINE = ReplacingMergeTree
  PARTITION BY toYYYYMM(minute)
  ORDER BY (key, minute, partition, epoch, seq)`
}

// Keys are validated ([A-Za-z0-9_.:-]) before they get here; escaping is belt and braces.
function quote (s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
}

function redact (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return url
  }
}

function validate (o: ClickHouseHistoryOptions): ClickHouseHistory['opts'] {
  let u: URL
  try {
    u = new URL(o.url)
  } catch {
    throw new CounterdError('invalid_option', `url must be an http(s):// URL of ClickHouse, got ${JSON.stringify(o.url)}`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CounterdError('invalid_option', `url must be an http(s):// URL of ClickHouse, got ${JSON.stringify(o.url)}`)
  const table = o.table ?? 'counter_history'
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(table)) throw new CounterdError('invalid_option', `table must match [A-Za-z_][A-Za-z0-9_]{0,62}, got ${JSON.stringify(table)}`)
  const int = (name: string, v: number, min: number, max: number): number => {
    if (!Number.isSafeInteger(v) || v < min || v > max) throw new CounterdError('invalid_option', `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`)
    return v
  }
  return {
    url: o.url,
    table,
    flushIntervalMs: int('flushIntervalMs', o.flushIntervalMs ?? 5000, 10, 3_600_000),
    maxPendingRows: int('maxPendingRows', o.maxPendingRows ?? 500_000, 1, 1_000_000),
    maxRowsPerInsert: int('maxRowsPerInsert', o.maxRowsPerInsert ?? 100_000, 1, 1_000_000),
    requestTimeoutMs: int('requestTimeoutMs', o.requestTimeoutMs ?? 10_000, 100, 600_000),
    stallMs: int('stallMs', o.stallMs ?? 1000, 10, 600_000),
    progressLookbackMs: int('progressLookbackMs', o.progressLookbackMs ?? 7 * 86_400_000, 60_000, 3650 * 86_400_000),
    maxPoints: int('maxPoints', o.maxPoints ?? 100_000, 1, 10_000_000),
    logger: o.logger
  }
}
