// Suite: one viral counter written through every node of a ring. Two rings of two counterd nodes
// share one Kafka mock (kcat), each with its own redis-server (a Redis holds one ring's
// checkpoints and epochs), all started here: one ring splits hot counters
// (HOT_SPLIT_RATE=1000, the default), the other never does (HOT_SPLIT_RATE=0). wrk (64
// connections, one thread per node) POSTs increments of the single key `viral:1` to both nodes of
// a ring with `Prefer: return=minimal`, alternating rings every round.
//   Unsplit: every increment is applied by the one shard of the one node that owns the key's
//   partition; the other node forwards its half over a peer link and answers after the owner's
//   group commit.
//   Split: each node applies what it received to a sub-counter on its own shards (or its own
//   node), so both nodes commit their own halves and nothing crosses a peer link.
// Exactness: after every run the key is read through both nodes (they must agree) and must satisfy
// 2xx ≤ growth ≤ 2xx + connections.
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { partitionOf } from '../../src/core/keys'
import { startCounterd, stopCounterd, type Counterd } from '../counterd'
import { launchKafkaMock, type KafkaMockInstance } from '../kafka-launcher'
import { CpuMeter } from '../proc-stats'
import { launchRedis, removeDir, type RedisInstance } from '../redis-launcher'
import { compare, target, type BenchContext, type Run, type Suite } from '../suite'
import { serverThreads } from '../uws-peers'
import { assertWrkInstalled, incrementCheck, runWrk, writeIdsFile, type WrkOptions } from '../wrk'
import { CONNECTIONS } from './common'
import { ID, TYPE, readValue, splitState } from './hot'
import { RING_PARTITIONS, waitForRing, type RingView } from './ring'

const SYSTEMS = ['split', 'unsplit'] as const
type System = typeof SYSTEMS[number]
const LABELS: Record<System, string> = { split: 'ring, hot counters split', unsplit: 'ring, never split' }
const NODES = 2

interface RingUnderTest { nodes: Counterd[], view: RingView, owner: string }

