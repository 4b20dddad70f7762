// Cluster-mode delta log: a Kafka topic, one message per DeltaRecord.
//
//   message key   = the counter partition as decimal text ("7")
//   message value = encodeRecord(record) (record-codec.ts, version byte first)
//   Kafka partition = counter partition mod the topic's partition count (fixed for the topic's life)
//
// Every record of a counter partition therefore sits in one Kafka partition, in seq order. Order
// holds under retries without the idempotent producer (the librdkafka mock lacks it): one produce
// is in flight at a time per log, and a failed one is retried whole before anything newer goes
// out. A retry after a lost acknowledgement can store a record twice; replay drops the copy by
// (epoch, seq). Produce uses acks=all; append resolves only once Kafka has confirmed.
import { randomBytes } from 'node:crypto'
import { Kafka, logLevel, type Admin, type Consumer, type Message, type Producer } from 'kafkajs'
import { CounterdError } from '../core/errors'
import { decodeRecord, encodeRecord, RecordFormatError } from '../core/record-codec'
import type { DeltaRecord } from '../core/records'
import type { DeltaLog, ReplayStart } from './types'
import { withDeadline } from '../core/deadline'

export const DEFAULT_TOPIC = 'counter-deltas'

export interface KafkaDeltaLogOptions {
  /** "host:port" of one or more brokers (KAFKA_BROKERS split on commas). */
  brokers: string[]
  /** Topic name (KAFKA_TOPIC); default "counter-deltas". */
  topic?: string
  clientId?: string
  /** Partitions when this log creates the topic (default 64, one per counter partition by default). */
  numPartitions?: number
  /** Replication when this log creates the topic; -1 (default) = the broker's default. */
  replicationFactor?: number
  /** Give up reaching the cluster at open() after this long (default 10 s). */
  startTimeoutMs?: number
  /** Per-connection connect timeout (default 3 s). */
  connectTimeoutMs?: number
  /** Per-request timeout: how long a hung broker can hold one produce attempt (default 10 s). */
  requestTimeoutMs?: number
  /**
   * Called once Kafka has confirmed an append, before append resolves: a rejection (fencing, see
   * RedisCheckpointStore.checkOwners) fails the append although the records are in Kafka.
   */
  confirm?: (records: DeltaRecord[]) => Promise<void>
  /** Backoff between produce attempts during an outage: doubles from min to max (default 50 ms to 2 s). */
  retryMinMs?: number
  retryMaxMs?: number
  /**
   * An append Kafka has not confirmed after this long counts as failing (default 1000 ms): status()
   * reports it (so /ready does) and a warning is logged, without waiting for the request timeout:
   * a hung broker holds a produce for up to requestTimeoutMs, times kafkajs' own retries.
   */
  stallMs?: number
  /**
   * Largest produce request, in payload bytes, that one append sends (default 900 KB, under
   * Kafka's default 1 MB max.message.bytes, which bounds a whole record batch). Larger appends go
   * out as several requests, in order. A single record above it is still sent alone.
   */
  maxRequestBytes?: number
  /** Optional pino-style logger for outage messages. */
  logger?: { warn: (obj: object, msg: string) => void, info: (obj: object, msg: string) => void }
}

interface Pending {
  records: DeltaRecord[]
  resolve: () => void
  reject: (err: Error) => void
}

// Offsets of appended (or replayed) records of one partition, for positionOf(): the newest few
// exactly (a checkpoint asks right after its records became durable), plus one per second for the
// last quarter hour, so a caller may also ask for an older seq (e.g. the history sink's progress)
// without falling back to a replay from the beginning.
const RECENT_KEPT = 32
const SPARSE_KEPT = 900
const SPARSE_EVERY_MS = 1000

class PartitionPositions {
  private readonly recent: number[] = [] // seq, offset, seq, offset, ... in log order
  private readonly sparse: number[] = []
  private sparseAt = -Infinity

  note (seq: number, offset: number, now: number): void {
    this.recent.push(seq, offset)
    if (this.recent.length > RECENT_KEPT * 2) this.recent.splice(0, 2)
    if (now - this.sparseAt >= SPARSE_EVERY_MS) {
      this.sparse.push(seq, offset)
      this.sparseAt = now
      if (this.sparse.length > SPARSE_KEPT * 2) this.sparse.splice(0, 2)
    }
  }

