// Event ingestion: a front like HTTP and the stream, whose requests come from a Kafka topic
// (INGEST_TOPIC) instead of sockets. It runs in one shard thread (shard 0) and goes through that
// thread's router, so an event reaches the actor of its partition exactly as an HTTP request
// would: applied inline or through the ring to the owning shard.
//
// Exactly once:
// - every event is one router unit tagged with (item, event_id) (src/core/ingest-event.ts): the
//   partition that applies it remembers the tag in its dedup window, and the memory is logged in
//   the same record as the change, so after a crash the log or the checkpoint has both or neither;
//   a redelivered event is answered as a resend and applies nothing;
// - a batch's offsets are committed only once every unit of it (and of the batches before it in
//   its partition) is durable: the router's durable replies (ack=durable), or a commit barrier on
//   every shard (ack=applied), and once its dead letters are confirmed by Kafka. Commits are
//   grouped: one request carries every partition's durable offset.
// A crash between the two (records durable, offsets not committed) redelivers the batch; the
// dedup window makes that harmless. Dead letters themselves are at least once: a crash after one
// was produced but before its offset was committed produces it again (the source headers tell).
import { Kafka, logLevel, type Admin, type Consumer, type EachBatchPayload, type IHeaders, type KafkaMessage, type Producer } from 'kafkajs'
import { CounterdError } from '../core/errors'
import { decodeEvent, eventTag, type IngestEvent } from '../core/ingest-event'
import { fnv1a32 } from '../core/keys'
import { OP_INCR, OP_INCR_ACTOR, OP_LIKE, OP_UNLIKE } from '../core/op-codec'
import type { UnitOwner } from '../routing/router'
import type { FrontContext } from './context'
import { F_INGEST_DUPLICATES, F_INGEST_EVENTS, F_INGEST_PARTITIONS } from './status-board'

/** Headers a dead letter carries besides the original message's own. */
export const DEAD_LETTER_CODE = 'counterd-dead-letter-code'
export const DEAD_LETTER_REASON = 'counterd-dead-letter-reason'
export const SOURCE_TOPIC = 'counterd-source-topic'
export const SOURCE_PARTITION = 'counterd-source-partition'
export const SOURCE_OFFSET = 'counterd-source-offset'

const LAG_REFRESH_MS = 1000
const PIPELINED = 8 // batches of one partition submitted and not yet durable, at most
const RETRY_START_MS = 1000

/** Events of one batch in flight: resolves `done` once every unit is answered. */
class BatchRun {
  outstanding = 1 // the submitter's own hold, released once every unit is sent
  readonly done: Promise<void>
  private resolve!: () => void

  constructor () {
    this.done = new Promise((resolve) => { this.resolve = resolve })
  }

  unitDone (): void {
    if (--this.outstanding === 0) this.resolve()
  }
}

/** One event's unit: the value it was answered with, whether it was a redelivery, its error. */
class EventUnit implements UnitOwner {
  parts = 0
  value = NaN
  dup = false
  error: CounterdError | null = null

  constructor (private readonly run: BatchRun) {}

  onApplied (_shard: number, values: Float64Array | null, _n: number, _refused: number, dup: boolean): void {
    if (values !== null) this.value = values[0]
    if (dup) this.dup = true
  }

  onPartDone (err: CounterdError | null): void {
    if (err !== null) this.error ??= err
    if (--this.parts > 0) return
    this.run.unitDone()
  }
}

interface DeadLetter { message: KafkaMessage, error: CounterdError }

export interface IngestOptions {
  clientId: string
  brokers: string[]
  topic: string
  group: string
  deadLetterTopic: string
  sessionTimeoutMs: number
}

export class Ingestor {
  private readonly kafka: Kafka
  private consumer: Consumer | null = null
  private producer: Producer | null = null
  private admin: Admin | null = null
  private stopping = false
  private running: Promise<void> | null = null
  private lagTimer: NodeJS.Timeout | null = null
  private assigned: number[] = []
  private readonly position = new Map<number, number>() // next offset to apply, per topic partition
  private readonly chains = new Map<number, Promise<void>>() // per partition: the last batch's completion
  private readonly queued = new Map<number, number>() // per partition: batches not yet completed
  private readonly durableUpTo = new Map<number, number>() // per partition: next offset after the durable events
  private readonly committed = new Map<number, number>() // per partition: the offset last committed
  private committing: Promise<void> | null = null
  private commitAgain = false
  private batchesIn = 0 // eachBatch calls running
  private readonly rewinds = new Map<number, number>() // per partition: times its reading was moved back
  private readonly applyAll: boolean // ack=applied: durability needs a commit barrier per batch

