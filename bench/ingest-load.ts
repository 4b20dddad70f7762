// Load for the ingest suite: a kafkajs producer writing seed-shaped events to a topic at a fixed
// rate, and a probe of how soon they are visible in reads.
//
// Events: alternately a view ({"event_id","action":"view","item_type":"post","item_id":N}) and a
// like by a user never seen before ({...,"action":"like","user_id":SEQ}), items spread over
// `items` ids, partitions assigned round robin. Visibility: each tick ends with one clock event per
// partition ({"action":"increment","item_type":"benchclock","item_id":P,"by":1}); the probe reads
// the 4 clocks every few ms, and the k-th clock increment of partition P becoming visible gives
// one produce→visible lag sample (from just before its send call to the read that saw it; the
// poll interval is the resolution). Events of a partition are applied in order, so a clock's lag
// is the lag of every event produced to that partition before it.
import { Kafka, logLevel, type Message, type Producer } from 'kafkajs'
import { LatencyHistogram } from './histogram'

export const TOPIC_PARTITIONS = 4 // what the mock auto-creates
export const CLOCK_TYPE = 'benchclock'

export interface IngestTarget {
  port: number
  /** Clock values, one per partition. */
  readClocks: () => Promise<number[]>
  /** Events the target has counted so far. */
  eventsCounted: () => Promise<number>
}

export async function connectProducer (brokers: string[]): Promise<Producer> {
  const kafka = new Kafka({ clientId: 'bench-ingest-producer', brokers, logLevel: logLevel.NOTHING })
  const producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: true })
  await producer.connect()
  return producer
}

/** Event `seq`: even = a view, odd = a like by user `seq` (so every like counts). */
export function eventMessage (prefix: string, seq: number, items: number): Message {
  // A cheap scramble of seq spreads events over the items without a random generator.
  const item = (seq * 2654435761 >>> 0) % items
  const value = (seq & 1) === 0
    ? `{"event_id":"${prefix}${seq}","action":"view","item_type":"post","item_id":${item}}`
    : `{"event_id":"${prefix}${seq}","action":"like","item_type":"post","item_id":${item},"user_id":${seq}}`
  return { value, partition: seq % TOPIC_PARTITIONS }
}

function clockMessage (prefix: string, p: number, k: number): Message {
  return { value: `{"event_id":"${prefix}c${p}-${k}","action":"increment","item_type":"${CLOCK_TYPE}","item_id":${p},"by":1}`, partition: p }
}

/** Produces events [from, from + count) as fast as the producer goes (a backlog). */
export async function produceBacklog (producer: Producer, topic: string, prefix: string, from: number, count: number, items: number): Promise<void> {
  const inflight: Array<Promise<unknown>> = []
  for (let s = from; s < from + count; s += 5000) {
    const messages: Message[] = []
    for (let i = s; i < Math.min(from + count, s + 5000); i++) messages.push(eventMessage(prefix, i, items))
    inflight.push(producer.send({ topic, acks: -1, messages }))
    if (inflight.length >= 4) await inflight.shift()
  }
  await Promise.all(inflight)
}

export interface LiveResult {
  /** events produced (clock events not included) */
  produced: number
  producedPerSec: number
  /** clock events produced per partition */
  clocks: number[]
  lag: LatencyHistogram
  /** lag samples seen (of clocks.reduce(+)) */
  samples: number
  /** events counted by the target per second, from the first send to the last clock visible */
  ingestedPerSec: number
  /** ms from the last send to the last clock visible */
  drainMs: number
  /** whether every clock became visible before the deadline */
  complete: boolean
}

/**
 * Produces events [from, …) at `rate` per second for `seconds`, in ticks of 10 ms, and samples
 * produce→visible lag on the target meanwhile and until every clock is visible (or `drainLimitMs`).
 */
export async function produceLive (o: {
  producer: Producer
  topic: string
  prefix: string
  from: number
  rate: number
  seconds: number
  items: number
  target: IngestTarget
  drainLimitMs?: number
}): Promise<LiveResult> {
  const tickMs = 10
  const perTick = Math.max(1, Math.round(o.rate * tickMs / 1000))
  const sentAt: number[][] = Array.from({ length: TOPIC_PARTITIONS }, () => [])
  const seen = new Array(TOPIC_PARTITIONS).fill(0)
  const lag = new LatencyHistogram()
  let samples = 0
  let producing = true
  let lastVisible = 0
  const counted0 = await o.target.eventsCounted()

  let stopAt = Infinity
  const probe = (async () => {
    for (;;) {
      const values = await o.target.readClocks()
      const now = performance.now()
      for (let p = 0; p < TOPIC_PARTITIONS; p++) {
        while (seen[p] < values[p] && seen[p] < sentAt[p].length) {
          lag.record((now - sentAt[p][seen[p]]) * 1000)
          seen[p]++
          samples++
          lastVisible = now
        }
      }
      if (!producing && seen.every((n, p) => n >= sentAt[p].length)) return true
      if (!producing && performance.now() - stopAt > (o.drainLimitMs ?? 60_000)) return false
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })()

  const started = performance.now()
  let seq = o.from
  let next = started
  const inflight: Array<Promise<unknown>> = []
  for (let tick = 0; performance.now() - started < o.seconds * 1000; tick++) {
    const messages: Message[] = new Array(perTick + TOPIC_PARTITIONS)
    for (let i = 0; i < perTick; i++) messages[i] = eventMessage(o.prefix, seq++, o.items)
    const now = performance.now()
    for (let p = 0; p < TOPIC_PARTITIONS; p++) {
      messages[perTick + p] = clockMessage(o.prefix, p, sentAt[p].length)
      sentAt[p].push(now)
    }
    inflight.push(o.producer.send({ topic: o.topic, acks: -1, messages }))
    // A producer that cannot keep up is slowed here (the rate reported is the rate reached).
    while (inflight.length > 16) await inflight.shift()
    next += tickMs
    const wait = next - performance.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
  }
  await Promise.all(inflight)
  stopAt = performance.now()
  producing = false
  const produced = seq - o.from
  const complete = await probe
  const counted = await o.target.eventsCounted() - counted0
  const end = complete ? lastVisible : performance.now()
  return {
    produced,
    producedPerSec: produced / ((stopAt - started) / 1000),
    clocks: sentAt.map((s) => s.length),
    lag,
    samples,
    ingestedPerSec: counted / ((end - started) / 1000),
    drainMs: Math.max(0, end - stopAt),
    complete
  }
}
