// Suite 3: WebSocket binary stream. The load generator sends prebuilt frames of many +1 increments
// (Zipf keys over 100k ids) over several connections with a bounded number of frames in flight,
// in turn every round to counterd with ack=durable, counterd with ack=applied and the ceiling
// (bench/ws-ceiling-server.ts: uWS on as many threads as counterd has WORKERS, acking every frame
// at once and applying nothing), then redis-benchmark INCR pipelined -P 64 as a second reference.
// After each counterd run every counter of the run's type is read back and must equal what the
// acked frames carried; the ceiling applies nothing, so its check is that every frame was acked.
import { startCounterd, stopCounterd, type Counterd } from '../counterd'
import { CpuMeter } from '../proc-stats'
import { readCounterd } from '../readback'
import { launchRedis, removeDir, type RedisInstance } from '../redis-launcher'
import { compare, target, type BenchContext, type Comparison, type Run, type Suite } from '../suite'
import { serverThreads, startUwsPeer, type UwsPeer } from '../uws-peers'
import { buildStreamTemplates, expectedValues, runWsLoad } from '../ws-load'
import { ZipfKeys } from '../zipf'
import { KEY_SPACE, Pacer, redisIncrRun, ZIPF_S } from './common'

export const WS = {
  connections: Number(process.env.BENCH_WS_CONNECTIONS ?? 4),
  framesInFlight: Number(process.env.BENCH_WS_IN_FLIGHT ?? 8),
  opsPerFrame: Number(process.env.BENCH_WS_OPS_PER_FRAME ?? 1000),
  templates: 128,
  threads: Number(process.env.BENCH_WS_THREADS ?? 1)
}
const REDIS_CONNECTIONS = 50
const REDIS_PIPELINE = 64

export interface StreamTarget {
  urls: string[]
  pids: Record<string, number>
  /** counterd: the run's counters, read back for the per-key check; the ceiling has none */
  readBack?: (type: string) => Promise<Float64Array>
}

export async function streamRun (round: number, t: StreamTarget, type: string, durationMs: number, seed: number): Promise<Run> {
  const templates = buildStreamTemplates({
    count: WS.templates,
    opsPerFrame: WS.opsPerFrame,
    type,
    keys: new ZipfKeys({ n: KEY_SPACE, s: ZIPF_S, seed })
  })
  const meter = new CpuMeter({ ...t.pids, 'load generator': process.pid })
  const r = await runWsLoad({
    url: t.urls[0],
    urls: t.urls,
    connections: WS.connections,
    framesInFlight: WS.framesInFlight,
    frames: templates.frames,
    durationMs,
    threads: WS.threads
  })
  const { usage } = meter.stop()
  const errors = Object.entries(r.errorAcks).map(([k, v]) => `${k} ${v}`).join(', ')
  const clean = r.unanswered === 0 && r.strayAcks === 0 && r.closes.length === 0
  let ackedOps = 0
  let exact: boolean
  let check: string
  if (t.readBack !== undefined) {
    const expected = expectedValues(templates, r.acks, KEY_SPACE)
    const actual = await t.readBack(type)
    let readSum = 0
    let wrongKeys = 0
    for (let id = 0; id < KEY_SPACE; id++) {
      ackedOps += expected[id]
      readSum += actual[id]
      if (expected[id] !== actual[id]) wrongKeys++
    }
    exact = clean && wrongKeys === 0
    check = `acked ops ${ackedOps} ${ackedOps === readSum ? '=' : '≠'} sum read back ${readSum}, ${wrongKeys} keys differ`
    if (errors !== '') check += `; error acks: ${errors} (not applied)`
  } else {
    // Nothing is applied, so nothing can be read back: every frame sent must have its ok ack.
    ackedOps = r.framesAcked * WS.opsPerFrame
    exact = clean && errors === '' && r.framesAcked === r.framesSent
    check = `${r.framesAcked} of ${r.framesSent} frames acked ok (${ackedOps} ops; the ceiling applies nothing, so only the acks are checked)`
    if (errors !== '') check += `; error acks: ${errors}`
  }
  if (!clean) check += `; unanswered ${r.unanswered}, stray acks ${r.strayAcks}, closes ${r.closes.slice(0, 3).join(' | ')}`
  return {
    round,
    value: ackedOps / (r.elapsedMs / 1000),
    p50Ms: r.latency.percentileMs(50),
    p99Ms: r.latency.percentileMs(99),
    exact,
    check,
    cpu: usage,
    details: { frames: r.framesAcked, errorAcks: r.errorAcks, elapsedMs: Math.round(r.elapsedMs), maxMs: r.latency.maxMicros / 1000 }
  }
}

const MODES = ['durable', 'applied'] as const
type Mode = typeof MODES[number]

