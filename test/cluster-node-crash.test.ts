// kill -9 of a cluster-mode node under load (ack=durable), then a new node process with an empty
// local disk and the same servers: it must recover every acknowledged increment from Redis + Kafka,
// exactly once (no key above what was sent, every key equal to the sum of the records in Kafka),
// and the Redis checkpoints and ClickHouse history must end up agreeing with it.
import t, { type Test } from 'tap'
import { startClickHouse } from './support/clickhouse'
import { differences, pollUntil, readClickHouseHistory, readKafkaLog, readRedisCheckpoints, redisClient, uniqueName } from './support/cluster-stores'
import { startKafka } from './support/kafka'
import { Tally, rng, runLoad } from './support/load'
import { queryValues, startNode, type NodeProcess } from './support/node-process'
import { sleep } from './support/process-control'
import { startRedis } from './support/redis'
import { startRedisCluster } from './support/redis-cluster'

function checkBounds (t: Test, tally: Tally, values: Record<string, number>, when: string): void {
  const below: string[] = []
  const above: string[] = []
  for (const key of tally.keys()) {
    const v = values[key]
    if (v < (tally.acked.get(key) ?? 0)) below.push(`${key}: ${v} < acked ${String(tally.acked.get(key))}`)
    if (v > (tally.sent.get(key) ?? 0)) above.push(`${key}: ${v} > sent ${String(tally.sent.get(key))}`)
  }
  t.same(below, [], `${when}: no key lost an acknowledged increment`)
  t.same(above, [], `${when}: no key counts more than was sent`)
}

function nonZero (m: ReadonlyMap<string, number>): Map<string, number> {
  return new Map([...m].filter(([, v]) => v !== 0))
}

interface CrashRun { node: NodeProcess, tally: Tally, values: Map<string, number> }

/** `rounds` times: load, kill -9 at a random moment, a new node on a fresh data dir, checks. */
async function crashRounds (t: Test, env: Record<string, string>, brokers: string[], topic: string, rounds: number, seed: number): Promise<CrashRun> {
  const rand = rng(seed)
  let node = await startNode(t, { env })
  const tally = new Tally()
  let values = new Map<string, number>()
  for (let round = 1; round <= rounds; round++) {
    let killed = false
    const killAfter = 300 + Math.floor(rand() * 1200)
    const acked = tally.ackedOps
    const load = runLoad({ base: node.base, keys: 60, httpClients: 8, streams: 3, opsPerFrame: 40, until: () => killed, seed: seed + round, tally, clientIdPrefix: uniqueName(`crash-${round}`) })
    // The kill moment counts from the first ack of the round (a loaded machine may take a while to give it).
    for (let waited = 0; tally.ackedOps === acked && waited < 30_000; waited += 20) await sleep(20)
    await sleep(killAfter)
    await node.kill9()
    killed = true
    await load
    t.ok(tally.ackedOps > acked, `round ${round}: killed ${killAfter} ms after the round's first ack, with ${tally.ackedOps} ops acknowledged so far`)
    // Not a restart: a new process with an empty data dir, so everything comes from the servers.
    node = await startNode(t, { env })
    const got = await queryValues(node.base, tally.keys())
    checkBounds(t, tally, got, `round ${round}`)
    values = new Map(Object.entries(got))
    const log = await readKafkaLog(brokers, topic)
    t.same(differences(log.totals, values, tally.keys()), [], `round ${round}: each counter equals the sum of the distinct records in Kafka (${log.records} records, ${log.copies} retry copies): nothing applied twice or skipped`)
    t.same(log.layoutErrors, [], `round ${round}: records of each partition in (epoch, seq) order`)
    t.same(log.truncated, [], 'Kafka kept the whole log (nothing dropped by retention)')
    // What the recovered node says is now the truth: an unacked op it kept counts as sent and acked.
    for (const key of tally.keys()) { tally.acked.set(key, values.get(key) ?? 0); tally.sent.set(key, values.get(key) ?? 0) }
  }
  return { node, tally, values }
}

t.test('kill -9 under load (one Redis + ClickHouse): a new node with an empty disk recovers every acked increment exactly once', async (t) => {
  const seed = Number(process.env.CRASH_SEED ?? Date.now() % 100000)
  t.comment(`seed ${seed} (CRASH_SEED=${seed} replays the kill moments)`)
  const [kafka, redis, ch] = await Promise.all([startKafka(t), startRedis(t), startClickHouse(t)])
  const topic = uniqueName('crash')
  const env = {
    KAFKA_BROKERS: kafka.brokers.join(','),
    KAFKA_TOPIC: topic,
    REDIS_URL: redis.url,
    CLICKHOUSE_URL: ch.url,
    ACK_MODE: 'durable',
    CLUSTER_SESSION_MS: '3000', // each killed node leaves the ring soon, so the next one has it sooner
    CHECKPOINT_INTERVAL_MS: '300', // kills also land during checkpoints and history flushes
    HISTORY_FLUSH_MS: '200'
  }
  const { values } = await crashRounds(t, env, kafka.brokers, topic, 3, seed)

  // The recovered node checkpointed everything it recovered.
  const rc = redisClient([redis.url], false)
  t.teardown(() => { rc.disconnect() })
  const cps = await readRedisCheckpoints(rc)
  t.same(differences(nonZero(values), cps.values), [], 'Redis checkpoints hold the recovered totals')
  // History: rows the killed nodes had not flushed are rebuilt from the replayed log, rows they had
  // flushed are not written twice (or are collapsed by their identity).
  const hist = await pollUntil(async () => await readClickHouseHistory(ch.url), (h) => differences(nonZero(values), h.totals).length === 0)
  t.same(differences(nonZero(values), hist.totals), [], `ClickHouse history adds up to every recovered total across 3 crashes (${hist.rows} rows, ${hist.identities} distinct)`)
})

t.test('kill -9 under load with Redis Cluster checkpoints: a new node recovers every acked increment exactly once', async (t) => {
  const seed = Number(process.env.CRASH_SEED ?? Date.now() % 100000) + 7
  t.comment(`seed ${seed}`)
  const [kafka, cluster] = await Promise.all([startKafka(t), startRedisCluster(t)])
  const topic = uniqueName('crash-rc')
  const env = {
    KAFKA_BROKERS: kafka.brokers.join(','),
    KAFKA_TOPIC: topic,
    REDIS_URL: cluster.urls[0], // one node: the cluster is detected
    ACK_MODE: 'durable',
    CLUSTER_SESSION_MS: '3000',
    CHECKPOINT_INTERVAL_MS: '300'
  }
  const { values } = await crashRounds(t, env, kafka.brokers, topic, 1, seed)
  const rc = redisClient(cluster.urls, true)
  t.teardown(() => { rc.disconnect() })
  const cps = await readRedisCheckpoints(rc)
  t.same(differences(nonZero(values), cps.values), [], 'Redis Cluster checkpoints hold the recovered totals')
})
