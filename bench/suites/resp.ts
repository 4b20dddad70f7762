// Suite: the Redis protocol. The same client, redis-benchmark (64 connections, INCR over 100k
// uniformly random keys), drives counterd's RESP port and Redis in turn, in two pairs with the
// same durability: counterd ack=durable vs Redis appendfsync always, and counterd ack=applied
// vs Redis without persistence; each at -P 1 and -P 16. Every run uses keys of its own and is
// checked exactly: the counters read back must sum to the INCRs redis-benchmark sent.
import { startCounterd, stopCounterd, type Counterd } from '../counterd'
import { CpuMeter } from '../proc-stats'
import { flushRedis, readCounterd, sumRedis } from '../readback'
import { runRedisBenchmark } from '../redis-benchmark'
import { launchRedis, removeDir, type RedisInstance } from '../redis-launcher'
import { compare, target, type BenchContext, type Comparison, type Run, type Suite } from '../suite'
import { serverThreads } from '../uws-peers'
import { CONNECTIONS, KEY_SPACE, Pacer } from './common'

const PIPELINES = [1, 16] as const
const PAIRS = [
  { mode: 'durable', redis: 'always', redisArgs: ['--appendonly', 'yes', '--appendfsync', 'always'], redisLabel: 'Redis appendfsync always' },
  { mode: 'applied', redis: 'none', redisArgs: ['--appendonly', 'no'], redisLabel: 'Redis without persistence' }
] as const
type Mode = typeof PAIRS[number]['mode']
type RedisKind = typeof PAIRS[number]['redis']

/** redis-benchmark's key for __rand_int__ with -r: the number zero-padded to 12 digits. */
function idOf (i: number): string {
  return String(i).padStart(12, '0')
}

interface Target {
  name: string
  port: number
  pids: Record<string, number>
  /** the sum of every counter of `type` after the run */
  sum: (type: string) => Promise<number>
  /** before the run (Redis starts each run empty) */
  reset?: () => Promise<void>
}

async function incrRun (round: number, t: Target, type: string, pipeline: number, requests: number, timeoutMs: number): Promise<Run> {
  // redis-benchmark sends whole pipelines: -n rounded up to a multiple of -P.
  const sent = Math.ceil(requests / pipeline) * pipeline
  await t.reset?.()
  const meter = new CpuMeter(t.pids)
  const r = await runRedisBenchmark({
    port: t.port, connections: CONNECTIONS, requests: sent, pipeline, keyspace: KEY_SPACE, command: ['INCR', `${type}:__rand_int__`], timeoutMs
  })
  const { usage, reapedChildren } = meter.stop()
  const sum = await t.sum(type)
  const exact = sum === sent
  return {
    round,
    value: r.row.rps,
    p50Ms: r.row.p50Ms,
    p99Ms: r.row.p99Ms,
    exact,
    check: `INCRs sent ${sent} ${exact ? '=' : '≠'} sum of the run's counters read back ${sum}`,
    cpu: { ...usage, 'redis-benchmark': reapedChildren },
    details: { requests: sent, elapsedMs: Math.round(r.elapsedMs), maxMs: r.row.maxMs }
  }
}

function counterdTarget (c: Counterd): Target {
  const port = c.listening.respPort
  if (typeof port !== 'number') throw new Error(`${c.name} did not say its RESP port (listening line: ${JSON.stringify(c.listening)})`)
  return {
    name: c.name,
    port,
    pids: { counterd: c.pid },
    sum: async (type) => (await readCounterd(c.port, type, KEY_SPACE, idOf)).reduce((s, v) => s + v, 0)
  }
}

function redisTarget (r: RedisInstance): Target {
  return {
    name: 'redis',
    port: r.port,
    pids: { redis: r.pid },
    sum: async (type) => (await sumRedis(r.url, `${type}:`)).sum,
    reset: async () => await flushRedis(r.url)
  }
}