export const wsStream: Suite = {
  name: 'ws-stream',
  title: 'WebSocket binary stream',
  async run (ctx: BenchContext) {
    const notes: string[] = []
    const threads = serverThreads(ctx)
    const pacer = new Pacer(ctx.durationSec, 200_000, 100_000_000)
    const runs: Record<Mode | 'ceiling' | 'redis', Run[]> = { durable: [], applied: [], ceiling: [], redis: [] }
    const counterds: Partial<Record<Mode, Counterd>> = {}
    let ceiling: UwsPeer | undefined
    let redis: RedisInstance | undefined
    const redisOpts = (requests: number): Parameters<typeof redisIncrRun>[2] =>
      ({ connections: REDIS_CONNECTIONS, requests, pipeline: REDIS_PIPELINE, keyspace: KEY_SPACE, tests: ['incr'] })
    try {
      const targets: Partial<Record<Mode | 'ceiling', StreamTarget>> = {}
      for (const mode of MODES) {
        const c = await startCounterd(ctx, { label: `ws-stream-${mode}`, env: { ACK_MODE: mode, WORKERS: String(threads) } })
        counterds[mode] = c
        targets[mode] = { urls: [`ws://127.0.0.1:${c.port}/v1/stream`], pids: { counterd: c.pid }, readBack: async (type) => await readCounterd(c.port, type, KEY_SPACE) }
      }
      ceiling = await startUwsPeer('ws ceiling', 'ws-ceiling-server', threads)
      targets.ceiling = { urls: ceiling.ports.map(p => `ws://127.0.0.1:${p}/v1/stream`), pids: { 'ws ceiling': ceiling.pid } }
      redis = await launchRedis()
      const order = ['durable', 'applied', 'ceiling'] as const
      // Unmeasured warm-ups (JIT, connections); a counterd warm-up is still checked.
      for (const s of order) {
        const warm = await streamRun(0, targets[s] as StreamTarget, `ws${s[0]}warm`, 1000, 7)
        if (!warm.exact) notes.push(`${s} warm-up not exact: ${warm.check}`)
      }
      pacer.record('redis', (await redisIncrRun(redis, 0, redisOpts(300_000))).value)
      for (let round = 1; round <= ctx.rounds; round++) {
        for (const s of order) {
          const a = await streamRun(round, targets[s] as StreamTarget, `ws${s[0]}${round}`, ctx.durationSec * 1000, 100 + round)
          runs[s].push(a)
          const who = s === 'ceiling' ? 'ceiling          ' : `counterd ack=${s}`.padEnd(17)
          ctx.log(`  round ${round} ${who} ${Math.round(a.value)} incr/s p99 ${a.p99Ms?.toFixed(2) ?? '?'} ms ${a.exact ? 'exact' : 'NOT EXACT: ' + a.check}`)
        }
        const b = await redisIncrRun(redis, round, redisOpts(pacer.amount('redis', 500_000)))
        pacer.record('redis', b.value)
        runs.redis.push(b)
        ctx.log(`  round ${round} redis -P ${REDIS_PIPELINE}       ${Math.round(b.value)} incr/s p99 ${b.p99Ms ?? '?'} ms ${b.exact ? 'exact' : 'NOT EXACT: ' + b.check}`)
      }
    } finally {
      for (const mode of MODES) { const c = counterds[mode]; if (c !== undefined) await stopCounterd(c, notes) }
      await ceiling?.stop()
      await redis?.stop()
      if (redis !== undefined) removeDir(redis.dir)
    }
    const shape = `${WS.connections} connections × ${WS.framesInFlight} frames in flight × ${WS.opsPerFrame} ops/frame, ` +
      `load generator on ${WS.threads} thread(s), Zipf s=${ZIPF_S} over ${KEY_SPACE} ids`
    const subject = (mode: Mode): { system: string, config: string, runs: Run[] } =>
      ({ system: 'counterd', config: `${shape}, ack=${mode}, WORKERS=${threads}`, runs: runs[mode] })
    const ceilingSide = {
      system: 'ws ceiling',
      config: `the same load; uWS on ${threads} thread(s) on one port, every frame decoded and validated whole, then acked at once; nothing applied`,
      runs: runs.ceiling
    }
    const redisSide = { system: 'redis', config: `redis-benchmark -t incr -c ${REDIS_CONNECTIONS} -P ${REDIS_PIPELINE} -r ${KEY_SPACE}`, runs: runs.redis }
    const goal: Record<Mode, number> = { durable: 0.30, applied: 0.50 }
    const comparisons: Comparison[] = [
      ...MODES.map(mode => compare({
        name: `ws-stream-${mode}`,
        label: `WebSocket binary stream, ack=${mode} vs ceiling`,
        unit: 'incr/s',
        higherIsBetter: true,
        subject: subject(mode),
        peer: ceilingSide,
        targets: (s, _p, ratio) => [
          target(`≥ ${goal[mode].toFixed(2)}× ceiling`, ratio, r => r >= goal[mode]),
          target('p99 ack < 25 ms', s.p99Ms?.median, v => v < 25)
        ]
      })),
      ...MODES.map(mode => compare({
        name: `ws-stream-${mode}-redis`,
        label: `WebSocket binary stream, ack=${mode} vs Redis INCR pipelined (reference)`,
        unit: 'incr/s',
        higherIsBetter: true,
        subject: subject(mode),
        peer: redisSide,
        targets: () => []
      }))
    ]
    notes.push('Each round runs counterd ack=durable, counterd ack=applied, the ceiling, then redis-benchmark; the counterd rows appear twice, against the ceiling (the main comparison, with the targets) and against Redis pipelined (a reference).')
    notes.push('The ceiling decodes and validates every frame with counterd\'s own decoder (the work any server of this protocol does) and applies nothing: its check is only that every frame sent got its ok ack (no error ack, no stray ack, none unanswered, no close). counterd\'s runs are checked per key against what the acked frames carried.')
    notes.push('Latency is per frame: from writing the frame to reading its ack. Throughput counts increments in acknowledged frames over the time from the first send to the last ack.')
    notes.push('The load generator and the servers share the same 2 cores; its CPU share is listed with every run.')
    return { comparisons, notes }
  }
}
