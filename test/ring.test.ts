// A ring of real node processes sharing one Kafka (librdkafka's mock, started by the test) and one
// Redis: membership through the Kafka group, every partition owned by exactly one node, any node
// answering any key (reads, batch queries, top-K across nodes), then kill -9 of one node under load:
// the survivors take its partitions from Redis + Kafka, and every counter read through them lies
// between what was acknowledged and what was sent, and equals the sum of the records in Kafka.
import t, { type Test } from 'tap'
import { partitionOf } from '../src/core/keys'
import { differences, readKafkaLog, uniqueName } from './support/cluster-stores'
import { startKafka } from './support/kafka'
import { Tally, runLoad } from './support/load'
import { getValue, queryValues, startNode, type NodeProcess } from './support/node-process'
import { sleep } from './support/process-control'
import { clusterOf, ringEnv, waitForRing, type ClusterView } from './support/ring'
import { startRedis } from './support/redis'

const PARTITIONS = 64

function checkPlacement (t: Test, view: ClusterView, members: number): void {
  const owners = new Map<number, number>()
  for (const m of view.members) for (const p of m.partitions) owners.set(p, (owners.get(p) ?? 0) + 1)
  t.equal(owners.size, PARTITIONS, 'every partition has an owner')
  t.ok([...owners.values()].every((n) => n === 1), 'and exactly one')
  const counts = view.members.map((m) => m.partitions.length)
  t.ok(Math.max(...counts) <= Math.ceil(PARTITIONS / members * 1.25), `balanced within the bound: ${counts.join(' / ')}`)
}