  /** Offset of the newest noted record at or before `seq`. */
  find (seq: number): number | undefined {
    for (const list of [this.recent, this.sparse]) {
      for (let i = list.length - 2; i >= 0; i -= 2) if (list[i] <= seq) return list[i + 1]
    }
    return undefined
  }
}

export class KafkaDeltaLog implements DeltaLog {
  readonly topic: string
  /** The topic's partition count, read at open(). */
  readonly kafkaPartitions: number

  private readonly producer: Producer
  private readonly admin: Admin
  private readonly kafka: Kafka
  private readonly opts: Required<Omit<KafkaDeltaLogOptions, 'logger' | 'confirm'>> & Pick<KafkaDeltaLogOptions, 'logger' | 'confirm'>
  private queue: Pending[] = []
  private sending = false
  private closed = false
  private lastError: string | undefined
  private unconfirmedSince: number | null = null // when the oldest append not yet confirmed went out
  private stalled = false // a stall was reported (logged) and not yet cleared by a confirmation
  private readonly positions = new Map<number, PartitionPositions>()
  private drained: (() => void) | null = null

  /** Connects, makes sure the topic exists, and returns a ready log. Unreachable brokers: storage_unavailable. */
  static async open (options: KafkaDeltaLogOptions): Promise<KafkaDeltaLog> {
    const opts = validate(options)
    const kafka = new Kafka({
      clientId: opts.clientId,
      brokers: opts.brokers,
      connectionTimeout: opts.connectTimeoutMs,
      requestTimeout: opts.requestTimeoutMs,
      // Our own loops retry; kafkajs only smooths over a blip (leader moves, a dropped connection).
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
      logLevel: logLevel.NOTHING
    })
    const admin = kafka.admin()
    const producer = kafka.producer({ maxInFlightRequests: 1, idempotent: false, allowAutoTopicCreation: true })
    try {
      const partitions = await withDeadline(opts.startTimeoutMs, `Kafka brokers ${opts.brokers.join(',')} not reachable`, async () => {
        await admin.connect()
        await ensureTopic(admin, opts)
        await producer.connect()
        return await topicPartitionCount(admin, opts.topic)
      })
      return new KafkaDeltaLog(kafka, admin, producer, opts, partitions)
    } catch (err) {
      await Promise.allSettled([producer.disconnect(), admin.disconnect()])
      if (err instanceof CounterdError) throw err
      throw new CounterdError('storage_unavailable', `cannot open Kafka topic ${opts.topic} on ${opts.brokers.join(',')}: ${(err as Error).message}`)
    }
  }

  private constructor (kafka: Kafka, admin: Admin, producer: Producer, opts: KafkaDeltaLog['opts'], kafkaPartitions: number) {
    this.kafka = kafka
    this.admin = admin
    this.producer = producer
    this.opts = opts
    this.topic = opts.topic
    this.kafkaPartitions = kafkaPartitions
  }

  /** The Kafka partition that holds a counter partition's records. */
  kafkaPartitionOf (partition: number): number {
    return partition % this.kafkaPartitions
  }

  status (): { ok: boolean, error?: string } {
    if (this.closed) return { ok: false, error: 'closed' }
    if (this.lastError !== undefined) return { ok: false, error: this.lastError }
    const waited = this.unconfirmedSince === null ? 0 : Date.now() - this.unconfirmedSince
    if (waited >= this.opts.stallMs) return { ok: false, error: `Kafka append to ${this.topic} failed to confirm within ${this.opts.stallMs} ms (waiting ${waited} ms so far)` }
    return { ok: true }
  }

