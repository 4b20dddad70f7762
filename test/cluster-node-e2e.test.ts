// End to end in cluster storage mode, through real node processes: HTTP and WebSocket load on a
// node whose log is in Kafka (librdkafka's mock cluster), checkpoints in Redis (one server, then a
// 3-master Redis Cluster) and history in ClickHouse. What each server holds is read the way another
// service would (docs/cluster-storage.md) and must agree with the acknowledged totals.
import t, { type Test } from 'tap'
import { partitionOf } from '../src/core/keys'
import { startClickHouse } from './support/clickhouse'
import {
  PARTITIONS, clickhouseQuery, differences, historySum, pollUntil, readClickHouseHistory, readKafkaLog, readRedisCheckpoints,
  readiness, redisClient, uniqueName
} from './support/cluster-stores'
import { startKafka } from './support/kafka'
import { Tally, runLoad } from './support/load'
import { queryValues, startNode, type NodeProcess } from './support/node-process'
import { startRedis } from './support/redis'
import { startRedisCluster } from './support/redis-cluster'

/** Only counters with a non-zero value have a field in Redis: the expected map without zeros. */
function nonZero (m: ReadonlyMap<string, number>): Map<string, number> {
  return new Map([...m].filter(([, v]) => v !== 0))
}

async function post (base: string, path: string, body?: unknown): Promise<{ status: number, body: any }> {
  const r = await fetch(base + path, { method: 'POST', body: body === undefined ? undefined : JSON.stringify(body) })
  return { status: r.status, body: await r.json() }
}

/** Actor increments on one counter: `n` increments over `actors` distinct actors, 20 at a time. */
async function actorIncrements (t: Test, base: string, type: string, id: string, n: number, actors: number, tally: Tally): Promise<void> {
  let bad = 0
  for (let i = 0; i < n; i += 20) {
    const rs = await Promise.all(Array.from({ length: Math.min(20, n - i) }, async (_, j) =>
      await post(base, `/v1/counter/${type}/${id}/increment`, { by: 1, actor: `u${(i + j) % actors}` })))
    for (const r of rs) {
      if (r.status === 200) tally.ack(`${type}:${id}`, 1)
      else bad++
    }
    for (const _ of rs) tally.send(`${type}:${id}`, 1)
  }
  t.equal(bad, 0, `${n} actor increments on ${type}:${id} acknowledged`)
}

/** The node's values of every key the tally knows, as a map. */
async function nodeValues (base: string, keys: string[]): Promise<Map<string, number>> {
  return new Map(Object.entries(await queryValues(base, keys)))
}

