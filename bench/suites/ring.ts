// Suite: the ring's forwarding cost. Two counterd nodes with cluster storage (a librdkafka mock
// Kafka hosted by kcat and a redis-server, both started here) form a ring; each owns about half
// of the 64 partitions. Every key of the load is owned by node A (picked through GET /v1/cluster
// and partitionOf), and the same wrk load as the http-wrk suite (64 connections, no pipelining,
// Zipf keys) is sent in turn, every round:
//   1. POST increments (ack=durable) to node A, the owner,
//   2. the same to node B, which forwards every op over its peer link to A and answers once A's
//      group commit is in Kafka,
//   3. GET of loaded values through A,
//   4. the same through B (forwarded to A, the answer relayed back).
// "counterd" in the report (the subject) is the non-owner side, the peer is the owner side, so the
// ratio is what a forwarded request keeps of a direct one. Every increment run is checked exactly
// by reading its counters back through both nodes; every read answer is checked by the wrk
// script. After each run the suite also reads the Kafka records the run appended (records per
// second, bytes and counters per record: the inputs of docs/scaling.md) and asks both nodes that
// the ring did not change meanwhile (same generation, the keys still A's).
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import Redis from 'ioredis'
import { encodeFrame, type Op } from '../../client/frame-codec'
import { partitionOf } from '../../src/core/keys'
import { startCounterd, stopCounterd, type Counterd } from '../counterd'
import { launchKafkaMock, type KafkaMockInstance } from '../kafka-launcher'
import { endOffsets, readLogRange, type LogRange } from '../kafka-records'
import { CpuMeter } from '../proc-stats'
import { readCounterd } from '../readback'
import { launchRedis, removeDir, type RedisInstance } from '../redis-launcher'
import { compare, target, type BenchContext, type Run, type Suite } from '../suite'
import { serverThreads } from '../uws-peers'
import { assertWrkInstalled, incrementCheck, readCheck, runWrk, writeExpectedFile, writeIdsFile, type WrkOptions } from '../wrk'
import { pushFrames } from '../ws-load'
import { ZipfKeys } from '../zipf'
import { CONNECTIONS, ZIPF_S } from './common'

/** counterd's default PARTITIONS, which the suite does not change */
export const RING_PARTITIONS = 64
/** distinct keys of the load, all owned by node A */
export const RING_KEYS = 10_000
/** the key type of the read runs */
const READ_TYPE = 'rgr'
const valueOf = (id: number): number => (id % 997) + 1
const TARGET_TEXT = 'through a non-owner ≥ 0.5× through the owner'

export interface RingMember { id: string, url: string, partitions: number[] }
export interface RingView { cluster: string | null, generation: number, self: string, members: RingMember[] }

/**
 * The first `count` ids (0, 1, 2, … in order) whose key `${type}:${id}` falls in one of the
 * `owned` partitions: the keys of a load that one node owns entirely.
 */
export function pickOwnedIds (type: string, owned: Iterable<number>, count: number, partitions = RING_PARTITIONS): number[] {
  const set = new Set(owned)
  for (const p of set) {
    if (!Number.isInteger(p) || p < 0 || p >= partitions) throw new RangeError(`partition ${String(p)} is not in 0..${partitions - 1}`)
  }
  if (set.size === 0) throw new RangeError('the owner owns no partition: no key can be picked')
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${String(count)}`)
  const ids: number[] = []
  for (let id = 0; ids.length < count; id++) {
    if (set.has(partitionOf(`${type}:${id}`, partitions))) ids.push(id)
  }
  return ids
}

/**
 * Whether every node sees the same settled ring: a view from each, one generation, exactly
 * `urls` as members, every partition owned by exactly one of them. Returns what is wrong, or ''.
 */
export function ringProblem (views: ReadonlyArray<RingView | null>, urls: readonly string[], partitions = RING_PARTITIONS): string {
  if (views.length === 0 || views.some((v) => v === null)) return 'a node has no view of the ring yet'
  const vs = views as RingView[]
  const generation = vs[0].generation
  if (vs.some((v) => v.generation !== generation)) return `the nodes see generations ${vs.map((v) => v.generation).join(', ')}`
  const want = [...urls].sort().join(' ')
  for (const v of vs) {
    const members = v.members.map((m) => m.url).sort().join(' ')
    if (members !== want) return `generation ${v.generation} lists ${members}, expected ${want}`
  }
  const owners = new Array<number>(partitions).fill(0)
  for (const m of vs[0].members) {
    for (const p of m.partitions) {
      if (p < 0 || p >= partitions) return `${m.url} owns partition ${p}, outside 0..${partitions - 1}`
      owners[p]++
    }
  }
  const bad = owners.findIndex((n) => n !== 1)
  if (bad >= 0) return `partition ${bad} has ${owners[bad]} owners`
  return ''
}

async function viewOf (port: number): Promise<RingView | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/v1/cluster`)
    return r.status === 200 ? await r.json() as RingView : null
  } catch {
    return null
  }
}

