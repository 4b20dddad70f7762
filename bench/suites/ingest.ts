// Suite: Kafka event ingestion (INGEST_TOPIC). Each round starts a fresh Kafka mock and a fresh
// topic, produces a backlog of seed-shaped events (views and likes), then starts the consumer:
// counterd (ack=durable, the consumer in shard 0, offsets committed after the events are durable)
// or the peer, a bare kafkajs consumer that only decodes and counts in a Map (bench/ingest-ceiling.ts).
//   1. capacity: how fast a backlog is drained (events counted per second, from its first send to
//      the last event counted);
//   2. live at 100k/s: events produced at the target rate for 1.5 s (what the mock can hold unread)
//      while the probe samples produce→visible lag (bench/ingest-load.ts): events counted per
//      second and the lag's p50/p99;
//   3. live at 80% of the consumer's own drain rate for the run's duration (at least 5 s): the lag
//      of a consumer that keeps up.
// Then everything is read back: every view and like counted exactly once.
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { startCounterd, stopCounterd } from '../counterd'
import { CLOCK_TYPE, TOPIC_PARTITIONS, produceBacklog, produceLive, type IngestTarget, type LiveResult } from '../ingest-load'
import { launchKafkaMock } from '../kafka-launcher'
import { startNodeService } from '../node-service'
import { CpuMeter } from '../proc-stats'
import { compare, target, type BenchContext, type Run, type Suite } from '../suite'

const RATE = 100_000
const ITEMS = 10_000
// The mock keeps about 5 MB per partition (20 MB per topic, ~200k of these events): what a consumer
// has not read yet must fit, so the backlog and the run at the full rate are bounded.
const BACKLOG = 50_000
const FULL_RATE_SECONDS = 1.5
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

async function counterdIngest (port: number): Promise<{ events: number, consumers: number, assigned: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  const num = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
  return { events: num('counterd_ingest_events_total'), consumers: num('counterd_ingest_consumers'), assigned: num('counterd_ingest_consumers_assigned') }
}

/**
 * Polls `counted` until it reaches `n`: the rate from `startAt` (or the first event seen) to the
 * last. From a fixed start, a poll delayed by a busy machine cannot inflate the rate.
 */
