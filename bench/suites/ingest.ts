// Suite: Kafka event ingestion (INGEST_TOPIC). Each round starts a fresh Kafka mock and a fresh
// topic, produces a backlog of seed-shaped events (views and likes), then starts the consumer:
// counterd (ack=durable, the consumer in shard 0, offsets committed after the events are durable)
// or the peer, a bare kafkajs consumer that only decodes and counts in a Map (bench/ingest-ceiling.ts).
//   1. capacity: how fast the backlog is drained (events counted per second, first to last);
//   2. live: events produced at 100k/s for the run's duration while the probe samples
//      produce→visible lag (bench/ingest-load.ts); the figure is events counted per second and
//      the lag's p50/p99.
// Then everything is read back: every view and like counted exactly once.
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { startCounterd, stopCounterd } from '../counterd'
import { CLOCK_TYPE, TOPIC_PARTITIONS, connectProducer, produceBacklog, produceLive, type IngestTarget, type LiveResult } from '../ingest-load'
import { launchKafkaMock } from '../kafka-launcher'
import { startNodeService } from '../node-service'
import { CpuMeter } from '../proc-stats'
import { compare, target, type BenchContext, type Run, type Suite } from '../suite'

const RATE = 100_000
const ITEMS = 10_000
const BACKLOG = 100_000 // events ≈ 9 MB: within what the mock keeps per topic (~5 MB per partition)
const CLOCK_KEYS = Array.from({ length: TOPIC_PARTITIONS }, (_, p) => `${CLOCK_TYPE}:${p}`)

async function postJson (port: number, p: string, body: unknown): Promise<any> {
  const r = await fetch(`http://127.0.0.1:${port}${p}`, { method: 'POST', body: JSON.stringify(body) })
  if (r.status !== 200) throw new Error(`POST ${p}: ${r.status} ${await r.text()}`)
  return await r.json()
}

function targetOf (port: number, counted: () => Promise<number>): IngestTarget {
  return {
    port,
    readClocks: async () => {
      const { values } = await postJson(port, '/v1/counters/query', { keys: CLOCK_KEYS }) as { values: Record<string, number> }
      return CLOCK_KEYS.map((k) => values[k] ?? 0)
    },
    eventsCounted: counted
  }
}

async function counterdEvents (port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  const m = /^counterd_ingest_events_total (\d+)$/m.exec(text)
  return m === null ? 0 : Number(m[1])
}

