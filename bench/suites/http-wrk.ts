// Suite 7: HTTP through wrk. The same wrk load (64 connections, no pipelining, Zipf keys over 100k
// ids, a fixed duration) drives, in turn every round: counterd POST with ack=durable, counterd
// POST with ack=applied, the bare uWS peer POST, counterd GET, the bare peer GET, and the naive
// node:http + ioredis server POST. The bare peer (bench/bare-uws-server.ts) is counterd's routes
// on uWS with an in-memory Map and nothing else, on as many threads as counterd has WORKERS: the
// ceiling of an HTTP counter service on this machine, so counterd ÷ bare is the share of it that
// counterd keeps. wrk needs a few µs of CPU per request where autocannon needs about 100, so the
// servers, not the load generator, set these figures.
import http from 'node:http'
import path from 'node:path'
import { startCounterd, stopCounterd, type Counterd } from '../counterd'
import { startNodeService, type NodeService } from '../node-service'
import { CpuMeter } from '../proc-stats'
import { postJson, readCounterd } from '../readback'
import { launchRedis, removeDir, type RedisInstance } from '../redis-launcher'
import { compare, target, type BenchContext, type Comparison, type Run, type Suite } from '../suite'
import { serverThreads, startUwsPeer, type UwsPeer } from '../uws-peers'
import { assertWrkInstalled, incrementCheck, readCheck, runWrk, writeExpectedFile, writeIdsFile, type WrkOptions } from '../wrk'
import { CONNECTIONS, KEY_SPACE, sumCounterdType, sumRedisType, ZIPF_S, zipfIds } from './common'
import { loadCounterd, TYPE as READ_TYPE, valueOf } from './http-reads'

/** The six runs of a round, in the order they alternate. */
const SYSTEMS = ['durable', 'applied', 'bare', 'counterd-get', 'bare-get', 'naive'] as const
type System = typeof SYSTEMS[number]

const LABELS: Record<System, string> = {
  durable: 'counterd ack=durable POST',
  applied: 'counterd ack=applied POST',
  bare: 'bare uWS POST',
  'counterd-get': 'counterd GET',
  'bare-get': 'bare uWS GET',
  naive: 'naive server POST'
}

export interface Files { postIds: string, getIds: string, expected: string }

export interface WrkTarget {
  ports: number[]
  mode: 'increment' | 'get'
  pids: Record<string, number>
  /** sum of a type's 100k counters, for the increments check */
  readSum?: (type: string) => Promise<number>
}

/** The bare peer's values to read: /v1/bench/load copies them into every thread; then read back. */
async function loadBare (port: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  try {
    for (let from = 0; from < KEY_SPACE; from += 1000) {
      const values: Record<string, number> = {}
      for (let id = from; id < Math.min(KEY_SPACE, from + 1000); id++) values[`${READ_TYPE}:${id}`] = valueOf(id)
      const { status, json } = await postJson(agent, port, '/v1/bench/load', { values })
      if (status !== 200) throw new Error(`bare peer /v1/bench/load answered ${status}: ${JSON.stringify(json).slice(0, 300)}`)
    }
  } finally {
    agent.destroy()
  }
  const read = await readCounterd(port, READ_TYPE, KEY_SPACE)
  for (let id = 0; id < KEY_SPACE; id++) {
    if (read[id] !== valueOf(id)) throw new Error(`bare peer: loaded ${READ_TYPE}:${id} reads ${read[id]}, expected ${valueOf(id)}`)
  }
}

export function wrkOptions (t: WrkTarget, files: Files, threads: number, durationSec: number, type: string): WrkOptions {
  return {
    ports: t.ports,
    threads,
    connections: CONNECTIONS,
    durationSec,
    mode: t.mode,
    type: t.mode === 'get' ? READ_TYPE : type,
    idsFile: t.mode === 'get' ? files.getIds : files.postIds,
    ...(t.mode === 'get' ? { expectedFile: files.expected } : {})
  }
}

export async function wrkRun (round: number, t: WrkTarget, o: WrkOptions): Promise<Run> {
  const meter = new CpuMeter(t.pids)
  const r = await runWrk(o)
  // wrk has exited by now: its CPU is in this process' reaped-children time.
  const { usage, reapedChildren } = meter.stop()
  const { exact, check } = t.mode === 'increment'
    ? incrementCheck(r, await (t.readSum as (type: string) => Promise<number>)(o.type))
    : readCheck(r)
  return {
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
      wrkRequestsPerSec: r.rps,
      p75Ms: r.p75Ms,
      p90Ms: r.p90Ms,
      perThread2xx: r.threads?.map(x => x.ok2xx),
      command: r.command
    }
  }
}