t.test('a ring of three nodes: any node answers any key; kill -9 of one under load loses nothing acknowledged', async (t) => {
  const [kafka, redis] = await Promise.all([startKafka(t), startRedis(t)])
  const { env, topic } = ringEnv(kafka, redis, 'ring')
  const nodes = await Promise.all([0, 1, 2].map(async () => await startNode(t, { env, waitReady: false })))
  const view = await waitForRing(t, nodes)
  t.equal(view.members.length, 3, `three members at generation ${view.generation}`)
  checkPlacement(t, view, 3)
  for (const n of nodes) t.equal((await clusterOf(n))?.self, n.base, 'each node knows itself by its URL')
  const metrics = await (await fetch(`${nodes[0].base}/metrics`)).text()
  const owns = view.members.find((m) => m.url === nodes[0].base)?.partitions.length
  t.match(metrics, new RegExp(`\ncounterd_partitions_owned ${String(owns)}\n`), `/metrics: node 0 serves its ${String(owns)} partitions`)
  t.match(metrics, /\ncounterd_ring_members 3\n/, '/metrics: three members')
  t.match(metrics, /\ncounterd_peer_links 8\n/, '/metrics: each of its 2 shards has a link to each of the 4 shards of the other nodes')
  t.match(metrics, /\ncounterd_peer_links_up 8\n/, '/metrics: all connected')

  // Any node takes any key: writes spread over the three, every node reads every key the same.
  const keys = Array.from({ length: 90 }, (_, i) => `post:any${i}`)
  const expected: Record<string, number> = {}
  await Promise.all(keys.map(async (key, i) => {
    const [type, id] = key.split(':')
    for (let j = 0; j <= i % 4; j++) {
      const r = await fetch(`${nodes[(i + j) % 3].base}/v1/counter/${type}/${id}/increment`, { method: 'POST', body: JSON.stringify({ by: i + 1 }) })
      t.equal(r.status, 200, `increment of ${key} through node ${(i + j) % 3}`)
      await r.arrayBuffer()
      expected[key] = (expected[key] ?? 0) + i + 1
    }
  }))
  for (const n of nodes) {
    t.same(await queryValues(n.base, keys), expected, `a batch query through ${n.base} gathers every node's counters`)
  }
  t.equal(await getValue(nodes[1].base, 'post', 'any89'), expected['post:any89'], 'a single read through another node')
  const top = await (await fetch(`${nodes[0].base}/v1/top?type=post&k=1000`)).json() as { top: Array<{ key: string }> }
  const owners = new Set<string>()
  for (const { key } of top.top) {
    const owner = view.members.find((m) => m.partitions.includes(partitionOf(key, PARTITIONS)))
    if (owner !== undefined) owners.add(owner.url)
  }
  t.equal(owners.size, 3, 'top-K through one node lists counters owned by all three')

  // Likes, unique counts, samples, rates and replicas of a counter owned by node 0, through node 1.
  const owned = view.members.find((m) => m.url === nodes[0].base) as ClusterView['members'][number]
  let item = 0
  while (!owned.partitions.includes(partitionOf(`post:feat${item}`, PARTITIONS))) item++
  const id = `feat${item}`
  const via = nodes[1].base
  const json = async (path: string, body?: unknown): Promise<Record<string, unknown>> => {
    const r = await fetch(`${via}${path}`, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) })
    t.equal(r.status, 200, `${path} through a non-owner`)
    return await r.json() as Record<string, unknown>
  }
  for (const user of ['u1', 'u2', 'u1']) await json('/v1/like', { user_id: user, item_id: id, item_type: 'post' })
  t.match(await json(`/v1/count?item_id=${id}&item_type=post`), { count: 2 }, 'a like count through a non-owner')
  t.match(await json(`/v1/has-liked?user_id=u2&item_id=${id}&item_type=post`), { liked: true })
  for (const actor of ['a1', 'a2', 'a3', 'a2']) await json(`/v1/counter/post/${id}/increment`, { by: 1, actor })
  t.match(await json(`/v1/counter/post/${id}/unique`), { unique: 3 }, 'a unique count through a non-owner')
  t.same(((await json(`/v1/counter/post/${id}/sample?n=5`)).sample as string[]).sort(), ['a1', 'a2', 'a2', 'a3'], 'the sample (of the increments) through a non-owner')
  t.ok(((await json(`/v1/counter/post/${id}/rate`)).rate_per_sec as number) > 0, 'the rate through a non-owner')
  t.match(await json(`/v1/counter/post/${id}?replicas=true`), { value: 4, replicas: [{ replica: 'main', p: 4, n: 0 }] }, 'replicas through a non-owner')

  // kill -9 of the third node while clients write through the other two.
  const tally = new Tally()
  let done = false
  const loads = [0, 1].map(async (i) => await runLoad({ base: nodes[i].base, keys: 40, httpClients: 4, streams: 2, opsPerFrame: 20, until: () => done, seed: 7 + i, tally, clientIdPrefix: uniqueName(`ring-load-${i}`) }))
  await sleep(1500)
  await nodes[2].kill9()
  const killedAt = Date.now()
  const survivors = nodes.slice(0, 2)
  const after = await waitForRing(t, survivors)
  t.comment(`the survivors own every partition ${Date.now() - killedAt} ms after the kill (generation ${after.generation})`)
  checkPlacement(t, after, 2)
  await sleep(1000) // the load runs on through the new owners
  done = true
  await Promise.all(loads)
  t.ok(tally.ackedOps > 0, `${tally.ackedOps} ops acknowledged under load`)

  const values = await queryValues(nodes[0].base, tally.keys())
  t.same(await queryValues(nodes[1].base, tally.keys()), values, 'both survivors read the same values')
  const below: string[] = []
  const above: string[] = []
  for (const key of tally.keys()) {
    if (values[key] < (tally.acked.get(key) ?? 0)) below.push(`${key}: ${values[key]} < acked ${String(tally.acked.get(key))}`)
    if (values[key] > (tally.sent.get(key) ?? 0)) above.push(`${key}: ${values[key]} > sent ${String(tally.sent.get(key))}`)
  }
  t.same(below, [], 'no acknowledged increment lost')
  t.same(above, [], 'nothing counted twice')
  const log = await readKafkaLog(kafka.brokers, topic)
  t.same(differences(log.totals, new Map(Object.entries(values)), tally.keys()), [], `each counter equals the sum of its distinct records in Kafka (${log.records} records)`)
  t.same(log.layoutErrors, [], 'records of each partition in (epoch, seq) order')
})
