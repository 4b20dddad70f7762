// Planned moves in a ring of real node processes (Kafka mock + Redis started here), under a steady
// HTTP load spread over the live nodes: each of the 3 nodes is restarted in turn with SIGTERM (its
// partitions move away and back), then a 4th node joins (about a quarter of the partitions move to it).
// Clients never see an error: requests for a moving partition wait and are forwarded. At the end
// every counter is exactly what was sent, and equals the sum of its records in Kafka.
import t, { type Test } from 'tap'
import { differences, readKafkaLog } from './support/cluster-stores'
import { startKafka } from './support/kafka'
import { queryValues, startNode, type NodeProcess } from './support/node-process'
import { sleep } from './support/process-control'
import { ringEnv, waitForRing, waitSettled, type ClusterView } from './support/ring'
import { startRedis } from './support/redis'

const PARTITIONS = 64

/** HTTP clients incrementing 50 counters through whichever nodes are in `live`. */
class Load {
  readonly sent = new Map<string, number>()
  readonly acked = new Map<string, number>()
  readonly failures: string[] = []
  requests = 0
  private running = true
  private readonly workers: Array<Promise<void>>

  constructor (readonly live: NodeProcess[], clients: number) {
    this.workers = Array.from({ length: clients }, async (_, c) => await this.worker(c))
  }

  private async worker (c: number): Promise<void> {
    let i = c
    while (this.running) {
      const node = this.live[i % this.live.length]
      const key = `view:m${(i * 7 + c) % 50}`
      const by = 1 + (i % 3)
      i++
      this.sent.set(key, (this.sent.get(key) ?? 0) + by)
      try {
        const r = await fetch(`${node.base}/v1/counter/view/${key.slice(5)}/increment`, { method: 'POST', body: JSON.stringify({ by }) })
        const text = await r.text()
        if (r.status === 200) this.acked.set(key, (this.acked.get(key) ?? 0) + by)
        else this.failures.push(`${node.base}: ${r.status} ${text}`)
      } catch (err) {
        this.failures.push(`${node.base}: ${(err as Error).message}`)
      }
      this.requests++
    }
  }

  async stop (): Promise<void> {
    this.running = false
    await Promise.all(this.workers)
  }
}

t.test('a rolling restart of 3 nodes, then a 4th node joins, under load: no request fails, totals exact', async (t) => {
  const [kafka, redis] = await Promise.all([startKafka(t), startRedis(t)])
  const { env, topic } = ringEnv(kafka, redis, 'moves')
  const nodes = await Promise.all([0, 1, 2].map(async () => await startNode(t, { env, waitReady: false })))
  await waitForRing(t, nodes)
  const load = new Load([...nodes], 6)
  await sleep(1000)

  // Rolling restart: each node leaves the load, stops with SIGTERM, comes back on its port (so
  // under the same id: it gets its partitions back).
  for (let i = 0; i < nodes.length; i++) {
    const old = nodes[i]
    load.live.splice(load.live.indexOf(old), 1)
    await sleep(200) // requests already sent to it are answered during its drain
    t.equal(await old.stop(), 0, `node ${i} stopped cleanly`)
    // As an operator would: the others have taken over before the node comes back.
    const others = nodes.filter((n) => n !== old)
    await waitForRing(t, others)
    await waitSettled(t, others)
    nodes[i] = await startNode(t, { env: { ...env, PORT: String(old.port) }, dataDir: old.dataDir, waitReady: false })
    await waitForRing(t, nodes)
    await waitSettled(t, nodes)
    load.live.push(nodes[i])
    await sleep(500)
  }
  const three = await waitForRing(t, nodes)

  // Join: the newcomer takes about a quarter of the partitions, each from one old owner.
  const fourth = await startNode(t, { env, waitReady: false })
  nodes.push(fourth)
  const four = await waitForRing(t, nodes)
  const ownerIn = (v: ClusterView): string[] => {
    const owners = new Array<string>(PARTITIONS).fill('')
    for (const m of v.members) for (const p of m.partitions) owners[p] = m.url
    return owners
  }
  const before = ownerIn(three)
  const after = ownerIn(four)
  const moved = after.filter((o, p) => o !== before[p])
  t.ok(moved.length >= 8 && moved.length <= 24, `${moved.length} of ${PARTITIONS} partitions moved on the join (about a quarter)`)
  // Bounded loads may shift a partition or two between old owners as well (cluster/assigner.ts).
  const toNew = moved.filter((o) => o === fourth.base).length
  t.ok(toNew >= moved.length - 2, `${toNew} of the ${moved.length} moved partitions went to the new node`)
  load.live.push(fourth)
  await sleep(1500)
  await load.stop()

  t.ok(load.requests > 100, `${load.requests} requests during the join and the restarts`)
  t.same(load.failures.slice(0, 10), [], 'no request failed')
  const keys = [...load.sent.keys()]
  const values = await queryValues(nodes[0].base, keys)
  const expected = Object.fromEntries(keys.map((k) => [k, load.sent.get(k) ?? 0]))
  t.same(values, expected, 'every counter is exactly what was sent')
  const log = await readKafkaLog(kafka.brokers, topic)
  t.same(differences(log.totals, new Map(Object.entries(values)), keys), [], `and equals the sum of its records in Kafka (${log.records} records)`)
})
