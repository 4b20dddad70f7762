// Suite 1: HTTP increments. autocannon POSTs increments to counterd (64 connections, no
// pipelining, Zipf keys over 100k ids); the peer is redis-benchmark INCR against our own
// redis-server with the same connection count, no pipelining, 100k keys. counterd runs twice
// per round, with ack=durable (its default: a reply waits for the group-commit fsync) and with
// ack=applied; the difference between the two is what the fsync wait costs.
import { startCounterd, stopCounterd, type Counterd } from '../counterd'
import { launchRedis, removeDir } from '../redis-launcher'
import { compare, target, type BenchContext, type Comparison, type Run, type Suite } from '../suite'
import { CONNECTIONS, httpIncrementRun, incrementPaths, KEY_SPACE, Pacer, redisIncrRun, sumCounterdType, warmUpHttp, zipfIds } from './common'

const MODES = ['durable', 'applied'] as const

export const httpIncrements: Suite = {
  name: 'http-increments',
  title: 'HTTP increments',
  async run (ctx: BenchContext) {
    const notes: string[] = []
    const ids = zipfIds(200_000)
    const pacer = new Pacer(ctx.durationSec, 5_000, 10_000_000)
    const redis = await launchRedis()
    const servers: Counterd[] = []
    const runs = { durable: [] as Run[], applied: [] as Run[], redis: [] as Run[] }
    const redisOpts = (requests: number): Parameters<typeof redisIncrRun>[2] =>
      ({ connections: CONNECTIONS, requests, pipeline: 1, keyspace: KEY_SPACE, tests: ['incr'] })
    try {
      for (const mode of MODES) {
        const c = await startCounterd(ctx, { label: `http-increments-${mode}`, env: { ACK_MODE: mode } })
        servers.push(c)
        pacer.record(mode, await warmUpHttp(c.port, 'POST', incrementPaths('hiwarm', ids)))
      }
      pacer.record('redis', (await redisIncrRun(redis, 0, redisOpts(20_000))).value)
      for (let round = 1; round <= ctx.rounds; round++) {
        for (const [i, mode] of MODES.entries()) {
          const c = servers[i]
          const type = `hi${round}`
          const a = await httpIncrementRun({
            round, port: c.port, type, ids, amount: pacer.amount(mode, 10_000),
            pids: { counterd: c.pid }, readSum: async () => await sumCounterdType(c.port, type)
          })
          pacer.record(mode, a.value)
          runs[mode].push(a)
          ctx.log(`  round ${round} counterd ack=${mode} ${Math.round(a.value)} req/s p99 ${a.p99Ms ?? '?'} ms ${a.exact ? 'exact' : 'NOT EXACT: ' + a.check}`)
          if (mode === 'durable') {
            const b = await redisIncrRun(redis, round, redisOpts(pacer.amount('redis', 50_000)))
            pacer.record('redis', b.value)
            runs.redis.push(b)
            ctx.log(`  round ${round} redis ${Math.round(b.value)} req/s p99 ${b.p99Ms ?? '?'} ms ${b.exact ? 'exact' : 'NOT EXACT: ' + b.check}`)
          }
        }
      }
    } finally {
      for (const c of servers) await stopCounterd(c, notes)
      await redis.stop()
      removeDir(redis.dir)
    }
    notes.push('Each round runs counterd ack=durable, Redis, counterd ack=applied; both counterd rows are compared with that round\'s Redis run. The Redis peer runs without persistence (like ack=applied, an acknowledged INCR may be lost in a crash).')
    notes.push('redis-benchmark picks keys uniformly over 100k ids (it has no skewed distribution); counterd gets the Zipf-skewed keys.')
    notes.push('autocannon spends about 100 µs of CPU per request and redis-benchmark about 20 µs; both share the 2 cores with the server they drive (see the CPU lines).')
    const comparisons: Comparison[] = MODES.map(mode => compare({
      name: `http-increments-${mode}`,
      label: `HTTP increments, ack=${mode} (POST /v1/counter/{type}/{id}/increment)`,
      unit: 'req/s',
      higherIsBetter: true,
      subject: { system: 'counterd', config: `autocannon, ${CONNECTIONS} connections, no pipelining, Zipf s=0.99 over ${KEY_SPACE} ids, ack=${mode}`, runs: runs[mode] },
      peer: { system: 'redis', config: `redis-benchmark -t incr -c ${CONNECTIONS} -P 1 -r ${KEY_SPACE}`, runs: runs.redis },
      targets: (s, _p, ratio) => [
        target('≥ 1.0× Redis', ratio, r => r >= 1.0),
        target('p99 < 10 ms', s.p99Ms?.median, v => v < 10)
      ]
    }))
    return { comparisons, notes }
  }
}