t.test('one Redis: HTTP + WebSocket load; Kafka records, Redis checkpoints and ClickHouse history agree with the acked totals', async (t) => {
  const [kafka, redis, ch] = await Promise.all([startKafka(t), startRedis(t), startClickHouse(t)])
  const topic = uniqueName('e2e')
  const env = {
    KAFKA_BROKERS: kafka.brokers.join(','),
    KAFKA_TOPIC: topic,
    REDIS_URL: redis.url,
    CLICKHOUSE_URL: ch.url,
    ACK_MODE: 'durable',
    CHECKPOINT_INTERVAL_MS: '300',
    HISTORY_FLUSH_MS: '200'
  }
  let node: NodeProcess = await startNode(t, { env })
  const ready = await readiness(node.base)
  t.equal(ready.status, 200, '/ready is 200 once recovered')
  t.match(ready.body, { status: 'ready', storage: 'ok', history: 'ok' }, '/ready reports storage and history ok')

  const tally = new Tally()
  const stopAt = Date.now() + 2000
  await runLoad({ base: node.base, keys: 40, httpClients: 6, streams: 3, opsPerFrame: 30, until: () => Date.now() > stopAt, seed: 11, tally, clientIdPrefix: uniqueName('e2e') })
  t.ok(tally.ackedOps > 1000, `load acknowledged ${tally.ackedOps} ops`)
  t.same(differences(tally.sent, tally.acked), [], 'with every server up, every op sent was acknowledged')

  // A reset (logged as the delta -value), a negative increment, and actor increments (unique counts).
  const del = await fetch(`${node.base}/v1/counter/post/k1`, { method: 'DELETE' })
  t.equal(del.status, 200, 'reset accepted')
  await del.json()
  tally.acked.set('post:k1', 0)
  tally.sent.set('post:k1', 0)
  let r = await post(node.base, '/v1/counter/post/k1/increment', { by: 7 })
  t.same(r, { status: 200, body: { type: 'post', id: 'k1', value: 7 } }, 'increment after the reset')
  tally.ack('post:k1', 7); tally.send('post:k1', 7)
  r = await post(node.base, '/v1/counter/video/neg/increment', { by: -5 })
  t.same(r, { status: 200, body: { type: 'video', id: 'neg', value: -5 } }, 'a negative increment')
  tally.ack('video:neg', -5); tally.send('video:neg', -5)
  await actorIncrements(t, node.base, 'post', 'uniq', 600, 250, tally)

  const expected = await nodeValues(node.base, tally.keys())
  t.same(differences(tally.acked, expected), [], 'the node serves exactly the acknowledged totals')

  // Kafka: every durable record of this node, read from the beginning, adds up to the totals.
  const log = await readKafkaLog(kafka.brokers, topic)
  t.same(differences(expected, log.totals), [], `Kafka records (${log.records} distinct, ${log.copies} retry copies) add up to the acked totals`)
  t.same([...log.replicas], ['main'], 'records carry the node\'s replica id')
  t.same(log.layoutErrors, [], 'message key, Kafka partition, timestamp and (epoch, seq) order as documented')
  t.same(log.truncated, [], 'Kafka kept the whole log (nothing dropped by retention)')
  t.equal(log.misplacedKeys, 0, 'every key sits in a record of its own counter partition')

  // Redis: checkpoints every 300 ms; the next one after the last ack holds every total.
  const rc = redisClient([redis.url], false)
  t.teardown(() => { rc.disconnect() })
  const cps = await pollUntil(async () => await readRedisCheckpoints(rc), (c) => differences(nonZero(expected), c.values).length === 0)
  t.same(differences(nonZero(expected), cps.values), [], 'Redis checkpoints hold the acked totals (HGETALL counterd:{p}:values)')
  t.equal(cps.seqs.size, PARTITIONS, 'every partition has a checkpoint meta')
  t.same([...cps.seqs].filter(([p, m]) => m.epoch !== cps.owners.get(p)), [], 'each checkpoint is of the epoch its owner claimed')

  // Unique counts: Redis' own PFCOUNT reads the checkpointed HyperLogLog.
  const uniqueRes = await fetch(`${node.base}/v1/counter/post/uniq/unique`)
  const unique = await uniqueRes.json() as { unique: number }
  t.equal(uniqueRes.status, 200)
  t.ok(Math.abs(unique.unique - 250) <= 250 * 0.05, `unique estimate ${unique.unique} is near 250`)
  const hllKey = `counterd:{p${partitionOf('post:uniq', PARTITIONS)}}:hll:post:uniq`
  const pf = await pollUntil(async () => await rc.pfcount(hllKey), (n) => n === unique.unique)
  t.equal(pf, unique.unique, `PFCOUNT ${hllKey} equals GET /unique`)

  // ClickHouse: history rows, collapsed as documented, add up to every total; the HTTP series too.
  const hist = await pollUntil(async () => await readClickHouseHistory(ch.url), (h) => differences(nonZero(expected), h.totals).length === 0)
  t.same(differences(nonZero(expected), hist.totals), [], `ClickHouse history adds up to the acked totals (${hist.rows} rows, ${hist.identities} distinct)`)
  t.ok(hist.progressRows > 0, 'progress rows are written')
  const series: string[] = []
  for (const key of expected.keys()) {
    const h = await historySum(node.base, key)
    if (h.status !== 200 || h.sum !== expected.get(key)) series.push(`${key}: ${h.status} sum ${h.sum}, expected ${String(expected.get(key))}`)
  }
  t.same(series, [], 'GET /history sums to each counter\'s value')

  // The example queries of docs/cluster-storage.md, as written there, run on this server.
  const perMinute = await clickhouseQuery<{ minute: string, delta: string }>(ch.url, `SELECT minute, sum(d) AS delta FROM (
      SELECT minute, partition, epoch, seq, any(delta) AS d FROM counter_history
      WHERE key = 'post:k2' AND minute >= now() - 3600
      GROUP BY minute, partition, epoch, seq
    ) GROUP BY minute ORDER BY minute`)
  t.equal(perMinute.reduce((s, r) => s + Number(r.delta), 0), expected.get('post:k2'), 'docs query: per-minute series of one counter')
  const day = (offset: number): string => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10)
  const hourly = await clickhouseQuery<{ hour: string, delta: string }>(ch.url, `SELECT toStartOfHour(minute) AS hour, sum(d) AS delta FROM (
      SELECT minute, partition, epoch, seq, any(delta) AS d FROM counter_history
      WHERE key = 'video:k3' AND minute >= toDateTime('${day(-1)} 00:00:00', 'UTC')
        AND minute < toDateTime('${day(2)} 00:00:00', 'UTC')
      GROUP BY minute, partition, epoch, seq
    ) GROUP BY hour ORDER BY hour`)
  t.equal(hourly.reduce((s, r) => s + Number(r.delta), 0), expected.get('video:k3'), 'docs query: hourly totals (UTC) of one counter')
  const top = await clickhouseQuery<{ key: string, delta: string }>(ch.url, `SELECT key, sum(d) AS delta FROM (
      SELECT key, minute, partition, epoch, seq, any(delta) AS d FROM counter_history
      WHERE key LIKE 'post:%' AND minute >= now() - 86400
      GROUP BY key, minute, partition, epoch, seq
    ) GROUP BY key ORDER BY delta DESC LIMIT 10`)
  const topExpected = [...expected].filter(([k]) => k.startsWith('post:')).map(([, v]) => v).sort((a, b) => b - a).slice(0, 10)
  t.same(top.map((r) => Number(r.delta)), topExpected, 'docs query: top 10 posts by net change')
  t.ok(top.every((r) => expected.get(r.key) === Number(r.delta)), 'each of them with its own total')

  // Schema made by the node on this server (Debian ships 18.16; CI installs the same package).
  const [version] = await clickhouseQuery<{ v: string }>(ch.url, 'SELECT version() AS v')
  t.comment(`ClickHouse ${version.v}`)
  const columns = await clickhouseQuery<{ name: string, type: string }>(ch.url, "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'counter_history'")
  t.same(columns.map((c) => `${c.name} ${c.type}`), ['key String', "minute DateTime('UTC')", 'partition UInt16', 'epoch UInt32', 'seq UInt64', 'delta Int64'], 'counter_history has the documented columns')
  const [engine] = await clickhouseQuery<{ engine: string }>(ch.url, "SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = 'counter_history'")
  t.equal(engine.engine, 'ReplacingMergeTree', 'counter_history is a ReplacingMergeTree')

  // SIGTERM drains; a new node process with an empty disk gets everything back from Redis + Kafka.
  t.equal(await node.stop(), 0, 'SIGTERM: exit code 0')
  node = await startNode(t, { env })
  t.same(differences(expected, await nodeValues(node.base, tally.keys())), [], 'a new node with an empty disk serves the same totals')
  const replayed = /"recordsReplayed":(\d+)/.exec(node.output())
  t.equal(replayed?.[1], '0', 'the final checkpoint held everything: no record applied again')
  // The new node's replay fed history again: nothing already in ClickHouse may count twice.
  r = await post(node.base, '/v1/counter/video/after/increment', { by: 3 })
  t.equal(r.status, 200)
  expected.set('video:after', 3)
  const hist2 = await pollUntil(async () => await readClickHouseHistory(ch.url), (h) => h.totals.get('video:after') === 3)
  t.same(differences(nonZero(expected), hist2.totals), [], 'history is still exact after a new node replayed the log')
  const log2 = await readKafkaLog(kafka.brokers, topic)
  t.same(differences(expected, log2.totals), [], 'Kafka totals still agree')
  t.ok([...log2.replicas].every((x) => x === 'main'))
})

