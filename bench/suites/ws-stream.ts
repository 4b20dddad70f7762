// Suite 3: WebSocket binary stream, in ack=durable and ack=applied. The load generator sends
// prebuilt frames of many +1 increments (Zipf keys over 100k ids) over several connections with
// a bounded number of frames in flight; after each run every counter of the run's type is read
// back and must equal what the acked frames carried. Peer: redis-benchmark INCR pipelined -P 64.
import { startCounterd, stopCounterd } from '../counterd'
import { CpuMeter } from '../proc-stats'
import { readCounterd } from '../readback'
import { launchRedis, removeDir } from '../redis-launcher'
import { compare, target, type BenchContext, type Comparison, type Run, type Suite } from '../suite'
import { buildStreamTemplates, expectedValues, runWsLoad } from '../ws-load'
import { ZipfKeys } from '../zipf'
import { KEY_SPACE, Pacer, redisIncrRun, ZIPF_S } from './common'

export const WS = {
  connections: Number(process.env.BENCH_WS_CONNECTIONS ?? 4),
  framesInFlight: Number(process.env.BENCH_WS_IN_FLIGHT ?? 4),
  opsPerFrame: Number(process.env.BENCH_WS_OPS_PER_FRAME ?? 1000),
  templates: 128,
  threads: Number(process.env.BENCH_WS_THREADS ?? 1)
}
const REDIS_CONNECTIONS = 50
const REDIS_PIPELINE = 64

async function streamRun (round: number, port: number, pid: number, type: string, durationMs: number, seed: number): Promise<Run> {
  const templates = buildStreamTemplates({
    count: WS.templates,
    opsPerFrame: WS.opsPerFrame,
    type,
    keys: new ZipfKeys({ n: KEY_SPACE, s: ZIPF_S, seed })
  })
  const meter = new CpuMeter({ counterd: pid, 'load generator': process.pid })
  const r = await runWsLoad({
    url: `ws://127.0.0.1:${port}/v1/stream`,
    connections: WS.connections,
    framesInFlight: WS.framesInFlight,
    frames: templates.frames,
    durationMs,
    threads: WS.threads
  })
  const { usage } = meter.stop()
  const expected = expectedValues(templates, r.acks, KEY_SPACE)
  const actual = await readCounterd(port, type, KEY_SPACE)
  let ackedOps = 0
  let readSum = 0
  let wrongKeys = 0
  for (let id = 0; id < KEY_SPACE; id++) {
    ackedOps += expected[id]
    readSum += actual[id]
    if (expected[id] !== actual[id]) wrongKeys++
  }
  const errors = Object.entries(r.errorAcks).map(([k, v]) => `${k} ${v}`).join(', ')
  const clean = r.unanswered === 0 && r.strayAcks === 0 && r.closes.length === 0
  const exact = clean && wrongKeys === 0
  let check = `acked ops ${ackedOps} ${ackedOps === readSum ? '=' : '≠'} sum read back ${readSum}, ${wrongKeys} keys differ`
  if (errors !== '') check += `; error acks: ${errors} (not applied)`
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

async function runMode (ctx: BenchContext, mode: 'durable' | 'applied', notes: string[]): Promise<Comparison> {
  const pacer = new Pacer(ctx.durationSec, 200_000, 100_000_000)
  const redis = await launchRedis()
  const counterd = await startCounterd(ctx, { label: `ws-stream-${mode}`, env: { ACK_MODE: mode } })
  const subjectRuns: Run[] = []
  const peerRuns: Run[] = []
  const redisOpts = (requests: number): Parameters<typeof redisIncrRun>[2] =>
    ({ connections: REDIS_CONNECTIONS, requests, pipeline: REDIS_PIPELINE, keyspace: KEY_SPACE, tests: ['incr'] })
  try {
    const warm = await streamRun(0, counterd.port, counterd.pid, `ws${mode[0]}warm`, 1000, 7)
    if (!warm.exact) notes.push(`ack=${mode} warm-up not exact: ${warm.check}`)
    pacer.record('redis', (await redisIncrRun(redis, 0, redisOpts(300_000))).value)
    for (let round = 1; round <= ctx.rounds; round++) {
      const a = await streamRun(round, counterd.port, counterd.pid, `ws${mode[0]}${round}`, ctx.durationSec * 1000, 100 + round)
      subjectRuns.push(a)
      ctx.log(`  round ${round} counterd ack=${mode} ${Math.round(a.value)} incr/s p99 ${a.p99Ms?.toFixed(2) ?? '?'} ms ${a.exact ? 'exact' : 'NOT EXACT: ' + a.check}`)
      const b = await redisIncrRun(redis, round, redisOpts(pacer.amount('redis', 500_000)))
      pacer.record('redis', b.value)
      peerRuns.push(b)
      ctx.log(`  round ${round} redis -P ${REDIS_PIPELINE}   ${Math.round(b.value)} incr/s p99 ${b.p99Ms ?? '?'} ms ${b.exact ? 'exact' : 'NOT EXACT: ' + b.check}`)
    }
  } finally {
    await stopCounterd(counterd, notes)
    await redis.stop()
    removeDir(redis.dir)
  }
  const goal = mode === 'applied' ? 10e6 : 3e6
  return compare({
    name: `ws-stream-${mode}`,
    label: `WebSocket binary stream, ack=${mode}`,
    unit: 'incr/s',
    higherIsBetter: true,
    subject: {
      system: 'counterd',
      config: `${WS.connections} connections × ${WS.framesInFlight} frames in flight × ${WS.opsPerFrame} ops/frame, ` +
        `load generator on ${WS.threads} thread(s), Zipf s=${ZIPF_S} over ${KEY_SPACE} ids, ack=${mode}`,
      runs: subjectRuns
    },
    peer: { system: 'redis', config: `redis-benchmark -t incr -c ${REDIS_CONNECTIONS} -P ${REDIS_PIPELINE} -r ${KEY_SPACE}`, runs: peerRuns },
    targets: (s) => [
      target(`≥ ${goal / 1e6}M incr/s`, s.value.median, v => v >= goal),
      target('p99 ack < 10 ms', s.p99Ms?.median, v => v < 10)
    ]
  })
}

export const wsStream: Suite = {
  name: 'ws-stream',
  title: 'WebSocket binary stream',
  async run (ctx: BenchContext) {
    const notes: string[] = []
    const comparisons = [await runMode(ctx, 'durable', notes), await runMode(ctx, 'applied', notes)]
    notes.push('Latency is per frame: from writing the frame to reading its ack. Throughput counts increments in acknowledged frames over the time from the first send to the last ack.')
    notes.push('The load generator and counterd share the same 2 cores; its CPU share is listed with every run.')
    return { comparisons, notes }
  }
}
