// Suite 2: HTTP reads. 100k counters are loaded with known values, then autocannon GETs them
// (64 connections, no pipelining, Zipf keys) and every answer is checked against the value
// loaded. The peer is redis-benchmark GET over the same 100k values.
import Redis from 'ioredis'
import { startCounterd, stopCounterd } from '../counterd'
import { encodeFrame, type Op } from '../../client/frame-codec'
import { runHttpLoad } from '../http-load'
import { CpuMeter } from '../proc-stats'
import { readCounterd, sumRedis } from '../readback'
import { runRedisBenchmark } from '../redis-benchmark'
import { launchRedis, removeDir, type RedisInstance } from '../redis-launcher'
import { compare, target, type BenchContext, type Run, type Suite } from '../suite'
import { pushFrames } from '../ws-load'
import { CONNECTIONS, KEY_SPACE, Pacer, warmUpHttp, zipfIds } from './common'

// Exported for the http-wrk suite, which loads and checks the same values.
export const TYPE = 'rd'
export const valueOf = (id: number): number => (id % 997) + 1

function expectedTotal (): number {
  let sum = 0
  for (let id = 0; id < KEY_SPACE; id++) sum += valueOf(id)
  return sum
}

export async function loadCounterd (port: number): Promise<void> {
  const perFrame = 1000
  const r = await pushFrames({
    url: `ws://127.0.0.1:${port}/v1/stream`,
    connections: 2,
    framesInFlight: 8,
    count: KEY_SPACE / perFrame,
    payload: (i) => {
      const ops: Op[] = []
      for (let id = i * perFrame; id < (i + 1) * perFrame; id++) ops.push([TYPE, String(id), valueOf(id)])
      return encodeFrame(0, ops)
    }
  })
  if (Object.keys(r.refused).length > 0) throw new Error(`loading read values: frames refused ${JSON.stringify(r.refused)}`)
  const values = await readCounterd(port, TYPE, KEY_SPACE)
  for (let id = 0; id < KEY_SPACE; id++) {
    if (values[id] !== valueOf(id)) throw new Error(`loaded ${TYPE}:${id} reads ${values[id]}, expected ${valueOf(id)}`)
  }
}

// redis-benchmark's __rand_int__ is a 12-digit zero-padded number below -r.
const LOAD_SCRIPT = `
for i = 0, tonumber(ARGV[1]) - 1 do
  redis.call('SET', string.format('counter:%012d', i), (i % 997) + 1)
end
return tonumber(ARGV[1])`

async function loadRedis (r: RedisInstance): Promise<void> {
  const redis = new Redis(r.url)
  try {
    await redis.flushall()
    await redis.eval(LOAD_SCRIPT, 0, KEY_SPACE)
  } finally {
    redis.disconnect()
  }
}

async function counterdRun (round: number, port: number, pid: number, paths: string[], amount: number): Promise<Run> {
  const meter = new CpuMeter({ counterd: pid, autocannon: process.pid })
  const load = await runHttpLoad({
    port,
    connections: CONNECTIONS,
    amount,
    method: 'GET',
    paths,
    // Every answer must be the loaded value of the id asked for.
    verify: (status, body) => {
      if (status !== 200) return false
      const r = JSON.parse(body) as { type: string, id: string, value: number }
      return r.type === TYPE && r.value === valueOf(Number(r.id))
    }
  })
  const { usage } = meter.stop()
  const clean = load.non2xx === 0 && load.errors === 0 && load.timeouts === 0
  const exact = clean && load.mismatches === 0
  return {
    round,
    value: load.rps,
    p50Ms: load.p50Ms,
    p99Ms: load.p99Ms,
    exact,
    check: `${load.ok2xx} answers, ${load.mismatches} with a wrong value` +
      (clean ? '' : `; non-2xx ${load.non2xx} ${JSON.stringify(load.statusCodes)}, errors ${load.errors}, timeouts ${load.timeouts}`),
    cpu: usage,
    details: { requests: load.ok2xx, elapsedMs: Math.round(load.elapsedMs), maxMs: load.maxMs }
  }
}