  append (records: DeltaRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new CounterdError('shutting_down', 'the Kafka log is closed'))
    if (records.length === 0) return Promise.resolve()
    const appended = new Promise<void>((resolve, reject) => {
      this.queue.push({ records, resolve, reject })
      if (!this.sending) void this.pump()
    })
    const confirm = this.opts.confirm
    return confirm === undefined ? appended : appended.then(async () => await confirm(records))
  }

  // One produce at a time, oldest first; everything queued meanwhile goes out together.
  private async pump (): Promise<void> {
    this.sending = true
    // Watches the oldest unconfirmed append: a hung broker is reported long before a request times out.
    const watchdog = setInterval(() => this.checkStall(), Math.max(10, Math.floor(this.opts.stallMs / 4)))
    watchdog.unref()
    while (this.queue.length > 0 && !this.closed) {
      const batch = this.queue
      this.queue = []
      const records: DeltaRecord[] = batch.length === 1 ? batch[0].records : batch.flatMap((p) => p.records)
      this.unconfirmedSince = Date.now()
      try {
        await this.sendInOrder(records)
      } catch (err) {
        // Only a close() during an outage gets here; the records may or may not be in Kafka.
        for (const p of batch) p.reject(err as Error)
        continue
      } finally {
        this.unconfirmedSince = null
      }
      for (const p of batch) p.resolve()
    }
    clearInterval(watchdog)
    this.sending = false
    if (this.drained !== null) this.drained()
  }

  private checkStall (): void {
    if (this.stalled || this.unconfirmedSince === null || this.lastError !== undefined) return
    const waited = Date.now() - this.unconfirmedSince
    if (waited < this.opts.stallMs) return
    this.stalled = true
    this.opts.logger?.warn({ topic: this.topic, waitedMs: waited }, 'Kafka has not confirmed an append; acks wait for it')
  }

  private async sendInOrder (records: DeltaRecord[]): Promise<void> {
    let start = 0
    while (start < records.length) {
      const messages: Message[] = []
      let bytes = 0
      let end = start
      while (end < records.length) {
        const r = records[end]
        const value = encodeRecord(r)
        if (messages.length > 0 && bytes + value.length > this.opts.maxRequestBytes) break
        bytes += value.length
        messages.push({ key: String(r.partition), value, partition: this.kafkaPartitionOf(r.partition), timestamp: String(r.ts) })
        end++
      }
      await this.sendWithRetry(records, start, messages)
      start = end
    }
  }

  private async sendWithRetry (records: DeltaRecord[], first: number, messages: Message[]): Promise<void> {
    let delay = this.opts.retryMinMs
    for (;;) {
      if (this.closed) throw new CounterdError('shutting_down', 'the Kafka log was closed before Kafka confirmed the append')
      try {
        const res = await this.producer.sendBatch({ acks: -1, topicMessages: [{ topic: this.topic, messages }] })
        this.notePositions(records, first, messages, res)
        if (this.lastError !== undefined || this.stalled) this.opts.logger?.info({ topic: this.topic }, 'Kafka accepts appends again')
        this.lastError = undefined
        this.stalled = false
        return
      } catch (err) {
        const msg = `Kafka append to ${this.topic} failed: ${(err as Error).message}`
        if (this.lastError === undefined && !this.stalled) this.opts.logger?.warn({ topic: this.topic, err: (err as Error).message }, 'Kafka append failed; retrying')
        this.lastError = msg
        await sleep(delay)
        delay = Math.min(delay * 2, this.opts.retryMaxMs)
      }
    }
  }

  // Kafka returns the base offset per Kafka partition; messages of one partition got consecutive offsets in send order.
  private notePositions (records: DeltaRecord[], first: number, messages: Message[], res: Array<{ partition: number, baseOffset?: string }>): void {
    const next = new Map<number, number>()
    for (const r of res) if (r.baseOffset !== undefined) next.set(r.partition, Number(r.baseOffset))
    const now = Date.now()
    for (let i = 0; i < messages.length; i++) {
      const kp = messages[i].partition as number
      const offset = next.get(kp)
      if (offset === undefined) continue
      next.set(kp, offset + 1)
      const r = records[first + i]
      this.notePosition(r.partition, r.seq, offset, now)
    }
  }

  private notePosition (partition: number, seq: number, offset: number, now: number): void {
    let pos = this.positions.get(partition)
    if (pos === undefined) {
      pos = new PartitionPositions()
      this.positions.set(partition, pos)
    }
    pos.note(seq, offset, now)
  }

  /**
   * A log offset to store with a checkpoint at `seq` (Checkpoint.logOffset): every record of the
   * partition after `seq` lies after it. Undefined when this log has not seen a record at or
   * before `seq` (recently); the checkpoint then goes without, and replay starts at the beginning.
   */
  positionOf (partition: number, seq: number): number | undefined {
    return this.positions.get(partition)?.find(seq)
  }

  async replay (partitions: readonly number[], onRecord: (r: DeltaRecord) => void, from?: ReadonlyMap<number, ReplayStart>): Promise<void> {
    if (partitions.length === 0) return
    const want = new Set(partitions)
    const watermarks = new Map<number, { low: number, high: number }>()
    for (const o of await this.admin.fetchTopicOffsets(this.topic)) {
      watermarks.set(o.partition, { low: Number(o.low), high: Number(o.high) })
    }
    // Per Kafka partition: start at the earliest position any wanted counter partition needs.
    const ranges = new Map<number, { next: number, end: number }>()
    const after = new Map<number, number>() // partition → its checkpoint's offset: skip up to it
    const now = Date.now()
    for (const p of partitions) {
      const start = from?.get(p)
      if (start?.logOffset !== undefined) {
        this.notePosition(p, start.seq, start.logOffset, now)
        after.set(p, start.logOffset)
      }
      const kp = this.kafkaPartitionOf(p)
      const wm = watermarks.get(kp)
      if (wm === undefined) throw new CounterdError('internal', `Kafka topic ${this.topic} has no partition ${kp}`)
      let first = wm.low
      if (start?.logOffset !== undefined) {
        if (start.logOffset + 1 < wm.low) {
          throw new CounterdError('internal', `Kafka topic ${this.topic} partition ${kp} starts at offset ${wm.low}, but the checkpoint of partition ${p} covers only up to offset ${start.logOffset}: records were deleted before they were checkpointed`)
        }
        first = start.logOffset + 1
      }
      const r = ranges.get(kp)
      if (r === undefined) ranges.set(kp, { next: first, end: wm.high })
      else r.next = Math.min(r.next, first)
    }
    for (const [kp, r] of ranges) if (r.next >= r.end) ranges.delete(kp)
    if (ranges.size === 0) return

    // (epoch, seq) of the last record handed over per partition: drops retry copies and a stale
    // owner's late records (an epoch lower than one already seen).
    const last = new Map<number, { epoch: number, seq: number }>()
    const deliver = (r: DeltaRecord, offset: number): void => {
      if (offset <= (after.get(r.partition) ?? -1)) return
      const prev = last.get(r.partition)
      if (prev !== undefined && (r.epoch < prev.epoch || (r.epoch === prev.epoch && r.seq <= prev.seq))) return
      last.set(r.partition, { epoch: r.epoch, seq: r.seq })
      this.notePosition(r.partition, r.seq, offset, Date.now())
      onRecord(r)
    }
    await this.readRanges(ranges, want, deliver)
  }

  // kafkajs reads only through a consumer group; a private, never-committed group is the
  // equivalent of a manual assignment. Partitions not needed are paused, the rest seeked.
  private async readRanges (ranges: Map<number, { next: number, end: number }>, want: Set<number>, deliver: (r: DeltaRecord, offset: number) => void): Promise<void> {
    const consumer: Consumer = this.kafka.consumer({
      groupId: `${this.opts.clientId}-replay-${randomBytes(6).toString('hex')}`,
      maxWaitTimeInMs: 100,
      allowAutoTopicCreation: false,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 }
    })
    await consumer.connect()
    try {
      await consumer.subscribe({ topic: this.topic, fromBeginning: true })
      let remaining = ranges.size
      let failed: Error | null = null
      let finish: () => void = () => {}
      const done = new Promise<void>((resolve) => { finish = resolve })
      const crash = consumer.on(consumer.events.CRASH, (e) => {
        failed = new CounterdError('storage_unavailable', `replay of Kafka topic ${this.topic} failed: ${String(e.payload.error?.message)}`)
        finish()
      })
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch, heartbeat }) => {
          const r = ranges.get(batch.partition)
          if (r === undefined || r.next >= r.end || failed !== null) return
          try {
            for (const m of batch.messages) {
              const offset = Number(m.offset)
              if (offset < r.next) continue
              if (offset >= r.end) break
              r.next = offset + 1
              const p = m.key === null ? NaN : Number(m.key.toString('latin1'))
              if (!want.has(p) || m.value === null) continue
              let rec: DeltaRecord
              try {
                rec = decodeRecord(m.value)
              } catch (err) {
                if (err instanceof RecordFormatError) {
                  throw new CounterdError('internal', `Kafka topic ${this.topic} partition ${batch.partition} offset ${offset}: ${err.message}`)
                }
                throw err
              }
              if (rec.partition !== p) throw new CounterdError('internal', `Kafka topic ${this.topic} offset ${offset}: key says partition ${p}, record says ${rec.partition}`)
              deliver(rec, offset)
            }
            await heartbeat()
          } catch (err) {
            failed = err as Error
            finish()
            return
          }
          if (r.next >= r.end) {
            consumer.pause([{ topic: this.topic, partitions: [batch.partition] }])
            if (--remaining === 0) finish()
          }
        }
      })
      const idle: number[] = []
      for (let kp = 0; kp < this.kafkaPartitions; kp++) if (!ranges.has(kp)) idle.push(kp)
      if (idle.length > 0) consumer.pause([{ topic: this.topic, partitions: idle }])
      for (const [kp, r] of ranges) consumer.seek({ topic: this.topic, partition: kp, offset: String(r.next) })
      await done
      crash()
      if (failed !== null) throw failed
    } finally {
      await consumer.disconnect().catch(() => {})
    }
  }

  /** Kafka keeps records by the topic's retention; checkpoints only make replay start later (positionOf). */
  async checkpointed (_upTo: ReadonlyMap<number, number>): Promise<void> {}

  /** Waits up to `graceMs` for queued appends to be confirmed; later ones are rejected with shutting_down. */
  async close (graceMs = 5000): Promise<void> {
    if (this.closed) return
    if (this.sending || this.queue.length > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs)
        this.drained = () => { clearTimeout(timer); resolve() }
      })
    }
    this.closed = true
    const left = this.queue
    this.queue = []
    for (const p of left) p.reject(new CounterdError('shutting_down', 'the Kafka log was closed before Kafka confirmed the append'))
    await Promise.allSettled([this.producer.disconnect(), this.admin.disconnect()])
  }
}