async function readyOf (port: number): Promise<number> {
  return await fetch(`http://127.0.0.1:${port}/ready`).then(async (r) => { await r.arrayBuffer(); return r.status }, () => 0)
}

/** Waits until every node is ready and all see the same ring of exactly these nodes. */
export async function waitForRing (nodes: Counterd[], timeoutMs = 90_000): Promise<RingView> {
  const urls = nodes.map((n) => `http://127.0.0.1:${n.port}`)
  const deadline = Date.now() + timeoutMs
  let last = ''
  for (;;) {
    const views = await Promise.all(nodes.map(async (n) => await viewOf(n.port)))
    const ready = await Promise.all(nodes.map(async (n) => await readyOf(n.port)))
    last = ringProblem(views, urls)
    if (last === '' && !ready.every((s) => s === 200)) last = `/ready answers ${ready.join(', ')}`
    if (last === '') return views[0] as RingView
    if (Date.now() > deadline) throw new Error(`the ${nodes.length} nodes did not form a ring within ${timeoutMs} ms: ${last}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

type Side = 'owner' | 'forwarded'
type Mode = 'increment' | 'get'
const RUNS: Array<{ side: Side, mode: Mode }> = [
  { side: 'owner', mode: 'increment' },
  { side: 'forwarded', mode: 'increment' },
  { side: 'owner', mode: 'get' },
  { side: 'forwarded', mode: 'get' }
]
const LABEL: Record<Side, Record<Mode, string>> = {
  owner: { increment: 'POST to A (owner)', get: 'GET from A (owner)' },
  forwarded: { increment: 'POST to B (forwarded)', get: 'GET from B (forwarded)' }
}

interface Ring {
  a: Counterd
  b: Counterd
  kafka: KafkaMockInstance
  redis: RedisInstance
  /** one connection for INFO, so reading the counter adds one command per reading */
  redisClient: Redis
  topic: string
  view: RingView
  /** partitions node A owns */
  owned: number[]
  dir: string
  /** Zipf picks of indexes into an id list (the same sequence for every type) */
  zipf: Uint32Array
}

/** ids file for `type`: the Zipf sequence mapped onto the ids A owns for that type. */
function idsFileFor (ring: Ring, type: string): { file: string, ids: number[] } {
  const ids = pickOwnedIds(type, ring.owned, RING_KEYS)
  const file = path.join(ring.dir, `ids-${type}`)
  writeIdsFile(file, Array.from(ring.zipf, (i) => ids[i]))
  return { file, ids }
}

/** Commands Redis has processed (INFO is counted once it has run: the next reading includes it). */
async function redisCommands (client: Redis): Promise<number> {
  return Number(/total_commands_processed:(\d+)/.exec(await client.info('stats'))?.[1] ?? NaN)
}

/** Sums of a node's group-commit metrics (over every shard and label set). */
async function commitMetrics (port: number): Promise<{ commits: number, seconds: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  const sum = (name: string): number => {
    let n = 0
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) n += Number(m[1])
    return n
  }
  return { commits: sum('counterd_commits_total'), seconds: sum('counterd_commit_duration_seconds_sum') }
}

/** The ring must still be the one measured: same generation, the keys still on A. */
async function assertRingUnchanged (ring: Ring): Promise<void> {
  const views = await Promise.all([ring.a, ring.b].map(async (n) => await viewOf(n.port)))
  const aUrl = `http://127.0.0.1:${ring.a.port}`
  for (const v of views) {
    const owned = v?.members.find((m) => m.url === aUrl)?.partitions ?? []
    if (v === null || v.generation !== ring.view.generation || ring.owned.some((p) => !owned.includes(p))) {
      throw new Error(`the ring changed during the run (generation ${ring.view.generation} → ${v?.generation ?? 'no view'}): ` +
        'the keys are no longer all on A, so the runs are not comparable')
    }
  }
}

async function loadReadValues (ring: Ring, ids: number[]): Promise<void> {
  const perFrame = 1000
  const r = await pushFrames({
    url: `ws://127.0.0.1:${ring.a.port}/v1/stream`,
    connections: 2,
    framesInFlight: 4,
    count: Math.ceil(ids.length / perFrame),
    payload: (i) => {
      const ops: Op[] = ids.slice(i * perFrame, (i + 1) * perFrame).map((id) => [READ_TYPE, String(id), valueOf(id)] as const)
      return encodeFrame(0, ops)
    }
  })
  if (Object.keys(r.refused).length > 0) throw new Error(`loading read values: frames refused ${JSON.stringify(r.refused)}`)
  for (const node of [ring.a, ring.b]) {
    const values = await readCounterd(node.port, READ_TYPE, ids.length, (i) => String(ids[i]))
    for (let i = 0; i < ids.length; i++) {
      if (values[i] !== valueOf(ids[i])) throw new Error(`loaded ${READ_TYPE}:${ids[i]} reads ${values[i]} through port ${node.port}, expected ${valueOf(ids[i])}`)
    }
  }
}

async function sumThrough (port: number, type: string, ids: number[]): Promise<number> {
  const values = await readCounterd(port, type, ids.length, (i) => String(ids[i]))
  let sum = 0
  for (let i = 0; i < values.length; i++) sum += values[i]
  return sum
}

function logFigures (log: LogRange, seconds: number): Record<string, number> {
  const per = (x: number, n: number): number => n > 0 ? Math.round(x / n * 100) / 100 : NaN
  return {
    kafkaRecords: log.records,
    kafkaRecordsPerSec: Math.round(log.records / seconds),
    kafkaValueBytesPerSec: log.read > 0 ? Math.round(log.valueBytes / log.read * log.records / seconds) : NaN,
    bytesPerRecord: per(log.valueBytes, log.read),
    maxBytesPerRecord: log.maxValueBytes,
    countersPerRecord: per(log.keys, log.read),
    incrementsPerRecord: per(log.increments, log.read),
    recordsReadBack: log.read
  }
}

async function ringRun (ctx: BenchContext, ring: Ring, round: number, side: Side, mode: Mode, o: WrkOptions, ids: number[]): Promise<Run> {
  const pids = { 'node A (owner)': ring.a.pid, 'node B (non-owner)': ring.b.pid, 'Kafka mock': ring.kafka.pid, redis: ring.redis.pid }
  const before = mode === 'increment' ? await endOffsets(ring.kafka.brokers, ring.topic) : null
  const commitsBefore = await commitMetrics(ring.a.port)
  const redisBefore = await redisCommands(ring.redisClient)
  const meter = new CpuMeter(pids)
  const r = await runWrk(o)
  // wrk has exited by now: its CPU is in this process' reaped-children time.
  const { usage, reapedChildren } = meter.stop()
  const redisDuring = await redisCommands(ring.redisClient) - redisBefore - 1
  const commitsAfter = await commitMetrics(ring.a.port)
  const commits = commitsAfter.commits - commitsBefore.commits
  const commitFigures = {
    ownerCommitsPerSec: Math.round(commits / r.durationSec),
    ownerCommitMeanMs: commits > 0 ? Math.round((commitsAfter.seconds - commitsBefore.seconds) / commits * 1e5) / 100 : NaN
  }
  let exact: boolean
  let check: string
  let log: Record<string, number> = {}
  if (mode === 'increment') {
    // Read back through both nodes: the owner's counters, and the same ones forwarded.
    const [viaA, viaB] = [await sumThrough(ring.a.port, o.type, ids), await sumThrough(ring.b.port, o.type, ids)]
    const c = incrementCheck(r, viaA)
    exact = c.exact && viaA === viaB
    check = `${c.check}; read back through A ${viaA}, through B ${viaB}${viaA === viaB ? '' : ' (DIFFERENT)'}`
    const after = await endOffsets(ring.kafka.brokers, ring.topic)
    log = logFigures(await readLogRange(ring.kafka.brokers, ring.topic, before as Map<number, number>, after), r.durationSec)
  } else {
    ({ exact, check } = readCheck(r))
  }
  await assertRingUnchanged(ring)
  const run: Run = {
    round,
    value: r.okPerSec,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    exact,
    check,
    cpu: { ...usage, wrk: reapedChildren },
    details: {
      ok2xx: r.ok2xx,
      answers: r.requests,
      durationSec: r.durationSec,
      p75Ms: r.p75Ms,
      p90Ms: r.p90Ms,
      redisCommandsPerSec: Math.round(redisDuring / r.durationSec),
      ...(mode === 'increment' ? commitFigures : {}),
      ...log,
      command: r.command
    }
  }
  const kafka = mode === 'increment'
    ? `; A's group commits ${commitFigures.ownerCommitsPerSec}/s, ${commitFigures.ownerCommitMeanMs} ms each; Kafka ${log.kafkaRecordsPerSec} records/s, ` +
      `${log.bytesPerRecord} B, ${log.countersPerRecord} counters, ${log.incrementsPerRecord} increments per record`
    : ''
  ctx.log(`  round ${round} ${LABEL[side][mode].padEnd(22)} ${Math.round(run.value)} req/s p50 ${r.p50Ms.toFixed(2)} ms p99 ${r.p99Ms.toFixed(2)} ms ` +
    `${exact ? 'exact' : 'NOT EXACT: ' + check}${kafka}`)
  return run
}

export const ring: Suite = {
  name: 'ring',
  title: 'Ring of two nodes: requests through a non-owner (forwarded) vs through the owner',
  async run (ctx: BenchContext) {
    assertWrkInstalled()
    const notes: string[] = []
    const threads = serverThreads(ctx)
    const wrkThreads = Number(process.env.BENCH_WRK_THREADS ?? Math.max(2, threads))
    if (!Number.isInteger(wrkThreads) || wrkThreads < 1) throw new RangeError(`BENCH_WRK_THREADS must be a positive integer, got ${String(process.env.BENCH_WRK_THREADS)}`)
    const dir = ctx.tempDir('ring')
    const runs: Record<Side, Record<Mode, Run[]>> = { owner: { increment: [], get: [] }, forwarded: { increment: [], get: [] } }
    const nodes: Counterd[] = []
    let kafka: KafkaMockInstance | undefined
    let redis: RedisInstance | undefined
    let redisClient: Redis | undefined
    let view: RingView | undefined
    let owned: number[] = []
    const t0 = Date.now()
    try {
      kafka = await launchKafkaMock(1)
      redis = await launchRedis()
      const suffix = randomBytes(3).toString('hex')
      const topic = `bench-ring-deltas-${suffix}`
      const env = {
        WORKERS: String(threads),
        ACK_MODE: 'durable',
        KAFKA_BROKERS: kafka.brokers.join(','),
        KAFKA_TOPIC: topic,
        REDIS_URL: redis.url,
        CLUSTER_NAME: `bench-ring-${suffix}`
      }
      // Both at once, so they join the mock's fresh group in its first 3 s window (a later join
      // waits for a rebalance).
      const started = await Promise.allSettled(['a', 'b'].map(async (n) => await startCounterd(ctx, { label: `ring-${n}`, env })))
      for (const s of started) if (s.status === 'fulfilled') nodes.push(s.value)
      for (const s of started) if (s.status === 'rejected') throw s.reason
      view = await waitForRing(nodes)
      const [a, b] = nodes
      owned = view.members.find((m) => m.url === `http://127.0.0.1:${a.port}`)?.partitions ?? []
      ctx.log(`  ring generation ${view.generation} after ${((Date.now() - t0) / 1000).toFixed(1)} s: A owns ${owned.length} partitions, B ${RING_PARTITIONS - owned.length}`)
      redisClient = new Redis(redis.url)
      const r: Ring = { a, b, kafka, redis, redisClient, topic, view, owned, dir, zipf: new ZipfKeys({ n: RING_KEYS, s: ZIPF_S, seed: 42 }).table(200_000) }

      const reads = idsFileFor(r, READ_TYPE)
      await loadReadValues(r, reads.ids)
      const expected = path.join(dir, 'expected')
      writeExpectedFile(expected, reads.ids.map((id): [string, number] => [String(id), valueOf(id)]))
      const options = (side: Side, mode: Mode, type: string, file: string, seconds: number): WrkOptions => ({
        ports: [side === 'owner' ? a.port : b.port],
        threads: wrkThreads,
        connections: CONNECTIONS,
        durationSec: seconds,
        mode,
        type: mode === 'get' ? READ_TYPE : type,
        idsFile: mode === 'get' ? reads.file : file,
        ...(mode === 'get' ? { expectedFile: expected } : {})
      })
      // An unmeasured second of each (JIT, peer links, connections); counts are not checked.
      const warm = idsFileFor(r, 'rgwarm')
      for (const { side, mode } of RUNS) {
        const w = await runWrk(options(side, mode, 'rgwarm', warm.file, 1))
        if (w.other > 0 || w.mismatches > 0) notes.push(`warm-up of ${LABEL[side][mode]}: ${w.other} non-2xx answers, ${w.mismatches} wrong values`)
      }
      await assertRingUnchanged(r)
      for (let round = 1; round <= ctx.rounds; round++) {
        for (const { side, mode } of RUNS) {
          const type = `rg${round}${side === 'owner' ? 'o' : 'f'}`
          const { file, ids } = mode === 'increment' ? idsFileFor(r, type) : reads
          runs[side][mode].push(await ringRun(ctx, r, round, side, mode, options(side, mode, type, file, ctx.durationSec), ids))
        }
      }
    } finally {
      redisClient?.disconnect()
      for (const n of nodes) await stopCounterd(n, notes)
      await redis?.stop()
      if (redis !== undefined) removeDir(redis.dir)
      await kafka?.stop()
    }

    const seconds = Math.max(1, Math.round(ctx.durationSec))
    const load = (what: string): string => `wrk -t ${wrkThreads} -c ${CONNECTIONS} -d ${seconds}s --latency, ${what}, Zipf s=${ZIPF_S} over ${RING_KEYS} keys all owned by node A`
    const post = 'POST …/increment {"by":1}, ack=durable'
    const get = 'GET /v1/counter/{type}/{id}, every answer\'s value checked by the wrk script'
    notes.push(`Two counterd nodes (WORKERS=${threads} each, ACK_MODE=durable) with cluster storage: a librdkafka mock Kafka (kcat, 1 broker; the delta topic auto-created with 4 partitions) and one redis-server, all started by the suite. ` +
      `Node A owned ${owned.length} of the ${RING_PARTITIONS} partitions, B the other ${RING_PARTITIONS - owned.length}; each run's ${RING_KEYS} keys were the first ids of its type whose partitionOf(key, ${RING_PARTITIONS}) A owns (picked from GET /v1/cluster), so every op sent to B crossed a peer link to A and back.`)
    notes.push(`Each round runs, in this order: ${RUNS.map((x) => LABEL[x.side][x.mode]).join(', ')}; every run ${seconds} s of wrk after an unmeasured 1 s warm-up of each. Increment runs use a fresh type each; after each run the counters are read back through both nodes (POST /v1/counters/query), which must agree and satisfy 2xx ≤ sum ≤ 2xx + ${CONNECTIONS} connections, and both nodes must still see the ring generation the run started with.`)
    notes.push('Everything shares the 2 cores: wrk, both nodes (each with its shard threads), the Kafka mock and Redis. A request through B costs CPU on both nodes, so on this machine the forwarded side also competes with the owner for the same cores; on separate machines the owner\'s capacity would not be shared with the forwarder.')
    notes.push('Through the owner, a request that lands on a shard other than its partition\'s still crosses the node\'s shared-memory ring to the owning shard (half of them with 2 shards): the owner side is a single node as deployed, not a zero-hop ideal.')
    notes.push('Increment runs\' details list the Kafka records the run appended (read back with kcat and decoded): records/s, value bytes per record (without Kafka\'s batch/message headers), counters and increments per record; and Redis commands/s during the run (checkpoints every CHECKPOINT_INTERVAL_MS, default 30 s, so a 10 s run sees at most one per partition).')
    const med = (xs: Run[], k: string): string => {
      const v = xs.map((x) => x.details?.[k]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
      return v.length === 0 ? '–' : String(v[v.length >> 1])
    }
    for (const side of ['owner', 'forwarded'] as const) {
      const xs = runs[side].increment
      if (xs.length === 0) continue
      notes.push(`Increments ${side === 'owner' ? 'through A' : 'through B'} (median over rounds): A made ${med(xs, 'ownerCommitsPerSec')} group commits/s (${med(xs, 'ownerCommitMeanMs')} ms each: one Kafka produce per shard in flight at a time) and appended ` +
        `${med(xs, 'kafkaRecordsPerSec')} Kafka records/s = ${med(xs, 'kafkaValueBytesPerSec')} B/s of record values; a record held ${med(xs, 'bytesPerRecord')} B (max ${med(xs, 'maxBytesPerRecord')}), ` +
        `${med(xs, 'countersPerRecord')} counters and ${med(xs, 'incrementsPerRecord')} increments; Redis ${med(xs, 'redisCommandsPerSec')} commands/s.`)
    }
    if (view !== undefined) notes.push(`Ring generation ${view.generation}, unchanged during every run.`)
    const comparisons = [
      compare({
        name: 'ring-post',
        label: 'Ring of 2: HTTP increments (ack=durable) through the non-owner vs the owner',
        unit: 'req/s',
        higherIsBetter: true,
        subject: { system: 'through B (non-owner, forwarded)', config: `${load(post)}; sent to node B, which forwards each op to A over a peer link`, runs: runs.forwarded.increment },
        peer: { system: 'through A (owner)', config: `${load(post)}; sent to node A`, runs: runs.owner.increment },
        targets: (_s, _p, ratio) => [target(TARGET_TEXT, ratio, (x) => x >= 0.5)]
      }),
      compare({
        name: 'ring-get',
        label: 'Ring of 2: HTTP reads through the non-owner vs the owner',
        unit: 'req/s',
        higherIsBetter: true,
        subject: { system: 'through B (non-owner, forwarded)', config: `${load(get)}; sent to node B, which asks A over a peer link`, runs: runs.forwarded.get },
        peer: { system: 'through A (owner)', config: `${load(get)}; sent to node A`, runs: runs.owner.get },
        targets: (_s, _p, ratio) => [target(TARGET_TEXT, ratio, (x) => x >= 0.5)]
      })
    ]
    return { comparisons, notes }
  }
}