async function drainRate (counted: () => Promise<number>, n: number, limitMs = 120_000, startAt?: number): Promise<{ perSec: number, ms: number, complete: boolean }> {
  const deadline = performance.now() + limitMs
  let first: { t: number, n: number } | null = startAt === undefined ? null : { t: startAt, n: 0 }
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

interface RoundResult { capacity: Run, full: Run, sustained: Run }

/** One live phase: events at `rate` for `seconds`, then the lag and rate figures as a Run. */
async function livePhase (o: {
  ctx: BenchContext, round: number, side: string, brokers: string[], topic: string, prefix: string, from: number, rate: number, seconds: number,
  target: IngestTarget, pids: Record<string, number>
}): Promise<{ run: Run, live: LiveResult }> {
  const meter = new CpuMeter(o.pids)
  const live = await produceLive({ brokers: o.brokers, topic: o.topic, prefix: o.prefix, from: o.from, rate: o.rate, seconds: o.seconds, items: ITEMS, target: o.target, drainLimitMs: 30_000 })
  const measured = meter.stop()
  // CPU per event of the consumer's process: what the figure costs, whatever else ran meanwhile.
  const events = live.produced + live.clocks.reduce((a, b) => a + b, 0)
  const cpuUsPerEvent = Math.round((measured.usage[o.side]?.cpuMs ?? NaN) * 1000 / events * 10) / 10
  o.ctx.log(`  round ${o.round} ${o.side.padEnd(8)} at ${Math.round(o.rate / 1000)}k/s for ${o.seconds} s: produced ${Math.round(live.producedPerSec)}/s, counted ${Math.round(live.ingestedPerSec)}/s, ` +
    `lag p50 ${live.lag.percentileMs(50).toFixed(1)} ms p99 ${live.lag.percentileMs(99).toFixed(1)} ms, last clock seen ${Math.round(live.drainMs)} ms after the last send${live.complete ? '' : ' (NOT ALL SEEN within 30 s)'}; ` +
    `${o.side} CPU ${cpuUsPerEvent} µs per event, other load ${measured.usage.others?.percent ?? NaN}% of a core`)
  return {
    live,
    run: {
      round: o.round,
      value: live.ingestedPerSec,
      p50Ms: live.lag.percentileMs(50),
      p99Ms: live.lag.percentileMs(99),
      exact: live.complete, // the read-back at the end of the round decides, see oneRound
      check: `${live.samples} lag samples; every clock seen: ${String(live.complete)}`,
      cpu: { ...measured.usage, 'kcat producers': measured.reapedChildren },
      details: { cpuUsPerEvent, offeredPerSec: o.rate, producedPerSec: Math.round(live.producedPerSec), produced: live.produced, lagSamples: live.samples, maxLagMs: live.lag.maxMicros / 1000, drainMs: Math.round(live.drainMs) }
    }
  }
}

async function oneRound (ctx: BenchContext, round: number, side: 'counterd' | 'ceiling'): Promise<RoundResult> {
  const kafka = await launchKafkaMock(1)
  const notes: string[] = []
  const topic = `bench-ingest-${round}-${randomBytes(3).toString('hex')}`
  const group = `bench-${side}-${round}`
  const prefix = `r${round}-`
  try {
    // The topic exists (one event) before the consumer subscribes.
    await produceBacklog(kafka.brokers, topic, `${prefix}w`, 0, 1, ITEMS)
    let counted: () => Promise<number>
    let settled: () => Promise<boolean>
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
      counted = async () => (await counterdIngest(c.port)).events
      settled = async () => { const m = await counterdIngest(c.port); return m.consumers > 0 && m.assigned === Math.min(m.consumers, TOPIC_PARTITIONS) }
      stop = async () => { await stopCounterd(c, notes) }
    } else {
      const s = await startNodeService({
        name: 'ingest ceiling',
        script: path.join(__dirname, '..', 'ingest-ceiling.js'),
        env: { BROKERS: kafka.brokers.join(','), TOPIC: topic, GROUP: group, PORT: '0' }
      })
      port = s.port
      pid = s.pid
      const read = async (): Promise<{ events: number, assigned: number }> => await (await fetch(`http://127.0.0.1:${s.port}/events`)).json() as { events: number, assigned: number }
      counted = async () => (await read()).events
      settled = async () => (await read()).assigned === TOPIC_PARTITIONS
      stop = async () => { await s.stop() }
    }
    try {
      // Every consumer of the group holds its partitions: no rebalance during the measurement.
      const deadline = Date.now() + 60_000
      while (!await settled()) {
        if (Date.now() > deadline) throw new Error(`${side}: the consumer group did not settle within 60 s`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      await new Promise((resolve) => setTimeout(resolve, 500))
      const meter = new CpuMeter({ 'benchmark (backlog producer)': process.pid, 'Kafka mock': kafka.pid, [side]: pid })
      // From the first send to the last event counted: production (a fraction of a second for
      // librdkafka) overlaps consumption.
      const t0 = performance.now()
      const producing = produceBacklog(kafka.brokers, topic, prefix, 0, BACKLOG, ITEMS)
      const drained = await drainRate(async () => await counted() - 1, BACKLOG, 120_000, t0)
      await producing
      const usage = meter.stop().usage
      const cpuUsPerEvent = Math.round((usage[side]?.cpuMs ?? NaN) * 1000 / BACKLOG * 10) / 10
      const capacity: Run = {
        round,
        value: drained.perSec,
        exact: drained.complete,
        check: drained.complete ? `${BACKLOG} backlog events counted in ${Math.round(drained.ms)} ms` : `backlog of ${BACKLOG} not drained within 120 s`,
        cpu: usage,
        details: { cpuUsPerEvent }
      }
      ctx.log(`  round ${round} ${side.padEnd(8)} backlog of ${BACKLOG}: ${Math.round(capacity.value)} events/s; ${side} CPU ${cpuUsPerEvent} µs per event, other load ${usage.others?.percent ?? NaN}% of a core`)
      const pids = { 'benchmark (probe)': process.pid, 'Kafka mock': kafka.pid, [side]: pid }
      const target = targetOf(port, counted)
      // At the target rate, for as long as the mock keeps what a slower consumer has not read yet.
      const full = await livePhase({ ctx, round, side, brokers: kafka.brokers, topic, prefix: `${prefix}f`, from: BACKLOG, rate: RATE, seconds: FULL_RATE_SECONDS, target, pids })
      let from = BACKLOG + full.live.produced
      // At 80% of what this consumer drained: the lag when it keeps up.
      const rate = Math.max(1000, Math.round(0.8 * Math.min(RATE, Number.isFinite(capacity.value) ? capacity.value : 10_000) / 1000) * 1000)
      const sustained = await livePhase({ ctx, round, side, brokers: kafka.brokers, topic, prefix: `${prefix}s`, from, rate, seconds: Math.max(5, ctx.durationSec), target, pids })
      from += sustained.live.produced
      const clocks = full.live.clocks.map((c, p) => c + sustained.live.clocks[p])
      const total = 1 + from + clocks.reduce((a, b) => a + b, 0) // with the first event
      // Counted once durable (counterd): a moment after the last clock was seen.
      const countedAll = (await drainRate(counted, total, 30_000)).complete ? total : await counted()
      let exact: boolean
      let check: string
      if (side === 'counterd') {
        const back = await counterdReadBack(port)
        const want = expectedSums(from)
        want.views++ // the first event (seq 0, a view)
        exact = back.views === want.views && back.likes === want.likes && back.clocks.every((c, p) => c === clocks[p]) && countedAll === total
        check = `views read back ${back.views} (produced ${want.views}), likes ${back.likes} (produced ${want.likes}), clocks ${back.clocks.join('/')} (produced ${clocks.join('/')}), events counted ${countedAll} of ${total}`
      } else {
        exact = countedAll === total
        check = `events counted ${countedAll} of ${total}`
      }
      ctx.log(`  round ${round} ${side.padEnd(8)} ${exact ? 'exact' : 'NOT EXACT'}: ${check}`)
      for (const r of [capacity, full.run, sustained.run]) {
        r.exact &&= exact
        r.check += `; read back: ${check}`
      }
      return { capacity, full: full.run, sustained: sustained.run }
    } finally {
      await stop()
    }
  } finally {
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
    const consumer = 'ack=durable, the consumer in shard 0, each event a unit tagged by event_id, offsets committed after durable replies'
    const bare = 'same topic and client settings; JSON.parse and a Map, offsets committed per batch, nothing durable, no dedup'
    const capacity = compare({
      name: 'ingest-capacity',
      label: `Kafka ingestion: draining a backlog of ${BACKLOG / 1000}k events (views and likes)`,
      unit: 'events/s',
      higherIsBetter: true,
      subject: { system: 'counterd', config: consumer, runs: subject.map((r) => r.capacity) },
      peer: { system: 'bare kafkajs consumer', config: bare, runs: peer.map((r) => r.capacity) },
      targets: (s) => [target('≥ 100k events/s', s.value.median, (v) => v >= RATE)]
    })
    const full = compare({
      name: 'ingest-live-100k',
      label: `Kafka ingestion at ${RATE / 1000}k events/s offered for ${FULL_RATE_SECONDS} s: events counted per second, produce→visible lag`,
      unit: 'events/s',
      higherIsBetter: true,
      subject: { system: 'counterd', config: `${consumer}; lag read through POST /v1/counters/query every 5 ms`, runs: subject.map((r) => r.full) },
      peer: { system: 'bare kafkajs consumer', config: `${bare}; lag read over HTTP every 5 ms`, runs: peer.map((r) => r.full) },
      targets: (s) => [
        target(`≥ ${RATE / 1000}k events/s counted`, s.value.median, (v) => v >= RATE * 0.98),
        target('p99 produce→visible < 2 s', s.p99Ms?.median, (v) => v < 2000)
      ]
    })
    const sustained = compare({
      name: 'ingest-live-sustained',
      label: `Kafka ingestion at 80% of each consumer's own drain rate for ${seconds} s: produce→visible lag`,
      unit: 'events/s',
      higherIsBetter: true,
      subject: { system: 'counterd', config: consumer, runs: subject.map((r) => r.sustained) },
      peer: { system: 'bare kafkajs consumer', config: bare, runs: peer.map((r) => r.sustained) },
      targets: (s) => [target('p99 produce→visible < 2 s', s.p99Ms?.median, (v) => v < 2000)]
    })
    return {
      comparisons: [capacity, full, sustained],
      notes: [
        'Kafka is librdkafka\'s mock cluster (one broker, 4 partitions per topic, hosted by kcat) on this machine; the producers are librdkafka too (one kcat -P per partition, acks=all, linger 1 ms). The producers, the mock, the probe and the consumer share the two cores.',
        'Events alternate a view and a like by a new user over 10,000 items; every tick of 10 ms ends with one clock event per partition, whose visibility gives the lag samples (resolution: the 5 ms poll).',
        '"events counted per second" runs from the first send to the last clock seen, so a consumer that keeps up shows the offered rate; the produce rate reached is in the details.',
        'CPU per event (details: cpuUsPerEvent, the consumer process only) is the figure least moved by other load on the machine: the rates are bounded by the CPU the consumer gets.'
      ]
    }
  }
}