export const httpWrk: Suite = {
  name: 'http-wrk',
  title: 'HTTP through wrk, next to a bare uWS peer',
  async run (ctx: BenchContext) {
    assertWrkInstalled()
    const notes: string[] = []
    const threads = serverThreads(ctx)
    // Default: at least one wrk thread per server port, so every bare peer thread gets connections.
    const wrkThreads = Number(process.env.BENCH_WRK_THREADS ?? Math.max(2, threads))
    if (!Number.isInteger(wrkThreads) || wrkThreads < 1) throw new RangeError(`BENCH_WRK_THREADS must be a positive integer, got ${String(process.env.BENCH_WRK_THREADS)}`)
    const dir = ctx.tempDir('http-wrk')
    const files: Files = { postIds: path.join(dir, 'post-ids'), getIds: path.join(dir, 'get-ids'), expected: path.join(dir, 'expected') }
    writeIdsFile(files.postIds, zipfIds(200_000))
    writeIdsFile(files.getIds, zipfIds(200_000, 43))
    writeExpectedFile(files.expected, Array.from({ length: KEY_SPACE }, (_, id): [string, number] => [String(id), valueOf(id)]))

    const runs = Object.fromEntries(SYSTEMS.map(s => [s, [] as Run[]])) as Record<System, Run[]>
    const counterds: Counterd[] = []
    let bare: UwsPeer | undefined
    let naive: NodeService | undefined
    let redis: RedisInstance | undefined
    try {
      const env = { WORKERS: String(threads) }
      const durable = await startCounterd(ctx, { label: 'http-wrk-durable', env: { ...env, ACK_MODE: 'durable' } })
      counterds.push(durable)
      const applied = await startCounterd(ctx, { label: 'http-wrk-applied', env: { ...env, ACK_MODE: 'applied' } })
      counterds.push(applied)
      bare = await startUwsPeer('bare uWS peer', 'bare-uws-server', threads)
      redis = await launchRedis()
      naive = await startNodeService({ name: 'naive baseline', script: path.join(__dirname, '..', 'naive-server.js'), env: { PORT: '0', REDIS_URL: redis.url } })
      const redisUrl = redis.url
      const counterdSum = (c: Counterd) => async (type: string) => await sumCounterdType(c.port, type)
      const targets: Record<System, WrkTarget> = {
        durable: { ports: [durable.port], mode: 'increment', pids: { counterd: durable.pid }, readSum: counterdSum(durable) },
        applied: { ports: [applied.port], mode: 'increment', pids: { counterd: applied.pid }, readSum: counterdSum(applied) },
        bare: { ports: bare.ports, mode: 'increment', pids: { 'bare uWS': bare.pid }, readSum: async (type) => await sumCounterdType((bare as UwsPeer).port, type) },
        'counterd-get': { ports: [durable.port], mode: 'get', pids: { counterd: durable.pid } },
        'bare-get': { ports: bare.ports, mode: 'get', pids: { 'bare uWS': bare.pid } },
        naive: { ports: [naive.port], mode: 'increment', pids: { 'naive server': naive.pid, redis: redis.pid }, readSum: async (type) => await sumRedisType(redisUrl, type) }
      }
      await loadCounterd(durable.port)
      await loadBare(bare.port)
      // An unmeasured second of each (JIT, connections, caches); counts are not checked.
      for (const s of SYSTEMS) {
        const w = await runWrk(wrkOptions(targets[s], files, wrkThreads, 1, 'hwwarm'))
        if (w.other > 0 || w.mismatches > 0) notes.push(`warm-up of ${LABELS[s]}: ${w.other} non-2xx answers, ${w.mismatches} wrong values`)
      }
      for (let round = 1; round <= ctx.rounds; round++) {
        for (const s of SYSTEMS) {
          const r = await wrkRun(round, targets[s], wrkOptions(targets[s], files, wrkThreads, ctx.durationSec, `hw${round}${s[0]}`))
          runs[s].push(r)
          ctx.log(`  round ${round} ${LABELS[s].padEnd(25)} ${Math.round(r.value)} req/s p50 ${r.p50Ms?.toFixed(2) ?? '?'} ms p99 ${r.p99Ms?.toFixed(2) ?? '?'} ms ${r.exact ? 'exact' : 'NOT EXACT: ' + r.check}`)
        }
      }
    } finally {
      for (const c of counterds) await stopCounterd(c, notes)
      await bare?.stop()
      await naive?.stop()
      await redis?.stop()
      if (redis !== undefined) removeDir(redis.dir)
    }

    const load = (what: string): string => `wrk -t ${wrkThreads} -c ${CONNECTIONS} -d ${Math.max(1, Math.round(ctx.durationSec))}s --latency, ${what}, Zipf s=${ZIPF_S} over ${KEY_SPACE} ids`
    const post = 'POST …/increment {"by":1}'
    const bareConfig = (what: string): string => `${load(what)}; ${threads} uWS thread(s) on one port (SO_REUSEPORT), counts in a Map per thread, no durability`
    notes.push(`Each round runs, in this order: ${SYSTEMS.map(s => LABELS[s]).join(', ')}; every run ${Math.max(1, Math.round(ctx.durationSec))} s of wrk after an unmeasured 1 s warm-up of each. counterd runs with WORKERS=${threads}, the bare peer on ${threads} thread(s).`)
    notes.push(`wrk stops mid-flight: requests written but not yet answered are abandoned, yet the server may apply them. With one request in flight per connection, an increment run is exact when 2xx ≤ sum read back ≤ 2xx + ${CONNECTIONS} connections, with no non-2xx answer and no socket error; the wrk script counts 2xx answers per thread and its total must equal wrk's. Reads: the script compares every answer's value with the loaded one.`)
    notes.push('The bare peer\'s threads share one port as counterd\'s shards do (the kernel spreads connections); its increments are counted per thread and summed by its batch query when read back (bench/bare-uws-server.ts).')
    notes.push('wrk shares the 2 cores with the server it drives; its CPU is listed with every run.')
    const comparisons: Comparison[] = [
      compare({
        name: 'http-wrk-durable',
        label: 'HTTP increments via wrk, ack=durable vs bare uWS',
        unit: 'req/s',
        higherIsBetter: true,
        subject: { system: 'counterd', config: `${load(post)}, ack=durable`, runs: runs.durable },
        peer: { system: 'bare uWS', config: bareConfig(post), runs: runs.bare },
        targets: (s, _p, ratio) => [target('≥ 0.75× bare uWS', ratio, r => r >= 0.75), target('p99 < 10 ms', s.p99Ms?.median, v => v < 10)]
      }),
      compare({
        name: 'http-wrk-applied',
        label: 'HTTP increments via wrk, ack=applied vs bare uWS',
        unit: 'req/s',
        higherIsBetter: true,
        subject: { system: 'counterd', config: `${load(post)}, ack=applied`, runs: runs.applied },
        peer: { system: 'bare uWS', config: bareConfig(post), runs: runs.bare },
        targets: (s) => [target('p99 < 10 ms', s.p99Ms?.median, v => v < 10)]
      }),
      compare({
        name: 'http-wrk-get',
        label: 'HTTP reads via wrk vs bare uWS',
        unit: 'req/s',
        higherIsBetter: true,
        subject: { system: 'counterd', config: `${load('GET /v1/counter/{type}/{id}')}; every answer's value checked by the wrk script`, runs: runs['counterd-get'] },
        peer: { system: 'bare uWS', config: bareConfig('GET /v1/counter/{type}/{id}, values loaded into every thread'), runs: runs['bare-get'] },
        targets: (s, _p, ratio) => [target('≥ 0.85× bare uWS', ratio, r => r >= 0.85), target('p99 < 5 ms', s.p99Ms?.median, v => v < 5)]
      }),
      compare({
        name: 'http-wrk-naive',
        label: 'HTTP increments via wrk, ack=durable vs naive node:http + ioredis',
        unit: 'req/s',
        higherIsBetter: true,
        subject: { system: 'counterd', config: `${load(post)}, ack=durable (the same runs as the first row)`, runs: runs.durable },
        peer: { system: 'naive server', config: `${load(post)}; one INCRBY per request through ioredis`, runs: runs.naive },
        targets: (_s, _p, ratio) => [target('≥ 3× naive', ratio, r => r >= 3)]
      })
    ]
    return { comparisons, notes }
  }
}
