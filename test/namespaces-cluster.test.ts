// Namespaces in cluster storage: two namespaces write the same counter name; the Kafka records,
// the Redis checkpoints and the ClickHouse history hold them as two counters (the namespace is in
// the stored key), each namespace's history and values read back apart, and a kill -9 + restart
// (recovery from Redis + Kafka) keeps them apart.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { digestOf } from '../src/core/api-keys'
import { startClickHouse } from './support/clickhouse'
import { pollUntil, readClickHouseHistory, readKafkaLog, readRedisCheckpoints, redisClient, uniqueName } from './support/cluster-stores'
import { startKafka } from './support/kafka'
import { startNode, type NodeProcess } from './support/node-process'
import { startRedis } from './support/redis'
import { connectResp } from './support/resp-client'

const SHOP = 'shop-key-0123456789abc'
const BLOG = 'blog-key-0123456789abc'

t.test('Kafka records, Redis checkpoints and ClickHouse history keep namespaces apart', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-ns-cluster-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'keys.json')
  fs.writeFileSync(file, JSON.stringify({
    keys: [
      { key: `sha256:${digestOf(SHOP)}`, namespace: 'shop', scopes: ['read', 'write'] },
      { key: `sha256:${digestOf(BLOG)}`, namespace: 'blog', scopes: ['read', 'write'] }
    ]
  }))
  const [kafka, redis, ch] = await Promise.all([startKafka(t), startRedis(t), startClickHouse(t)])
  const topic = uniqueName('ns')
  const env = {
    KAFKA_BROKERS: kafka.brokers.join(','),
    KAFKA_TOPIC: topic,
    REDIS_URL: redis.url,
    CLICKHOUSE_URL: ch.url,
    CLUSTER_NAME: uniqueName('ns'),
    CHECKPOINT_INTERVAL_MS: '300',
    HISTORY_FLUSH_MS: '200',
    AUTH_FILE: file,
    RESP_PORT: '0'
  }
  let node: NodeProcess = await startNode(t, { env })
  const call = async (key: string, method: string, p: string, body?: unknown): Promise<any> => {
    const r = await fetch(node.base + p, { method, headers: { authorization: `Bearer ${key}` }, body: body === undefined ? undefined : JSON.stringify(body) })
    const text = await r.json()
    if (r.status !== 200) throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(text)}`)
    return text
  }
  await call(SHOP, 'POST', '/v1/counter/post/1/increment', { by: 5 })
  await call(BLOG, 'POST', '/v1/counter/post/1/increment', { by: 7 })
  const resp = await connectResp(t, node.respPort)
  t.same(await resp.call('AUTH', BLOG), { ok: 'OK' })
  t.equal(await resp.call('INCRBY', 'post:1', 30), 37)
  t.equal((await call(SHOP, 'GET', '/v1/counter/post/1')).value, 5)
  t.equal((await call(BLOG, 'GET', '/v1/counter/post/1')).value, 37)

  const log = await readKafkaLog(kafka.brokers, topic)
  t.equal(log.totals.get('shop/post:1'), 5, 'Kafka: shop\'s counter under its namespace')
  t.equal(log.totals.get('blog/post:1'), 37, 'Kafka: blog\'s counter under its namespace')
  t.equal(log.totals.get('post:1'), undefined, 'Kafka: no counter of no namespace')
  t.equal(log.misplacedKeys, 0, 'each record\'s keys are of its partition (the stored key is hashed)')

  const rc = redisClient([redis.url], false)
  t.teardown(() => { rc.disconnect() })
  const cps = await pollUntil(async () => await readRedisCheckpoints(rc), (c) => c.values.get('shop/post:1') === 5 && c.values.get('blog/post:1') === 37)
  t.equal(cps.values.get('shop/post:1'), 5, 'Redis checkpoints: shop')
  t.equal(cps.values.get('blog/post:1'), 37, 'Redis checkpoints: blog')
  t.notOk(cps.values.has('post:1'))

  const history = await pollUntil(async () => await readClickHouseHistory(ch.url), (h) => h.totals.get('shop/post:1') === 5 && h.totals.get('blog/post:1') === 37)
  t.same([history.totals.get('shop/post:1'), history.totals.get('blog/post:1')], [5, 37], 'ClickHouse history: two counters')
  const historySum = async (key: string): Promise<number> => {
    const to = Date.now() + 60_000
    const body = await call(key, 'GET', `/v1/counter/post/1/history?from=${to - 3_600_000}&to=${to}`)
    return (body.points as Array<{ value: number }>).reduce((a, p) => a + p.value, 0)
  }
  t.equal(await historySum(SHOP), 5, 'shop\'s history through HTTP')
  t.equal(await historySum(BLOG), 37, 'blog\'s history through HTTP')

  // kill -9: recovery from Redis + Kafka keeps them apart.
  await node.kill9()
  node = await startNode(t, { env })
  t.equal((await call(SHOP, 'GET', '/v1/counter/post/1')).value, 5)
  t.equal((await call(BLOG, 'GET', '/v1/counter/post/1')).value, 37)
  t.same(await call(SHOP, 'POST', '/v1/counters/query', { keys: ['post:1'] }), { values: { 'post:1': 5 } })
})