export const ringHot: Suite = {
  name: 'ring-hot',
  title: 'Ring of two: one viral counter written through both nodes, split vs never split',
  async run (ctx: BenchContext) {
    assertWrkInstalled()
    const notes: string[] = []
    const threads = serverThreads(ctx)
    const dir = ctx.tempDir('ring-hot')
    const idsFile = path.join(dir, 'ids')
    writeIdsFile(idsFile, [Number(ID)])
    const runs: Record<System, Run[]> = { split: [], unsplit: [] }
    const started: Counterd[] = []
    let kafka: KafkaMockInstance | undefined
    const redises: RedisInstance[] = []
    try {
      kafka = await launchKafkaMock(1)
      for (const _ of SYSTEMS) redises.push(await launchRedis())
      const suffix = randomBytes(3).toString('hex')
      const base = { WORKERS: String(threads), ACK_MODE: 'durable', KAFKA_BROKERS: kafka.brokers.join(',') }
      const envOf = (s: System): Record<string, string> => ({
        ...base,
        REDIS_URL: redises[SYSTEMS.indexOf(s)].url,
        KAFKA_TOPIC: `bench-ring-hot-${s}-${suffix}`,
        CLUSTER_NAME: `bench-ring-hot-${s}-${suffix}`,
        HOT_SPLIT_RATE: s === 'split' ? '1000' : '0'
      })
      // Every node at once, so each ring's members join the mock's fresh group in its first 3 s
      // window (a later join waits for a rebalance).
      const starts = SYSTEMS.flatMap((s) => Array.from({ length: NODES }, async (_, i) => await startCounterd(ctx, { label: `ring-hot-${s}-${i}`, env: envOf(s) })))
      const settled = await Promise.allSettled(starts)
      for (const x of settled) if (x.status === 'fulfilled') started.push(x.value)
      for (const x of settled) if (x.status === 'rejected') throw x.reason
      const rings = {} as Record<System, RingUnderTest>
      for (const [i, s] of SYSTEMS.entries()) {
        const nodes = started.slice(i * NODES, (i + 1) * NODES)
        const view = await waitForRing(nodes)
        const p = partitionOf(`${TYPE}:${ID}`, RING_PARTITIONS)
        rings[s] = { nodes, view, owner: view.members.find((m) => m.partitions.includes(p))?.url ?? '?' }
      }
      const options = (s: System, durationSec: number): WrkOptions => ({
        ports: rings[s].nodes.map((n) => n.port),
        threads: NODES,
        connections: CONNECTIONS,
        durationSec,
        mode: 'increment',
        type: TYPE,
        idsFile,
        prefer: 'return=minimal'
      })
      // Unmeasured warm-up: long enough for the splitting ring to split the key (a tick to see the
      // rate, two polls until every thread routes to sub-counters) and for the peer links to warm.
      for (const s of SYSTEMS) await runWrk(options(s, s === 'split' ? 5 : 2))
      for (const s of SYSTEMS) notes.push(`${LABELS[s]}: after the warm-up the key (owned by ${rings[s].owner}) is ${await splitState(rings[s].nodes[0].port)}`)
      for (let round = 1; round <= ctx.rounds; round++) {
        for (const s of SYSTEMS) {
          const { nodes } = rings[s]
          const before = await readValue(nodes[0].port)
          const pids = Object.fromEntries(nodes.map((n, i) => [`node ${i}`, n.pid]))
          const meter = new CpuMeter({ ...pids, 'Kafka mock': kafka.pid, redis: redises[SYSTEMS.indexOf(s)].pid })
          const r = await runWrk(options(s, ctx.durationSec))
          const { usage, reapedChildren } = meter.stop()
          const after = await Promise.all(nodes.map(async (n) => await readValue(n.port)))
          const { exact: within, check: c } = incrementCheck(r, after[0] - before)
          const agree = after.every((v) => v === after[0])
          const exact = within && agree
          const check = `${c}; read through the nodes: ${after.join(', ')}${agree ? '' : ' (DIFFERENT)'}`
          runs[s].push({ round, value: r.okPerSec, p50Ms: r.p50Ms, p99Ms: r.p99Ms, exact, check, cpu: { ...usage, wrk: reapedChildren }, details: { ok2xx: r.ok2xx, command: r.command } })
          ctx.log(`  round ${round} ${LABELS[s].padEnd(26)} ${Math.round(r.okPerSec)} req/s p99 ${r.p99Ms?.toFixed(2) ?? '?'} ms ${exact ? 'exact' : 'NOT EXACT: ' + check}`)
        }
      }
      notes.push(`at the end the splitting ring reports the key ${await splitState(rings.split.nodes[1].port)}`)
    } catch (err) {
      // A node that died says why only in its own output.
      for (const c of started) if (c.proc.exitCode !== null) ctx.log(`  ${c.name} exited ${c.proc.exitCode}: ${c.tail().slice(-1500)}`)
      throw err
    } finally {
      for (const c of started) await stopCounterd(c, notes)
      for (const r of redises) {
        await r.stop()
        removeDir(r.dir)
      }
      await kafka?.stop()
    }
    const load = `wrk -t ${NODES} -c ${CONNECTIONS} -d ${Math.max(1, Math.round(ctx.durationSec))}s, one thread per node, POST /v1/counter/${TYPE}/${ID}/increment with Prefer: return=minimal`
    notes.push(`Two rings of ${NODES} counterd nodes (WORKERS=${threads} each, ACK_MODE=durable, cluster storage), sharing one Kafka mock (1 broker); each ring has its own redis-server, cluster name and delta topic. Each round runs ${SYSTEMS.map((s) => LABELS[s]).join(', ')} in turn. A run is exact when both nodes read the same value and 2xx ≤ the key's growth ≤ 2xx + ${CONNECTIONS} connections.`)
    notes.push('Everything shares the 2 cores: wrk, four nodes (the idle ring only heartbeats and polls), the Kafka mock and Redis. On separate machines a split key would add each node\'s cores; here the gain is what the split saves: the peer-link hop and the single owner shard.')
    return {
      comparisons: [compare({
        name: 'ring-hot-split',
        label: 'Ring of 2: one viral key through both nodes, split vs never split',
        unit: 'req/s',
        higherIsBetter: true,
        subject: { system: 'ring split', config: `${load}; HOT_SPLIT_RATE=1000, HOT_SPLIT_WAYS=16`, runs: runs.split },
        peer: { system: 'ring unsplit', config: `${load}; HOT_SPLIT_RATE=0`, runs: runs.unsplit },
        targets: (_s, _p, ratio) => [target('> 1× unsplit', ratio, (r) => r > 1)]
      })],
      notes
    }
  }
}