  constructor (private readonly ctx: FrontContext, private readonly o: IngestOptions) {
    this.kafka = new Kafka({
      clientId: o.clientId,
      brokers: o.brokers,
      connectionTimeout: 3000,
      requestTimeout: 10_000,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
      logLevel: logLevel.NOTHING
    })
    this.applyAll = ctx.config.ackMode === 'applied'
  }

  /** Starts consuming in the background; connection failures are retried until stop(). */
  start (): void {
    this.ctx.metrics.set(F_INGEST_PARTITIONS, 0)
    this.running ??= this.loop()
  }

  private async loop (): Promise<void> {
    let wait = RETRY_START_MS
    while (!this.stopping) {
      try {
        await this.connect()
        return
      } catch (err) {
        this.ctx.logger.warn({ err: (err as Error).message, topic: this.o.topic, brokers: this.o.brokers.join(',') }, `cannot start ingesting; retrying in ${wait} ms`)
        await this.disconnect()
        await new Promise((resolve) => setTimeout(resolve, wait))
        wait = Math.min(wait * 2, 30_000)
      }
    }
  }

  private async connect (): Promise<void> {
    const { o } = this
    const admin = this.admin = this.kafka.admin()
    const producer = this.producer = this.kafka.producer({ allowAutoTopicCreation: true, idempotent: false, maxInFlightRequests: 1 })
    const consumer = this.consumer = this.kafka.consumer({
      groupId: o.group,
      sessionTimeout: o.sessionTimeoutMs,
      rebalanceTimeout: Math.max(o.sessionTimeoutMs, 10_000),
      heartbeatInterval: Math.max(100, Math.min(3000, Math.floor(o.sessionTimeoutMs / 3))),
      maxWaitTimeInMs: 250,
      allowAutoTopicCreation: true,
      retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 5000 }
    })
    consumer.on(consumer.events.GROUP_JOIN, (e) => this.onAssigned(e.payload.memberAssignment[o.topic] ?? []))
    consumer.on(consumer.events.CRASH, (e) => {
      this.ctx.logger.error({ err: e.payload.error.message, restart: e.payload.restart }, 'the ingest consumer failed')
      this.onAssigned([])
      // kafkajs restarts itself after retriable errors; after others, start over (new clients).
      if (!e.payload.restart && !this.stopping && consumer === this.consumer) {
        this.running = (async () => {
          await Promise.allSettled([...this.chains.values()])
          await this.disconnect()
          await new Promise((resolve) => setTimeout(resolve, RETRY_START_MS))
          await this.loop()
        })()
      }
    })
    await admin.connect()
    await producer.connect()
    await consumer.connect()
    // A new group reads the topic from its beginning: the counts are the whole topic's.
    await consumer.subscribe({ topics: [o.topic], fromBeginning: true })
    await consumer.run({
      // Offsets are committed by complete(), once the batch is durable; resolving only moves the
      // fetch position.
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 8,
      eachBatch: async (payload) => await this.onBatch(payload)
    })
    this.lagTimer = setInterval(() => { this.refreshLag().catch(() => {}) }, LAG_REFRESH_MS)
    this.ctx.logger.info({ topic: o.topic, group: o.group, deadLetterTopic: o.deadLetterTopic, brokers: o.brokers.join(',') }, 'ingesting events')
  }

  /** Stops consuming: batches already taken are finished and their offsets committed first. */
  async stop (): Promise<void> {
    this.stopping = true
    await this.running?.catch(() => {})
    const consumer = this.consumer
    if (consumer !== null) {
      // No new fetches; let the batch being submitted end, then every pending completion commit.
      try { consumer.pause([{ topic: this.o.topic }]) } catch {} // throws when it never ran
      while (this.batchesIn > 0) await new Promise((resolve) => setTimeout(resolve, 5))
      await Promise.allSettled([...this.chains.values()])
      await this.flushCommits()
    }
    await this.disconnect()
    this.onAssigned([])
  }

  private async disconnect (): Promise<void> {
    if (this.lagTimer !== null) clearInterval(this.lagTimer)
    this.lagTimer = null
    await Promise.allSettled([this.consumer?.disconnect(), this.producer?.disconnect(), this.admin?.disconnect()])
    this.consumer = this.producer = this.admin = null
  }

  // ---- one batch ----

  /**
   * Submits every event of a batch as a unit and moves the fetch position past it at once, so
   * the next fetch overlaps this batch's log commit; the batch's completion (durability, dead
   * letters, then its offset handed to the committer) is chained after the earlier batches of its
   * partition, so a partition's committed offset only ever covers durable events.
   */
  private async onBatch (payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, isRunning, isStale } = payload
    const messages = batch.messages
    const run = new BatchRun()
    const units: Array<EventUnit | null> = new Array(messages.length)
    const dead: DeadLetter[] = []
    this.batchesIn++
    try {
      const p = batch.partition
      const rewind = this.rewinds.get(p) ?? 0
      let stale = false
      let taken = 0
      for (; taken < messages.length; taken++) {
        // Checked every 512 events, not each: isStale() builds a string per call in kafkajs.
        if ((taken & 511) === 0 && (!isRunning() || isStale())) { stale = isStale(); break }
        const m = messages[taken]
        const ev = decodeEvent(m.value)
        if (ev instanceof CounterdError) {
          units[taken] = null
          dead.push({ message: m, error: ev })
          continue
        }
        const u = units[taken] = new EventUnit(run)
        run.outstanding++
        // Refused for overload (too much in flight node-wide, or a ring full): wait, then again.
        while (!this.submit(u, ev)) {
          await new Promise((resolve) => setTimeout(resolve, 2))
          await heartbeat()
        }
      }
      run.unitDone()
      // A seek (a rewind after a failed batch) made this batch stale: its events are read again.
      if (taken === 0 || stale) return
      const first = messages[0].offset
      const last = messages[taken - 1].offset
      resolveOffset(last) // the fetch position only: offsets are committed by complete()
      const next = Number(last) + 1
      this.ctx.metrics.setIngestLag(p, Math.max(0, Number(batch.highWatermark) - next))
      this.position.set(p, next)
      const done = (this.chains.get(p) ?? Promise.resolve()).then(async () => {
        // After a rewind, batches read before it are not committed: the re-read covers them.
        if ((this.rewinds.get(p) ?? 0) !== rewind) return
        await this.complete(batch.topic, p, messages, units, taken, dead, run)
      }).catch((err: unknown) => {
        // Not committed: read the batch again (what was applied is recognised by its event_id).
        this.ctx.logger.warn({ err: (err as Error).message, partition: p, offset: first }, 'an ingest batch did not complete; reading it again')
        this.rewinds.set(p, rewind + 1)
        this.position.delete(p)
        try { this.consumer?.seek({ topic: batch.topic, partition: p, offset: first }) } catch {}
      })
      this.chains.set(p, done)
      // Bounded pipeline: at most PIPELINED batches of a partition wait to be durable.
      const queued = (this.queued.get(p) ?? 0) + 1
      this.queued.set(p, queued)
      void done.finally(() => this.queued.set(p, (this.queued.get(p) ?? 1) - 1))
      if (queued > PIPELINED) await done
    } finally {
      this.batchesIn--
    }
  }

  /** Waits for a batch's units, dead-letters what failed, counts, then lets its offset be committed. */
  private async complete (topic: string, partition: number, messages: KafkaMessage[], units: Array<EventUnit | null>, taken: number,
    dead: DeadLetter[], run: BatchRun): Promise<void> {
    const { ctx } = this
    await run.done
    // ack=applied answers before the log has the events: wait for every shard's next commit.
    if (this.applyAll) await ctx.router.controlAll('barrier', null)
    let applied = 0
    let dups = 0
    for (let i = 0; i < taken; i++) {
      const u = units[i]
      if (u === null) continue
      if (u.error !== null) dead.push({ message: messages[i], error: u.error })
      else if (Number.isNaN(u.value)) dead.push({ message: messages[i], error: new CounterdError('value_out_of_range') })
      else if (u.dup) dups++
      else applied++
    }
    if (dead.length > 0) {
      dead.sort((a, b) => Number(a.message.offset) - Number(b.message.offset))
      await this.deadLetter(topic, partition, dead)
    }
    ctx.metrics.add(F_INGEST_EVENTS, applied)
    ctx.metrics.add(F_INGEST_DUPLICATES, dups)
    // A partition revoked meanwhile is its new owner's to commit (it reads these events again).
    if (!this.assigned.includes(partition)) return
    this.durableUpTo.set(partition, Number(messages[taken - 1].offset) + 1)
    this.commitDurable()
  }

  /**
   * Commits every partition's durable offset, in one request; while one is in flight, the next
   * waits and then takes everything that became durable meanwhile (the way group commit does),
   * so the commit round trip never holds up the batches behind it.
   */
  private commitDurable (): void {
    if (this.committing !== null) { this.commitAgain = true; return }
    const consumer = this.consumer
    const offsets: Array<{ topic: string, partition: number, offset: string }> = []
    for (const [partition, next] of this.durableUpTo) {
      if (next > (this.committed.get(partition) ?? -1)) offsets.push({ topic: this.o.topic, partition, offset: String(next) })
    }
    if (consumer === null || offsets.length === 0) return
    this.committing = consumer.commitOffsets(offsets).then(() => {
      for (const o of offsets) this.committed.set(o.partition, Number(o.offset))
    }, (err: unknown) => {
      // A rebalance took a partition (or the group is rejoining): the events are durable; the
      // next owner reads them again and recognises them. A later commit here covers this one.
      this.ctx.logger.info({ err: (err as Error).message }, 'an ingest offset commit was refused; the events are durable and will be recognised if read again')
    }).finally(() => {
      this.committing = null
      if (this.commitAgain) { this.commitAgain = false; this.commitDurable() }
    })
  }

  /** Resolves once every offset durable so far is committed (or refused). */
  private async flushCommits (): Promise<void> {
    this.commitDurable()
    while (this.committing !== null) await this.committing
  }

  /** Sends one event as a unit; false when the router refused it for overload (nothing sent). */
  private submit (u: EventUnit, ev: IngestEvent): boolean {
    const router = this.ctx.router
    const hash = fnv1a32(ev.key)
    router.beginUnit(u, eventTag(ev), -1, true)
    if (ev.action === 'like') router.op(OP_LIKE, hash, ev.key, 0, ev.user)
    else if (ev.action === 'unlike') router.op(OP_UNLIKE, hash, ev.key, 0, ev.user)
    else if (ev.user === null) router.op(OP_INCR, hash, ev.key, ev.by)
    else router.op(OP_INCR_ACTOR, hash, ev.key, ev.by, ev.user)
    return router.endUnit()
  }

  /** Produces dead letters (acks from every in-sync replica) before their offsets may be committed. */
  private async deadLetter (topic: string, partition: number, dead: DeadLetter[]): Promise<void> {
    const producer = this.producer
    if (producer === null) throw new CounterdError('storage_unavailable', 'the ingest consumer is stopping')
    await producer.send({
      topic: this.o.deadLetterTopic,
      acks: -1,
      messages: dead.map(({ message: m, error }) => {
        const headers: IHeaders = { ...(m.headers ?? {}) }
        headers[DEAD_LETTER_CODE] = error.code
        headers[DEAD_LETTER_REASON] = error.message
        headers[SOURCE_TOPIC] = topic
        headers[SOURCE_PARTITION] = String(partition)
        headers[SOURCE_OFFSET] = m.offset
        return { key: m.key, value: m.value, headers }
      })
    })
    for (const { error } of dead) this.ctx.metrics.countError('ingest', error.code)
    this.ctx.logger.warn({ topic, partition, count: dead.length, first: { offset: dead[0].message.offset, code: dead[0].error.code, reason: dead[0].error.message } },
      `events sent to the dead-letter topic ${this.o.deadLetterTopic}`)
  }

  // ---- lag per partition ----

  private onAssigned (partitions: number[]): void {
    for (const p of this.assigned) {
      if (partitions.includes(p)) continue
      // Revoked: its new owner commits it from now on.
      this.ctx.metrics.setIngestLag(p, null)
      this.position.delete(p)
      this.durableUpTo.delete(p)
      this.committed.delete(p)
    }
    this.assigned = [...partitions]
    this.ctx.metrics.set(F_INGEST_PARTITIONS, this.stopping ? -1 : partitions.length)
    this.refreshLag().catch(() => {})
  }

  /** Lag = the high watermark − the next offset to apply (or the group's committed offset). */
  private async refreshLag (): Promise<void> {
    const admin = this.admin
    if (admin === null || this.assigned.length === 0) return
    const assigned = this.assigned
    const high = await admin.fetchTopicOffsets(this.o.topic)
    let committed: Map<number, number> | null = null
    if (assigned.some((p) => !this.position.has(p))) {
      const [t] = await admin.fetchOffsets({ groupId: this.o.group, topics: [this.o.topic] })
      committed = new Map((t?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]))
    }
    if (assigned !== this.assigned) return // reassigned meanwhile
    for (const h of high) {
      if (!assigned.includes(h.partition)) continue
      let at = this.position.get(h.partition)
      if (at === undefined) {
        const c = committed?.get(h.partition) ?? -1
        at = c >= 0 ? c : Number(h.low)
      }
      this.ctx.metrics.setIngestLag(h.partition, Math.max(0, Number(h.high) - at))
    }
  }
}