export const resp: Suite = {
  name: 'resp',
  title: 'Redis protocol: redis-benchmark INCR against counterd\'s RESP port and Redis',
  async run (ctx: BenchContext) {
    const notes: string[] = []
    const threads = serverThreads(ctx)
    const pacer = new Pacer(ctx.durationSec, 20_000, 50_000_000)
    const timeoutMs = Math.max(60_000, ctx.durationSec * 20_000)
    const key = (side: string, p: number): string => `${side}-P${p}`
    const runs = new Map<string, Run[]>()
    const counterds: Partial<Record<Mode, Counterd>> = {}
    const redises: Partial<Record<RedisKind, RedisInstance>> = {}
    try {
      const targets = new Map<string, Target>()
      for (const pair of PAIRS) {
        const c = await startCounterd(ctx, { label: `resp-${pair.mode}`, env: { ACK_MODE: pair.mode, WORKERS: String(threads), RESP_PORT: '0' } })
        counterds[pair.mode] = c
        targets.set(pair.mode, counterdTarget(c))
        const r = await launchRedis({ args: [...pair.redisArgs] })
        redises[pair.redis] = r
        targets.set(pair.redis, redisTarget(r))
      }
      const order = PAIRS.flatMap((p) => [p.mode, p.redis] as string[])
      // Unmeasured warm-ups (JIT, connections), which also give each side's rate for sizing runs.
      for (const p of PIPELINES) {
        for (const side of order) {
          const warm = await incrRun(0, targets.get(side) as Target, `rw${side[0]}${p}`, p, p === 1 ? 20_000 : 100_000, timeoutMs)
          pacer.record(key(side, p), warm.value)
          if (!warm.exact) notes.push(`${side} -P ${p} warm-up not exact: ${warm.check}`)
        }
      }
      for (let round = 1; round <= ctx.rounds; round++) {
        for (const p of PIPELINES) {
          for (const side of order) {
            const k = key(side, p)
            const r = await incrRun(round, targets.get(side) as Target, `r${round}${side[0]}${p}`, p, pacer.amount(k, 20_000), timeoutMs)
            pacer.record(k, r.value)
            runs.set(k, [...(runs.get(k) ?? []), r])
            const who = (['durable', 'applied'].includes(side) ? `counterd ack=${side}` : `redis ${side}`).padEnd(20)
            ctx.log(`  round ${round} -P ${String(p).padEnd(2)} ${who} ${Math.round(r.value)} incr/s p99 ${r.p99Ms?.toFixed(2) ?? '?'} ms ${r.exact ? 'exact' : 'NOT EXACT: ' + r.check}`)
          }
        }
      }
    } finally {
      for (const pair of PAIRS) {
        const c = counterds[pair.mode]
        if (c !== undefined) await stopCounterd(c, notes)
        const r = redises[pair.redis]
        if (r !== undefined) { await r.stop(); removeDir(r.dir) }
      }
    }
    const shape = (p: number): string => `redis-benchmark -c ${CONNECTIONS} -P ${p} -r ${KEY_SPACE} INCR <run>:__rand_int__`
    const comparisons: Comparison[] = []
    for (const pair of PAIRS) {
      for (const p of PIPELINES) {
        const goal = p === 1 ? 0.7 : 1.0
        comparisons.push(compare({
          name: `resp-${pair.mode}-P${p}`,
          label: `RESP INCR -P ${p}, counterd ack=${pair.mode} vs ${pair.redisLabel}`,
          unit: 'incr/s',
          higherIsBetter: true,
          subject: { system: 'counterd', config: `${shape(p)}; ack=${pair.mode}, WORKERS=${threads}, RESP on shard 0`, runs: runs.get(key(pair.mode, p)) ?? [] },
          peer: { system: 'redis', config: `${shape(p)}; ${pair.redisLabel}`, runs: runs.get(key(pair.redis, p)) ?? [] },
          targets: (_s, _p, ratio) => [target(`≥ ${goal.toFixed(1)}× Redis`, ratio, (r) => r >= goal)]
        }))
      }
    }
    notes.push('Each round runs, for -P 1 and then -P 16: counterd ack=durable, Redis appendfsync always, counterd ack=applied, Redis without persistence; every run INCRs keys of its own (a fresh prefix for counterd, an emptied Redis).')
    notes.push('Exactness: after each run the run\'s counters are read back (counterd through POST /v1/counters/query, Redis by SCAN) and must sum to the INCRs redis-benchmark sent.')
    notes.push('counterd takes every RESP connection on shard 0 (Node 20 cannot share a plain TCP port between threads); ops of the other shard\'s partitions cross the shared-memory ring. redis-benchmark shares the 2 cores with the servers.')
    return { comparisons, notes }
  }
}
