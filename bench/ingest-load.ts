// Load for the ingest suite: seed-shaped events written to a topic at a fixed rate, and a probe of
// how soon they are visible in reads. The producer is librdkafka (a `kcat -P` process per
// partition, fed lines through a pipe): kafkajs's producer tops out well below 100k events/s on
// this machine while sharing its two cores with the consumer, and would measure itself.
//
// Events: alternately a view ({"event_id","action":"view","item_type":"post","item_id":N}) and a
// like by a user never seen before ({...,"action":"like","user_id":SEQ}), items spread over
// `items` ids, partitions assigned round robin. Visibility: each tick ends with one clock event per
// partition ({"action":"increment","item_type":"benchclock","item_id":P,"by":1}); the probe reads
// the 4 clocks every few ms, and the k-th clock increment of partition P becoming visible gives
// one produce→visible lag sample (from just before its send call to the read that saw it; the
// poll interval is the resolution). Events of a partition are applied in order, so a clock's lag
// is the lag of every event produced to that partition before it.
import { spawn, type ChildProcess } from 'node:child_process'
import { expectExit, trackChild } from './children'
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

/** One `kcat -P` per partition; events are lines written to its stdin. */
export class LineProducer {
  private readonly procs: ChildProcess[] = []
  private readonly exits: Array<Promise<number | null>> = []

  constructor (brokers: string[], topic: string) {
    for (let p = 0; p < TOPIC_PARTITIONS; p++) {
      const proc = spawn('kcat', ['-P', '-q', '-b', brokers.join(','), '-t', topic, '-p', String(p),
        '-X', 'acks=all', '-X', 'linger.ms=1', '-X', 'queue.buffering.max.messages=2000000'], { stdio: ['pipe', 'ignore', 'pipe'] })
      trackChild(proc, `kcat -P (partition ${p})`)
      proc.stderr?.resume()
      this.exits.push(new Promise((resolve) => proc.once('exit', (code) => resolve(code))))
      this.procs.push(proc)
    }
  }

  /** Writes lines for partition p; resolves at once unless its pipe is full (then once drained). */
  async write (p: number, text: string): Promise<void> {
    const stdin = this.procs[p].stdin
    if (stdin === null || stdin.write(text)) return
    await new Promise((resolve) => stdin.once('drain', resolve))
  }

  /** Ends the input and waits until every message was delivered (kcat flushes, then exits). */
  async close (): Promise<void> {
    for (const proc of this.procs) { expectExit(proc); proc.stdin?.end() }
    const codes = await Promise.all(this.exits)
    if (codes.some((c) => c !== 0)) throw new Error(`a kcat producer exited with ${codes.join(', ')}`)
  }
}

/** Event `seq`: even = a view, odd = a like by user `seq` (so every like counts); its partition is seq mod 4. */
export function eventLine (prefix: string, seq: number, items: number): string {
  // A cheap scramble of seq spreads events over the items without a random generator.
  const item = (seq * 2654435761 >>> 0) % items
  return (seq & 1) === 0
    ? `{"event_id":"${prefix}${seq}","action":"view","item_type":"post","item_id":${item}}\n`
    : `{"event_id":"${prefix}${seq}","action":"like","item_type":"post","item_id":${item},"user_id":${seq}}\n`
}

function clockLine (prefix: string, p: number, k: number): string {
  return `{"event_id":"${prefix}c${p}-${k}","action":"increment","item_type":"${CLOCK_TYPE}","item_id":${p},"by":1}\n`
}

/** Produces events [from, from + count) as fast as they go, and waits until Kafka has them all. */
export async function produceBacklog (brokers: string[], topic: string, prefix: string, from: number, count: number, items: number): Promise<void> {
  const producer = new LineProducer(brokers, topic)
  const chunks: string[] = new Array(TOPIC_PARTITIONS).fill('')
  for (let s = from; s < from + count; s++) {
    const p = s % TOPIC_PARTITIONS
    chunks[p] += eventLine(prefix, s, items)
    if (chunks[p].length > 256 * 1024) { await producer.write(p, chunks[p]); chunks[p] = '' }
  }
  for (let p = 0; p < TOPIC_PARTITIONS; p++) if (chunks[p] !== '') await producer.write(p, chunks[p])
  await producer.close()
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
  brokers: string[]
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

  const producer = new LineProducer(o.brokers, o.topic)
  const started = performance.now()
  let seq = o.from
  let next = started
  const chunks: string[] = new Array(TOPIC_PARTITIONS)
  try {
    while (performance.now() - started < o.seconds * 1000) {
      chunks.fill('')
      for (let i = 0; i < perTick; i++, seq++) chunks[seq % TOPIC_PARTITIONS] += eventLine(o.prefix, seq, o.items)
      const now = performance.now()
      for (let p = 0; p < TOPIC_PARTITIONS; p++) {
        chunks[p] += clockLine(o.prefix, p, sentAt[p].length)
        sentAt[p].push(now)
        // A full pipe (the producer behind) slows this loop: the rate reported is the rate reached.
        await producer.write(p, chunks[p])
      }
      next += tickMs
      const wait = next - performance.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    }
  } finally {
    stopAt = performance.now()
    producing = false
    await producer.close()
  }
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
