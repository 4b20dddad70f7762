// History in cluster storage mode without ClickHouse (Kafka log + Redis checkpoints): the
// partitions' own minute buckets answer GET /v1/counter/{type}/{id}/history, and they survive
// kill -9: a restarted node rebuilds the very same buckets from the Redis checkpoint (which
// carries them) plus the Kafka records after it, or from the Kafka log alone before any
// checkpoint. In a ring, any node answers a key's history (the owner's buckets, through a peer link).
import t from 'tap'
import { redisClient, uniqueName } from './support/cluster-stores'
import { startKafka } from './support/kafka'
import { Tally, runLoad } from './support/load'
import { queryValues, startNode } from './support/node-process'
import { sleep } from './support/process-control'
import { startRedis } from './support/redis'
import { ringEnv, waitForRing, waitSettled } from './support/ring'

interface Reply { type: string, id: string, step: string, points: Array<{ ts: number, value: number }> }

const HOUR = 3_600_000

async function history (base: string, key: string, query: string): Promise<Reply> {
  const [type, id] = key.split(':')
  const r = await fetch(`${base}/v1/counter/${type}/${id}/history?${query}`)
  const body = await r.json() as Reply
  if (r.status !== 200) throw new Error(`history of ${key} through ${base}: ${r.status} ${JSON.stringify(body)}`)
  return body
}

async function allHistory (base: string, keys: string[], from: number, to: number, step = 'minute'): Promise<Record<string, Reply['points']>> {
  const out: Record<string, Reply['points']> = {}
  for (const key of keys) out[key] = (await history(base, key, `from=${from}&to=${to}&step=${step}`)).points
  return out
}

const sum = (points: Reply['points']): number => points.reduce((a, p) => a + p.value, 0)

t.test('cluster mode without ClickHouse: history answers from the partitions and survives kill -9', async (t) => {
  const [kafka, redis] = await Promise.all([startKafka(t), startRedis(t)])
  const env = {
    KAFKA_BROKERS: kafka.brokers.join(','),
    KAFKA_TOPIC: uniqueName('hist'),
    REDIS_URL: redis.url,
    ACK_MODE: 'durable',
    WORKERS: '2',
    CLUSTER_SESSION_MS: '3000', // a killed node leaves the group soon, so its restart has the partitions sooner
    CHECKPOINT_INTERVAL_MS: '600000' // the first kill lands before any periodic checkpoint
  }
  const rc = redisClient([redis.url], false)
  t.teardown(() => { rc.disconnect() })
  let node = await startNode(t, { env })
  const from = Date.now() - HOUR
  const to = Date.now() + HOUR
  const tally = new Tally()
  let stopAt = Date.now() + 1500
  await runLoad({ base: node.base, keys: 30, httpClients: 6, streams: 2, opsPerFrame: 30, until: () => Date.now() > stopAt, seed: 11, tally, clientIdPrefix: uniqueName('hc1') })
  const keys = tally.keys()
  const values = await queryValues(node.base, keys)
  const before = await allHistory(node.base, keys, from, to)
  for (const key of keys) t.equal(sum(before[key]), values[key], `${key}: its minutes sum to its value`)
  for (const p of before[keys[0]]) t.equal(p.ts % 60_000, 0, 'buckets start on a minute')

  // Killed before its first periodic checkpoint: the new process rebuilds the buckets from the
  // Kafka log. From now on it checkpoints often, so later kills also land during checkpoints.
  t.equal((await rc.keys('counterd:{p*}:history')).length, 0, 'no checkpoint yet')
  await node.kill9()
  node = await startNode(t, { env: { ...env, CHECKPOINT_INTERVAL_MS: '300' } })
  t.same(await queryValues(node.base, keys), values, 'values recovered from Kafka')
  t.same(await allHistory(node.base, keys, from, to), before, 'every key\'s minutes recovered exactly (Kafka replay)')

  // The buckets are saved in the Redis checkpoints beside the counters.
  let stored = 0
  for (let waited = 0; stored === 0 && waited < 60_000; waited += 50) {
    stored = (await rc.keys('counterd:{p*}:history')).length
    if (stored === 0) await sleep(50)
  }
  t.ok(stored > 0, `the Redis checkpoints carry the minute buckets (${stored} partitions)`)

  // Again with the kill in the middle of the load: checkpoint (with its buckets) + Kafka tail.
  stopAt = Infinity
  let killed = false
  const load = runLoad({ base: node.base, keys: 30, httpClients: 6, streams: 2, opsPerFrame: 30, until: () => killed, seed: 12, tally, clientIdPrefix: uniqueName('hc2') })
  await sleep(900)
  await node.kill9()
  killed = true
  await load
  node = await node.restart()
  const after = await queryValues(node.base, keys)
  const recovered = await allHistory(node.base, keys, from, to)
  for (const key of keys) {
    t.equal(sum(recovered[key]), after[key], `after a kill under load, ${key}'s minutes sum to its value`)
    t.ok(after[key] >= values[key], `${key} kept what it had`)
  }
  // A third kill with no load in between: the same buckets again, read back exactly.
  await node.kill9()
  node = await node.restart()
  t.same(await allHistory(node.base, keys, from, to), recovered, 'a restart without new writes reads the same buckets back')
  const hours = await allHistory(node.base, keys.slice(0, 5), from, to, 'hour')
  for (const key of keys.slice(0, 5)) t.equal(sum(hours[key]), after[key], `${key}: hour buckets sum to the value`)
})

t.test('a ring of two nodes without ClickHouse: either node answers any key\'s history', async (t) => {
  const [kafka, redis] = await Promise.all([startKafka(t), startRedis(t)])
  const { env } = ringEnv(kafka, redis, 'hist-ring')
  const nodes = await Promise.all([0, 1].map(async () => await startNode(t, { env, waitReady: false })))
  await waitForRing(t, nodes)
  await waitSettled(t, nodes)
  const from = Date.now() - HOUR
  const to = Date.now() + HOUR
  const keys = Array.from({ length: 40 }, (_, i) => `post:h${i}`)
  const expected: Record<string, number> = {}
  for (let i = 0; i < keys.length; i++) {
    const [type, id] = keys[i].split(':')
    for (let j = 0; j < 2; j++) {
      const r = await fetch(`${nodes[(i + j) % 2].base}/v1/counter/${type}/${id}/increment`, { method: 'POST', body: JSON.stringify({ by: i + 1 + j }) })
      t.equal(r.status, 200, `increment of ${keys[i]} through node ${(i + j) % 2}`)
      await r.arrayBuffer()
      expected[keys[i]] = (expected[keys[i]] ?? 0) + i + 1 + j
    }
  }
  const through = await Promise.all(nodes.map(async (n) => await allHistory(n.base, keys, from, to)))
  t.same(through[1], through[0], 'both nodes answer the same buckets for every key (half of them owned by the other node)')
  for (const key of keys) t.equal(sum(through[0][key]), expected[key], `${key}: its minutes sum to what was added`)
})
