// Suite 4: memory. Resident set size growth per counter once 1M and 5M distinct counters
// exist (keys `post:0` … `post:N-1`, each +1), for counterd and for Redis holding the same keys.
// RSS is the honest figure for a process (heap slack, allocator pools and all): it is what the
// machine has to provide. Each side starts fresh, its idle RSS is the baseline.
import Redis from 'ioredis'
import { startCounterd } from '../counterd'
import { encodeFrame, type Op } from '../../client/frame-codec'
import { CpuMeter, rssBytes } from '../proc-stats'
import { checkRedisSequence, readCounterd } from '../readback'
import { launchRedis, removeDir } from '../redis-launcher'
import { compare, target, type BenchContext, type Comparison, type Run, type Suite } from '../suite'
import { pushFrames } from '../ws-load'

const TYPE = 'post'
const PER_FRAME = 1000
const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/** RSS after it settles: the median of a few samples taken after a pause. */
async function settledRss (pid: number): Promise<number> {
  await sleep(1000)
  const xs: number[] = []
  for (let i = 0; i < 3; i++) {
    xs.push(rssBytes(pid) ?? NaN)
    await sleep(200)
  }
  return xs.sort((a, b) => a - b)[1]
}

/** Reads back every counter, or every `stride`-th one in quick mode, and checks each is 1. */
async function checkCounterd (port: number, n: number, stride: number): Promise<{ exact: boolean, check: string }> {
  const sampled = Math.ceil(n / stride)
  const values = await readCounterd(port, TYPE, sampled, i => String(i * stride))
  let wrong = 0
  let sum = 0
  for (let i = 0; i < sampled; i++) {
    sum += values[i]
    if (values[i] !== 1) wrong++
  }
  const what = stride === 1 ? `all ${n} counters` : `every ${stride}th counter (${sampled})`
  return { exact: wrong === 0, check: `read back ${what}: sum ${sum}, ${wrong} not equal to 1` }
}

async function counterdRun (ctx: BenchContext, round: number, n: number): Promise<Run> {
  // No periodic checkpoint: its buffers would come and go in the RSS being measured.
  const c = await startCounterd(ctx, { label: `memory-${n}`, env: { ACK_MODE: 'applied', CHECKPOINT_INTERVAL_MS: String(24 * 3600 * 1000) }, profile: false })
  try {
    const before = await settledRss(c.pid)
    const meter = new CpuMeter({ counterd: c.pid, 'load generator': process.pid })
    const load = await pushFrames({
      url: `ws://127.0.0.1:${c.port}/v1/stream`,
      connections: 2,
      framesInFlight: 16,
      count: Math.ceil(n / PER_FRAME),
      payload: (i) => {
        const ops: Op[] = []
        for (let id = i * PER_FRAME; id < Math.min(n, (i + 1) * PER_FRAME); id++) ops.push([TYPE, String(id), 1])
        return encodeFrame(0, ops)
      }
    })
    if (Object.keys(load.refused).length > 0) throw new Error(`loading ${n} counters: frames refused ${JSON.stringify(load.refused)}`)
    const after = await settledRss(c.pid)
    const { usage } = meter.stop()
    const { exact, check } = await checkCounterd(c.port, n, ctx.quick ? 10 : 1)
    return {
      round,
      value: (after - before) / n,
      exact,
      check,
      cpu: usage,
      details: { rssBeforeMiB: before / 2 ** 20, rssAfterMiB: after / 2 ** 20, loadMs: Math.round(load.elapsedMs), retries: load.retries }
    }
  } finally {
    // The data is thrown away: SIGKILL skips the final checkpoint of millions of counters.
    await c.kill()
  }
}

const LOAD_SCRIPT = `
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) - 1 do redis.call('INCR', 'post:' .. i) end
return 1`

async function redisRun (round: number, n: number): Promise<Run> {
  const r = await launchRedis()
  const client = new Redis(r.url)
  try {
    const before = await settledRss(r.pid)
    const meter = new CpuMeter({ redis: r.pid })
    for (let from = 0; from < n; from += 500_000) await client.eval(LOAD_SCRIPT, 0, from, Math.min(n, from + 500_000))
    const after = await settledRss(r.pid)
    const { usage } = meter.stop()
    const { sum, wrong, dbsize } = await checkRedisSequence(r.url, `${TYPE}:`, n, 1)
    const exact = sum === n && wrong === 0 && dbsize === n
    return {
      round,
      value: (after - before) / n,
      exact,
      cpu: usage,
      check: `${dbsize} keys, sum ${sum}, ${wrong} not equal to 1 (expected ${n} keys summing to ${n})`,
      details: { rssBeforeMiB: before / 2 ** 20, rssAfterMiB: after / 2 ** 20 }
    }
  } finally {
    client.disconnect()
    await r.stop()
    removeDir(r.dir)
  }
}

export const memory: Suite = {
  name: 'memory',
  title: 'Memory per counter',
  async run (ctx: BenchContext) {
    const comparisons: Comparison[] = []
    const rounds = ctx.quick ? 1 : ctx.rounds
    for (const n of [1_000_000, 5_000_000]) {
      const subjectRuns: Run[] = []
      const peerRuns: Run[] = []
      for (let round = 1; round <= rounds; round++) {
        const a = await counterdRun(ctx, round, n)
        subjectRuns.push(a)
        ctx.log(`  ${n / 1e6}M counters round ${round}: counterd ${a.value.toFixed(1)} B/counter ${a.exact ? 'exact' : 'NOT EXACT: ' + a.check}`)
        const b = await redisRun(round, n)
        peerRuns.push(b)
        ctx.log(`  ${n / 1e6}M counters round ${round}: redis    ${b.value.toFixed(1)} B/counter ${b.exact ? 'exact' : 'NOT EXACT: ' + b.check}`)
      }
      comparisons.push(compare({
        name: `memory-${n / 1e6}M`,
        label: `Memory, ${n / 1e6}M counters (RSS growth per counter)`,
        unit: 'B/counter',
        higherIsBetter: false,
        subject: { system: 'counterd', config: `${n} keys post:0…post:${n - 1}, each +1 over the WebSocket stream; RSS of the whole process (all threads)`, runs: subjectRuns },
        peer: { system: 'redis', config: `the same ${n} keys INCRed by a server-side script; RSS of redis-server`, runs: peerRuns },
        targets: (s) => [target('≤ 80 B per counter', s.value.median, v => v <= 80)]
      }))
    }
    return {
      comparisons,
      notes: [
        'Bytes per counter = (RSS after loading − RSS of the idle fresh process) ÷ counters; lower is better, so the ratio counterd ÷ Redis should be below 1 to beat Redis.',
        'counterd runs with ack=applied and without periodic checkpoints during this suite, so the RSS measured is the counters\' own footprint, not checkpoint buffers.'
      ]
    }
  }
}
