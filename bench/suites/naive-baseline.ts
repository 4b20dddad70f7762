// Suite 6: the textbook design (node:http + one Redis INCRBY per request) driven exactly like
// suite 1, next to counterd, so the table shows what batching, actors and group commit buy.
import path from 'node:path'
import { startCounterd, stopCounterd } from '../counterd'
import { startNodeService } from '../node-service'
import { launchRedis, removeDir } from '../redis-launcher'
import { compare, type BenchContext, type Run, type Suite } from '../suite'
import { CONNECTIONS, httpIncrementRun, incrementPaths, Pacer, sumCounterdType, sumRedisType, warmUpHttp, zipfIds } from './common'

export const naiveBaseline: Suite = {
  name: 'naive-baseline',
  title: 'Naive baseline (node:http + ioredis INCR per request)',
  async run (ctx: BenchContext) {
    const notes: string[] = []
    const ids = zipfIds(200_000)
    const pacer = new Pacer(ctx.durationSec, 5_000, 5_000_000)
    const redis = await launchRedis()
    const naive = await startNodeService({
      name: 'naive baseline',
      script: path.join(__dirname, '..', 'naive-server.js'),
      env: { PORT: '0', REDIS_URL: redis.url }
    })
    const counterd = await startCounterd(ctx, { label: 'naive-baseline' })
    const subjectRuns: Run[] = []
    const peerRuns: Run[] = []
    try {
      // Warm both (JIT, connection set-up) and learn their rates; not recorded.
      pacer.record('counterd', await warmUpHttp(counterd.port, 'POST', incrementPaths('nbwarm', ids)))
      pacer.record('naive', await warmUpHttp(naive.port, 'POST', incrementPaths('nbwarm', ids)))
      for (let round = 1; round <= ctx.rounds; round++) {
        const type = `nb${round}`
        const a = await httpIncrementRun({
          round, port: counterd.port, type, ids, amount: pacer.amount('counterd', 10_000),
          pids: { counterd: counterd.pid }, readSum: async () => await sumCounterdType(counterd.port, type)
        })
        pacer.record('counterd', a.value)
        subjectRuns.push(a)
        ctx.log(`  round ${round} counterd ${Math.round(a.value)} req/s p99 ${a.p99Ms ?? '?'} ms ${a.exact ? 'exact' : 'NOT EXACT: ' + a.check}`)
        const b = await httpIncrementRun({
          round, port: naive.port, type, ids, amount: pacer.amount('naive', 10_000),
          pids: { 'naive server': naive.pid, redis: redis.pid }, readSum: async () => await sumRedisType(redis.url, type)
        })
        pacer.record('naive', b.value)
        peerRuns.push(b)
        ctx.log(`  round ${round} naive    ${Math.round(b.value)} req/s p99 ${b.p99Ms ?? '?'} ms ${b.exact ? 'exact' : 'NOT EXACT: ' + b.check}`)
      }
    } finally {
      await stopCounterd(counterd, notes)
      await naive.stop()
      await redis.stop()
      removeDir(redis.dir)
    }
    const comparison = compare({
      name: 'naive-baseline',
      label: 'HTTP increments: counterd vs naive node:http + ioredis INCRBY',
      unit: 'req/s',
      higherIsBetter: true,
      subject: { system: 'counterd', config: `autocannon, ${CONNECTIONS} connections, no pipelining, Zipf keys`, runs: subjectRuns },
      peer: { system: 'naive server', config: `same autocannon load; one INCRBY per request through ioredis`, runs: peerRuns },
      targets: () => []
    })
    return { comparisons: [comparison], notes }
  }
}
