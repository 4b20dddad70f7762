// Suite 1: HTTP increments. autocannon POSTs increments to counterd (64 connections, no
// pipelining, Zipf keys over 100k ids); the peer is redis-benchmark INCR against our own
// redis-server with the same connection count, no pipelining, 100k keys.
import { startCounterd, stopCounterd } from '../counterd'
import { launchRedis, removeDir } from '../redis-launcher'
import { compare, target, type BenchContext, type Run, type Suite } from '../suite'
import { CONNECTIONS, httpIncrementRun, incrementPaths, KEY_SPACE, Pacer, redisIncrRun, sumCounterdType, warmUpHttp, zipfIds } from './common'

export const httpIncrements: Suite = {
  name: 'http-increments',
  title: 'HTTP increments',
  async run (ctx: BenchContext) {
    const notes: string[] = []
    const ids = zipfIds(200_000)
    const pacer = new Pacer(ctx.durationSec, 5_000, 10_000_000)
    const redis = await launchRedis()
    const counterd = await startCounterd(ctx, { label: 'http-increments' })
    const subjectRuns: Run[] = []
    const peerRuns: Run[] = []
    const redisOpts = (requests: number): Parameters<typeof redisIncrRun>[2] =>
      ({ connections: CONNECTIONS, requests, pipeline: 1, keyspace: KEY_SPACE, tests: ['incr'] })
    try {
      pacer.record('counterd', await warmUpHttp(counterd.port, 'POST', incrementPaths('hiwarm', ids)))
      const warmRedis = await redisIncrRun(redis, 0, redisOpts(20_000))
      pacer.record('redis', warmRedis.value)
      for (let round = 1; round <= ctx.rounds; round++) {
        const type = `hi${round}`
        const a = await httpIncrementRun({
          round, port: counterd.port, type, ids, amount: pacer.amount('counterd', 10_000),
          pids: { counterd: counterd.pid }, readSum: async () => await sumCounterdType(counterd.port, type)
        })
        pacer.record('counterd', a.value)
        subjectRuns.push(a)
        ctx.log(`  round ${round} counterd ${Math.round(a.value)} req/s p99 ${a.p99Ms ?? '?'} ms ${a.exact ? 'exact' : 'NOT EXACT: ' + a.check}`)
        const b = await redisIncrRun(redis, round, redisOpts(pacer.amount('redis', 50_000)))
        pacer.record('redis', b.value)
        peerRuns.push(b)
        ctx.log(`  round ${round} redis    ${Math.round(b.value)} req/s p99 ${b.p99Ms ?? '?'} ms ${b.exact ? 'exact' : 'NOT EXACT: ' + b.check}`)
      }
    } finally {
      await stopCounterd(counterd, notes)
      await redis.stop()
      removeDir(redis.dir)
    }
    notes.push('counterd runs with its defaults (ack=durable: a reply waits for the group commit fsync); the Redis peer runs without persistence.')
    notes.push('redis-benchmark picks keys uniformly over 100k ids (it has no skewed distribution); counterd gets the Zipf-skewed keys.')
    const comparison = compare({
      name: 'http-increments',
      label: 'HTTP increments (POST /v1/counter/{type}/{id}/increment)',
      unit: 'req/s',
      higherIsBetter: true,
      subject: { system: 'counterd', config: `autocannon, ${CONNECTIONS} connections, no pipelining, Zipf s=0.99 over ${KEY_SPACE} ids, ack=durable`, runs: subjectRuns },
      peer: { system: 'redis', config: `redis-benchmark -t incr -c ${CONNECTIONS} -P 1 -r ${KEY_SPACE}`, runs: peerRuns },
      targets: (s, _p, ratio) => [
        target('≥ 1.0× Redis', ratio, r => r >= 1.0),
        target('p99 < 10 ms', s.p99Ms?.median, v => v < 10)
      ]
    })
    return { comparisons: [comparison], notes }
  }
}
