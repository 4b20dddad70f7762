// The chaos suite's short version (npm run chaos -- --trials 100 is the long one): CHAOS_TRIALS
// trials (default 10) of a node under mixed load killed with SIGKILL at a random moment and
// restarted; every counter, unique count and like count must end exactly as sent. Then
// CHAOS_RING_TRIALS (default 1) ring trials: a node joins a ring of two under load and one of the
// three is killed during the handoff; a stream runs through the first node (CHAOS_RING_STREAM=0
// leaves it out).
import t from 'tap'
import { runRingTrial } from '../chaos/ring-trial'
import { runTrial, seeded } from '../chaos/trial'
import { startKafka } from './support/kafka'
import { startRedis } from './support/redis'

const TRIALS = Number(process.env.CHAOS_TRIALS ?? 10)
const RING_TRIALS = Number(process.env.CHAOS_RING_TRIALS ?? 1)
const RING_STREAM = process.env.CHAOS_RING_STREAM !== '0'
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000)

t.test(`${TRIALS} kill -9 trials (seed ${SEED})`, async (t) => {
  const random = seeded(SEED)
  for (let i = 1; i <= TRIALS; i++) {
    const r = await runTrial({ killAfterMs: [50, 800], random })
    t.same(r.problems, [], `trial ${i}: killed at ${r.killedAtMs} ms, recovered in ${r.recoveryMs} ms, ${r.acked} acked, ${r.lost} lost, ${r.double} double`)
    t.ok(r.acked > 0, `trial ${i}: load ran`)
  }
})

t.test(`${RING_TRIALS} ring trials: kill -9 during a handoff (seed ${SEED})`, async (t) => {
  const [kafka, redis] = await Promise.all([startKafka(t), startRedis(t)])
  const random = seeded(SEED + 1)
  for (let i = 1; i <= RING_TRIALS; i++) {
    const r = await runRingTrial({ kafkaBrokers: kafka.brokers.join(','), redisUrl: redis.url, killAfterMs: [0, 4000], random, stream: RING_STREAM })
    t.same(r.problems, [], `ring trial ${i}: node ${r.killed} killed ${r.killedAtMs} ms after the third joined, ring settled ${r.recoveryMs} ms after the restart, ${r.acked} acked, ${r.lost} lost, ${r.double} double`)
    t.ok(r.acked > 0, `ring trial ${i}: load ran`)
  }
})