async function redisRun (round: number, redis: RedisInstance, requests: number): Promise<Run> {
  const meter = new CpuMeter({ redis: redis.pid })
  const r = await runRedisBenchmark({ port: redis.port, connections: CONNECTIONS, requests, pipeline: 1, keyspace: KEY_SPACE, command: ['GET', 'counter:__rand_int__'] })
  const { usage, reapedChildren } = meter.stop()
  // redis-benchmark does not look at answers; check at least that the values are intact.
  const { sum, keys } = await sumRedis(redis.url, 'counter:')
  const exact = sum === expectedTotal() && keys === KEY_SPACE
  return {
    round,
    value: r.row.rps,
    p50Ms: r.row.p50Ms,
    p99Ms: r.row.p99Ms,
    exact,
    check: `${keys} keys summing to ${sum} (expected ${KEY_SPACE} summing to ${expectedTotal()}); answers not inspected by redis-benchmark`,
    cpu: { ...usage, 'redis-benchmark': reapedChildren },
    details: { elapsedMs: Math.round(r.elapsedMs), maxMs: r.row.maxMs }
  }
}

export const httpReads: Suite = {
  name: 'http-reads',
  title: 'HTTP reads',
  async run (ctx: BenchContext) {
    const notes: string[] = []
    const paths = Array.from(zipfIds(200_000, 43), id => `/v1/counter/${TYPE}/${id}`)
    const pacer = new Pacer(ctx.durationSec, 5_000, 10_000_000)
    const redis = await launchRedis()
    const counterd = await startCounterd(ctx, { label: 'http-reads' })
    const subjectRuns: Run[] = []
    const peerRuns: Run[] = []
    try {
      await loadCounterd(counterd.port)
      await loadRedis(redis)
      pacer.record('counterd', await warmUpHttp(counterd.port, 'GET', paths))
      pacer.record('redis', (await redisRun(0, redis, 20_000)).value)
      for (let round = 1; round <= ctx.rounds; round++) {
        const a = await counterdRun(round, counterd.port, counterd.pid, paths, pacer.amount('counterd', 10_000))
        pacer.record('counterd', a.value)
        subjectRuns.push(a)
        ctx.log(`  round ${round} counterd ${Math.round(a.value)} req/s p99 ${a.p99Ms ?? '?'} ms ${a.exact ? 'exact' : 'NOT EXACT: ' + a.check}`)
        const b = await redisRun(round, redis, pacer.amount('redis', 50_000))
        pacer.record('redis', b.value)
        peerRuns.push(b)
        ctx.log(`  round ${round} redis    ${Math.round(b.value)} req/s p99 ${b.p99Ms ?? '?'} ms ${b.exact ? 'exact' : 'NOT EXACT: ' + b.check}`)
      }
    } finally {
      await stopCounterd(counterd, notes)
      await redis.stop()
      removeDir(redis.dir)
    }
    notes.push('Every counterd answer is parsed and compared with the loaded value (the load generator pays for that check); redis-benchmark does not read answers.')
    const comparison = compare({
      name: 'http-reads',
      label: 'HTTP reads (GET /v1/counter/{type}/{id})',
      unit: 'req/s',
      higherIsBetter: true,
      subject: { system: 'counterd', config: `autocannon, ${CONNECTIONS} connections, no pipelining, Zipf s=0.99 over ${KEY_SPACE} ids`, runs: subjectRuns },
      peer: { system: 'redis', config: `redis-benchmark GET counter:__rand_int__ -c ${CONNECTIONS} -P 1 -r ${KEY_SPACE}`, runs: peerRuns },
      targets: (s, _p, ratio) => [
        target('≥ 1.0× Redis', ratio, r => r >= 1.0),
        target('p99 < 10 ms', s.p99Ms?.median, v => v < 10)
      ]
    })
    return { comparisons: [comparison], notes }
  }
}