t.test('Redis Cluster (3 masters): checkpoints spread over the cluster, a new node recovers from them after kill -9', async (t) => {
  const [kafka, cluster] = await Promise.all([startKafka(t), startRedisCluster(t)])
  const topic = uniqueName('e2e-rc')
  const env = {
    KAFKA_BROKERS: kafka.brokers.join(','),
    KAFKA_TOPIC: topic,
    REDIS_URL: cluster.urls.join(','),
    ACK_MODE: 'durable',
    CLUSTER_SESSION_MS: '3000', // the killed node leaves the ring soon, so the new one has it sooner
    CHECKPOINT_INTERVAL_MS: '300'
  }
  let node = await startNode(t, { env })
  const tally = new Tally()
  const stopAt = Date.now() + 1500
  await runLoad({ base: node.base, keys: 50, httpClients: 4, streams: 3, opsPerFrame: 40, until: () => Date.now() > stopAt, seed: 23, tally, clientIdPrefix: uniqueName('rc') })
  await actorIncrements(t, node.base, 'video', 'uniq', 300, 120, tally)
  const expected = await nodeValues(node.base, tally.keys())
  t.same(differences(tally.acked, expected), [], 'the node serves exactly the acked totals')

  const rc = redisClient(cluster.urls, true)
  t.teardown(() => { rc.disconnect() })
  const cps = await pollUntil(async () => await readRedisCheckpoints(rc), (c) => differences(nonZero(expected), c.values).length === 0)
  t.same(differences(nonZero(expected), cps.values), [], 'Redis Cluster checkpoints hold the acked totals')
  // The {p<n>} hash tags spread partitions over every master.
  const perNode = await Promise.all(cluster.nodes.map(async (n) => {
    const c = redisClient([n.url], false)
    try { return await c.dbsize() } finally { c.disconnect() }
  }))
  t.ok(perNode.every((n) => n > 0), `every master holds checkpoint keys (${perNode.join(', ')})`)
  const unique = await (await fetch(`${node.base}/v1/counter/video/uniq/unique`)).json() as { unique: number }
  const hllKey = `counterd:{p${partitionOf('video:uniq', PARTITIONS)}}:hll:video:uniq`
  t.equal(await pollUntil(async () => await rc.pfcount(hllKey), (n) => n === unique.unique), unique.unique, 'PFCOUNT on the cluster equals GET /unique')
  const log = await readKafkaLog(kafka.brokers, topic)
  t.same(differences(expected, log.totals), [], 'Kafka records add up to the acked totals')

  await node.kill9()
  node = await startNode(t, { env })
  t.same(differences(expected, await nodeValues(node.base, tally.keys())), [], 'a new node with an empty disk recovers every total from the cluster + Kafka')
  const u2 = await (await fetch(`${node.base}/v1/counter/video/uniq/unique`)).json() as { unique: number }
  t.equal(u2.unique, unique.unique, 'the unique count is recovered too')
  // And it owns the partitions under a higher epoch, so it keeps counting from there.
  const r = await post(node.base, '/v1/counter/post/k3/increment', { by: 2 })
  t.same(r.body, { type: 'post', id: 'k3', value: (expected.get('post:k3') ?? 0) + 2 })
})