/** Polls `counted` until it reaches `n`: the rate from the first event seen to the last. */
async function drainRate (counted: () => Promise<number>, n: number, limitMs = 120_000): Promise<{ perSec: number, ms: number, complete: boolean }> {
  const deadline = performance.now() + limitMs
  let first: { t: number, n: number } | null = null
  for (;;) {
    const c = await counted()
    const now = performance.now()
    if (c > 0 && first === null) first = { t: now, n: c }
    if (c >= n && first !== null) {
      const ms = now - first.t
      return { perSec: ms > 0 ? (n - first.n) / (ms / 1000) : NaN, ms, complete: true }
    }
    if (now > deadline) return { perSec: NaN, ms: NaN, complete: false }
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Views per item and likes per item as produced: even seqs are views, odd seqs likes. */
function expectedSums (events: number): { views: number, likes: number } {
  return { views: Math.ceil(events / 2), likes: Math.floor(events / 2) }
}

async function counterdReadBack (port: number): Promise<{ views: number, likes: number, clocks: number[] }> {
  let views = 0
  let likes = 0
  for (let i = 0; i < ITEMS; i += 1000) {
    const ids = Array.from({ length: Math.min(1000, ITEMS - i) }, (_, k) => i + k)
    const v = await postJson(port, '/v1/counters/query', { keys: ids.map((id) => `post:${id}`) }) as { values: Record<string, number> }
    for (const x of Object.values(v.values)) views += x
    const l = await postJson(port, '/v1/counts', { items: ids.map((id) => ({ item_type: 'post', item_id: id })) }) as { counts: Record<string, number> }
    for (const x of Object.values(l.counts)) likes += x
  }
  const { values } = await postJson(port, '/v1/counters/query', { keys: CLOCK_KEYS }) as { values: Record<string, number> }
  return { views, likes, clocks: CLOCK_KEYS.map((k) => values[k] ?? 0) }
}

interface RoundResult { capacity: Run, live: Run }

async function oneRound (ctx: BenchContext, round: number, side: 'counterd' | 'ceiling'): Promise<RoundResult> {
  const kafka = await launchKafkaMock(1)
  const notes: string[] = []
  const topic = `bench-ingest-${round}-${randomBytes(3).toString('hex')}`
  const group = `bench-${side}-${round}`
  const prefix = `r${round}-`
  const producer = await connectProducer(kafka.brokers)
  try {
    await produceBacklog(producer, topic, prefix, 0, BACKLOG, ITEMS)
    const meter = new CpuMeter({ 'benchmark (producer, probe)': process.pid, 'Kafka mock': kafka.pid })
    let counted: () => Promise<number>
    let stop: () => Promise<void>
    let pid: number
    let port: number
    if (side === 'counterd') {
      const c = await startCounterd(ctx, {
        label: round === 1 ? 'ingest' : `ingest-${round}`,
        env: { ACK_MODE: 'durable', INGEST_TOPIC: topic, INGEST_BROKERS: kafka.brokers.join(','), INGEST_GROUP: group },
        profile: round === 1
      })
      port = c.port
      pid = c.pid
      counted = async () => await counterdEvents(c.port)
      stop = async () => { await stopCounterd(c, notes) }
    } else {
      const s = await startNodeService({
        name: 'ingest ceiling',
        script: path.join(__dirname, '..', 'ingest-ceiling.js'),
        env: { BROKERS: kafka.brokers.join(','), TOPIC: topic, GROUP: group, PORT: '0' }
      })
      port = s.port
      pid = s.pid
      counted = async () => (await (await fetch(`http://127.0.0.1:${s.port}/events`)).json() as { events: number }).events
      stop = async () => { await s.stop() }
    }
    meter.addStartedProcess(side, pid)
    try {
      const drained = await drainRate(counted, BACKLOG)
      const capUsage = meter.stop().usage
      const capacity: Run = {
        round,
        value: drained.perSec,
        exact: drained.complete,
        check: drained.complete ? `${BACKLOG} backlog events counted in ${Math.round(drained.ms)} ms` : `backlog of ${BACKLOG} not drained within 120 s`,
        cpu: capUsage
      }
      const liveMeter = new CpuMeter({ 'benchmark (producer, probe)': process.pid, 'Kafka mock': kafka.pid, [side]: pid })
      const live: LiveResult = await produceLive({
        producer, topic, prefix, from: BACKLOG, rate: RATE, seconds: Math.max(5, ctx.durationSec), items: ITEMS, target: targetOf(port, counted)
      })
      const liveUsage = liveMeter.stop().usage
      const clocksProduced = live.clocks.reduce((a, b) => a + b, 0)
      const total = BACKLOG + live.produced + clocksProduced
      let exact: boolean
      let check: string
      // Counted once durable (counterd): a moment after the last clock was seen.
      const countedAll = (await drainRate(counted, total, 30_000)).complete ? total : await counted()
      if (side === 'counterd') {
        const back = await counterdReadBack(port)
        const want = expectedSums(BACKLOG + live.produced)
        exact = live.complete && back.views === want.views && back.likes === want.likes && back.clocks.every((c, p) => c === live.clocks[p]) && countedAll === total
        check = `views read back ${back.views} (produced ${want.views}), likes ${back.likes} (produced ${want.likes}), clocks ${back.clocks.join('/')} (produced ${live.clocks.join('/')}), events counted ${countedAll} of ${total}`
      } else {
        exact = live.complete && countedAll === total
        check = `events counted ${countedAll} of ${total}`
      }
      ctx.log(`  round ${round} ${side.padEnd(8)} backlog ${Math.round(capacity.value)} events/s; live: produced ${Math.round(live.producedPerSec)}/s, counted ${Math.round(live.ingestedPerSec)}/s, lag p50 ${live.lag.percentileMs(50).toFixed(1)} ms p99 ${live.lag.percentileMs(99).toFixed(1)} ms, drained ${Math.round(live.drainMs)} ms after the last send; ${exact ? 'exact' : 'NOT EXACT: ' + check}`)
      return {
        capacity,
        live: {
          round,
          value: live.ingestedPerSec,
          p50Ms: live.lag.percentileMs(50),
          p99Ms: live.lag.percentileMs(99),
          exact,
          check,
          cpu: liveUsage,
          details: { producedPerSec: Math.round(live.producedPerSec), produced: live.produced, lagSamples: live.samples, maxLagMs: live.lag.maxMicros / 1000, drainMs: Math.round(live.drainMs) }
        }
      }
    } finally {
      await stop()
    }
  } finally {
    await producer.disconnect().catch(() => {})
    await kafka.stop()
    if (notes.length > 0) ctx.log(`  ${notes.join('; ')}`)
  }
}

export const ingest: Suite = {
  name: 'ingest',
  title: 'Kafka event ingestion (INGEST_TOPIC)',
  async run (ctx: BenchContext) {
    const rounds = ctx.quick ? 1 : ctx.rounds
    const subject: RoundResult[] = []
    const peer: RoundResult[] = []
    for (let round = 1; round <= rounds; round++) {
      subject.push(await oneRound(ctx, round, 'counterd'))
      peer.push(await oneRound(ctx, round, 'ceiling'))
    }
    const seconds = Math.max(5, ctx.durationSec)
    const capacity = compare({
      name: 'ingest-capacity',
      label: `Kafka ingestion: draining a backlog of ${BACKLOG / 1000}k events (views and likes)`,
      unit: 'events/s',
      higherIsBetter: true,
      subject: { system: 'counterd', config: 'ack=durable, the consumer in shard 0, each event a unit tagged by event_id, offsets committed after durable replies', runs: subject.map((r) => r.capacity) },
      peer: { system: 'bare kafkajs consumer', config: 'same topic and client settings; JSON.parse and a Map, offsets committed per batch, nothing durable, no dedup', runs: peer.map((r) => r.capacity) },
      targets: (s) => [target('≥ 100k events/s', s.value.median, (v) => v >= RATE)]
    })
    const live = compare({
      name: 'ingest-live',
      label: `Kafka ingestion at ${RATE / 1000}k events/s offered for ${seconds} s: events counted per second, produce→visible lag`,
      unit: 'events/s',
      higherIsBetter: true,
      subject: { system: 'counterd', config: 'as above; lag read back through POST /v1/counters/query every 5 ms', runs: subject.map((r) => r.live) },
      peer: { system: 'bare kafkajs consumer', config: 'as above; lag read over HTTP every 5 ms', runs: peer.map((r) => r.live) },
      targets: (s) => [
        target(`≥ ${RATE / 1000}k events/s counted`, s.value.median, (v) => v >= RATE * 0.98),
        target('p99 produce→visible < 2 s', s.p99Ms?.median, (v) => v < 2000)
      ]
    })
    return {
      comparisons: [capacity, live],
      notes: [
        'Kafka is librdkafka\'s mock cluster (one broker, 4 partitions per topic, hosted by kcat) on this machine: the producer, the mock, the probe and the consumer share its two cores with counterd.',
        'Events alternate a view and a like by a new user over 10,000 items; every tick of 10 ms ends with one clock event per partition, whose visibility gives the lag samples (resolution: the 5 ms poll).',
        '"events counted per second" runs from the first send to the last clock seen, so a consumer that keeps up shows the offered rate; the produce rate reached is in the details.'
      ]
    }
  }
}