async function ensureTopic (admin: Admin, opts: KafkaDeltaLog['opts']): Promise<void> {
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{
        topic: opts.topic,
        numPartitions: opts.numPartitions,
        replicationFactor: opts.replicationFactor,
        // Keys repeat (one per counter partition): compaction would delete the log's history.
        configEntries: [{ name: 'cleanup.policy', value: 'delete' }]
      }]
    })
  } catch {
    // Brokers without CreateTopics (the librdkafka mock) or without the ACL: fall back to the
    // broker auto-creating it on the metadata request below. A real failure surfaces there.
  }
}

async function topicPartitionCount (admin: Admin, topic: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      const meta = await admin.fetchTopicMetadata({ topics: [topic] })
      const n = meta.topics[0]?.partitions.length ?? 0
      if (n > 0) return n
    } catch (err) {
      if (attempt >= 5) throw new CounterdError('storage_unavailable', `Kafka topic ${topic} does not exist and could not be created: ${(err as Error).message}`)
    }
    if (attempt >= 5) throw new CounterdError('storage_unavailable', `Kafka topic ${topic} has no partitions`)
    await sleep(200)
  }
}


function validate (o: KafkaDeltaLogOptions): KafkaDeltaLog['opts'] {
  if (!Array.isArray(o.brokers) || o.brokers.length === 0 || !o.brokers.every((b) => typeof b === 'string' && /^[^\s:,]+:\d{1,5}$/.test(b))) {
    throw new CounterdError('invalid_option', `brokers must be a non-empty list of "host:port", got ${JSON.stringify(o.brokers)}`)
  }
  const topic = o.topic ?? DEFAULT_TOPIC
  if (!/^[A-Za-z0-9._-]{1,249}$/.test(topic) || topic === '.' || topic === '..') {
    throw new CounterdError('invalid_option', `topic must be 1 to 249 of [A-Za-z0-9._-], got ${JSON.stringify(topic)}`)
  }
  return {
    brokers: o.brokers,
    topic,
    clientId: nonEmpty('clientId', o.clientId ?? 'counterd'),
    numPartitions: int('numPartitions', o.numPartitions ?? 64, 1, 100_000),
    replicationFactor: int('replicationFactor', o.replicationFactor ?? -1, -1, 100),
    startTimeoutMs: int('startTimeoutMs', o.startTimeoutMs ?? 10_000, 100, 600_000),
    connectTimeoutMs: int('connectTimeoutMs', o.connectTimeoutMs ?? 3000, 10, 600_000),
    requestTimeoutMs: int('requestTimeoutMs', o.requestTimeoutMs ?? 10_000, 10, 600_000),
    retryMinMs: int('retryMinMs', o.retryMinMs ?? 50, 1, 600_000),
    retryMaxMs: int('retryMaxMs', o.retryMaxMs ?? 2000, 1, 600_000),
    stallMs: int('stallMs', o.stallMs ?? 1000, 1, 600_000),
    maxRequestBytes: int('maxRequestBytes', o.maxRequestBytes ?? 900_000, 1024, 1024 * 1024 * 1024),
    logger: o.logger,
    confirm: o.confirm
  }
}

function int (name: string, v: number, min: number, max: number): number {
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new CounterdError('invalid_option', `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`)
  }
  return v
}

function nonEmpty (name: string, v: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new CounterdError('invalid_option', `${name} must be a non-empty string`)
  return v
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
