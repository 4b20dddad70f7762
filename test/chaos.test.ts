// The chaos suite's short version (npm run chaos -- --trials 100 is the long one): CHAOS_TRIALS
// trials (default 10) of a node under mixed load killed with SIGKILL at a random moment and
// restarted; every counter, unique count and like count must end exactly as sent.
import t from 'tap'
import { runTrial, seeded } from '../chaos/trial'

const TRIALS = Number(process.env.CHAOS_TRIALS ?? 10)
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000)

t.test(`${TRIALS} kill -9 trials (seed ${SEED})`, async (t) => {
  const random = seeded(SEED)
  for (let i = 1; i <= TRIALS; i++) {
    const r = await runTrial({ killAfterMs: [50, 800], random })
    t.same(r.problems, [], `trial ${i}: killed at ${r.killedAtMs} ms, recovered in ${r.recoveryMs} ms, ${r.acked} acked, ${r.lost} lost, ${r.double} double`)
    t.ok(r.acked > 0, `trial ${i}: load ran`)
  }
})
