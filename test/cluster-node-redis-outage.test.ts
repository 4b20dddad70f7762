// Outages of Redis while a cluster-mode node is under load: one Redis stopped and restarted (with
// its AOF), hung, then wiped; a Redis Cluster master stopped and restarted. Acks go on (the log is
// in Kafka), reads are served, /ready and the logs name Redis; once it is back the checkpoints hold
// every total again, including counters changed only during the outage, and a new node with an
// empty disk recovers exactly from them.
import t from 'tap'
import { differences, redisClient, uniqueName } from './support/cluster-stores'
import { startKafka } from './support/kafka'
import { Tally } from './support/load'
import { queryValues, startNode } from './support/node-process'
import { backgroundLoad, checkAllAgree, post, stillCounting, waitLog, waitReadiness } from './support/outage'
import { sleep } from './support/process-control'
import { startRedisCluster, waitClusterOk } from './support/redis-cluster'
import { startControlledRedis } from './support/redis-server'

t.test('Redis stopped under load and restarted, hung, then wiped: acks go on, /ready and the logs name Redis; checkpoints complete again, a new node recovers exactly', async (t) => {
  const [kafka, redis] = await Promise.all([startKafka(t), startControlledRedis(t, { persistent: true })])
  const topic = uniqueName('outage-redis')
  const env = { KAFKA_BROKERS: kafka.brokers.join(','), KAFKA_TOPIC: topic, REDIS_URL: redis.url, CHECKPOINT_INTERVAL_MS: '300' }
  let node = await startNode(t, { env })
  const tally = new Tally()
  const load = backgroundLoad(node.base, 41, tally)
  await sleep(500)

  // Down: connections refused.
  await redis.stop('SIGKILL')
  const down = await waitReadiness(node.base, (r) => /^Redis: /.test(String(r.body.storage)))
  t.equal(down.status, 503, '/ready is 503 while Redis is down')
  t.match(down.body, { error: { code: 'storage_unavailable' }, storage: /^Redis: / }, `/ready names Redis: ${String(down.body.storage)}`)
  t.ok(await waitLog(node, /"msg":"checkpoint failed; will retry at the next interval"/), 'the log says a checkpoint failed')
  t.match(node.output(), /checkpoint[^\n]*Redis|Redis[^\n]*checkpoint/, 'and that it is Redis that failed')
  const ackedAtStop = tally.ackedOps
  // A counter changed only while Redis is down: its checkpoint must still be written afterwards.
  t.same((await post(node.base, '/v1/counter/video/only-while-redis-down/increment', { by: 5 })).body, { type: 'video', id: 'only-while-redis-down', value: 5 }, 'an increment is acknowledged while Redis is down (the log is Kafka)')
  tally.ack('video:only-while-redis-down', 5); tally.send('video:only-while-redis-down', 5)
  await stillCounting(t, node.base, 'post:probe-redis-down', tally, 'Redis down')
  await sleep(700) // a few more failed checkpoints
  t.ok(tally.ackedOps > ackedAtStop, `load acks go on while Redis is down (${ackedAtStop} → ${tally.ackedOps})`)
  await redis.restart()
  const up = await waitReadiness(node.base, (r) => r.status === 200)
  t.match(up.body, { status: 'ready', storage: 'ok' }, '/ready is 200 again once a checkpoint succeeds')

  // Hung: SIGSTOP. A checkpoint save times out after 5 s (documented), then /ready says so.
  redis.pause()
  const hung = await waitReadiness(node.base, (r) => /^Redis: /.test(String(r.body.storage)))
  t.equal(hung.status, 503, '/ready is 503 while Redis does not answer')
  t.match(hung.body, { storage: /^Redis: / }, `/ready names a hung Redis: ${String(hung.body.storage)}`)
  await stillCounting(t, node.base, 'post:probe-redis-hung', tally, 'Redis hung')
  redis.resume()
  t.match((await waitReadiness(node.base, (r) => r.status === 200)).body, { storage: 'ok' }, '/ready is 200 again once Redis answers')

  // Wiped (what a restart without persistence, or a failover to an empty replica, does): the
  // checkpoints must be rewritten whole, not continued incrementally over nothing.
  const rc = redisClient([redis.url], false)
  await rc.flushall()
  rc.disconnect()
  t.ok(await waitLog(node, /Redis lost the checkpoint of partition/), 'the log says Redis lost the checkpoints')
  t.match((await waitReadiness(node.base, (r) => r.status === 200)).body, { storage: 'ok' }, '/ready is 200 once the checkpoints are rewritten')
  await sleep(300)
  await load.stop()
  t.ok(tally.ackedOps > 0)
  // Redis holds every total again (including the counter touched only during the outage).
  const values = await checkAllAgree(t, { base: node.base, tally, brokers: kafka.brokers, topic, redisUrl: redis.url })

  // And recovery from those checkpoints is exact: kill -9, a new node with an empty disk.
  await node.kill9()
  node = await startNode(t, { env })
  t.same(differences(values, await queryValues(node.base, tally.keys())), [], 'a new node recovers every total after the Redis outages')
})

t.test('a Redis Cluster master stopped under load, then restarted: acks go on, /ready names Redis; checkpoints complete again, a new node recovers exactly', async (t) => {
  const [kafka, cluster] = await Promise.all([startKafka(t), startRedisCluster(t, { persistent: true })])
  const topic = uniqueName('outage-rc')
  const env = { KAFKA_BROKERS: kafka.brokers.join(','), KAFKA_TOPIC: topic, REDIS_URL: cluster.urls.join(','), CHECKPOINT_INTERVAL_MS: '300' }
  let node = await startNode(t, { env })
  const tally = new Tally()
  const load = backgroundLoad(node.base, 61, tally)
  await sleep(500)

  const victim = cluster.nodes[0]
  await victim.stop('SIGKILL')
  const down = await waitReadiness(node.base, (r) => /^Redis: /.test(String(r.body.storage)))
  t.equal(down.status, 503, '/ready is 503 while a master is down')
  t.match(down.body, { error: { code: 'storage_unavailable' }, storage: /^Redis: / }, `/ready names Redis: ${String(down.body.storage)}`)
  t.ok(await waitLog(node, /"msg":"checkpoint failed; will retry at the next interval"/), 'the log says a checkpoint failed')
  // Counters changed only while a third of the partitions cannot be checkpointed.
  for (let i = 0; i < 20; i++) {
    const r = await post(node.base, `/v1/counter/video/rc-out-${i}/increment`, { by: i + 1 })
    tally.send(`video:rc-out-${i}`, i + 1)
    if (r.status === 200) tally.ack(`video:rc-out-${i}`, i + 1)
  }
  t.equal(tally.acked.get('video:rc-out-19'), 20, 'increments are acknowledged while a master is down')
  await stillCounting(t, node.base, 'post:probe-rc-down', tally, 'Redis Cluster master down')
  await sleep(500)
  await victim.restart()
  for (const n of cluster.nodes) await waitClusterOk(n.port)
  const up = await waitReadiness(node.base, (r) => r.status === 200)
  t.match(up.body, { status: 'ready', storage: 'ok' }, '/ready is 200 again once checkpoints succeed')
  await sleep(300)
  await load.stop()
  const values = await checkAllAgree(t, { base: node.base, tally, brokers: kafka.brokers, topic, redisUrl: cluster.urls[0], redisCluster: cluster.urls })
  await node.kill9()
  node = await startNode(t, { env })
  t.same(differences(values, await queryValues(node.base, tally.keys())), [], 'a new node recovers every total after the outage')
})
