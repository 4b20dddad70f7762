// Outages of Kafka and ClickHouse while a cluster-mode node is under load: Kafka hung (SIGSTOP:
// the mock keeps its data only in memory), also with the in-flight bound reached; ClickHouse
// stopped and restarted, then hung past its request timeout. Throughout, the node keeps serving
// reads and keeps counting; durable acks wait for Kafka (shedding past MAX_INFLIGHT_OPS) and go on
// without ClickHouse; /ready and the logs name the failing server; once it is back, every total is
// exact in the node, Kafka, Redis and ClickHouse. Also: a node that cannot reach a server at start
// says so and exits non-zero. Redis outages: cluster-node-redis-outage.test.ts.
import t from 'tap'
import { startClickHouse } from './support/clickhouse'
import { historySum, pollUntil, readKafkaLog, readiness, uniqueName } from './support/cluster-stores'
import { startKafka } from './support/kafka'
import { Tally } from './support/load'
import { getValue, queryValues, startNode } from './support/node-process'
import { backgroundLoad, checkAllAgree, post, stillCounting, waitLog, waitReadiness } from './support/outage'
import { freePort } from './support/ports'
import { sleep } from './support/process-control'
import { startRedis } from './support/redis'
import { StreamClient } from './support/stream-client'

t.test('Kafka hung (SIGSTOP) under load: reads served, increments applied, acks wait, /ready names Kafka; all delivered once after', async (t) => {
  const [kafka, redis, ch] = await Promise.all([startKafka(t), startRedis(t), startClickHouse(t)])
  const topic = uniqueName('outage-kafka')
  // This test runs longest: commits of 25 ms keep its log within what the mock broker retains (~5 MB per partition).
  const env = { KAFKA_BROKERS: kafka.brokers.join(','), KAFKA_TOPIC: topic, REDIS_URL: redis.url, CLICKHOUSE_URL: ch.url, CHECKPOINT_INTERVAL_MS: '300', HISTORY_FLUSH_MS: '200', FLUSH_INTERVAL_MS: '25' }
  const node = await startNode(t, { env })
  const tally = new Tally()
  const load = backgroundLoad(node.base, 31, tally)
  await sleep(500)

  kafka.pause()
  const down = await waitReadiness(node.base, (r) => /^Kafka: /.test(String(r.body.storage)))
  t.equal(down.status, 503, '/ready is 503 while Kafka does not confirm appends')
  t.equal(down.retryAfter, '1', 'with Retry-After')
  t.match(down.body, { error: { code: 'storage_unavailable' }, storage: /^Kafka: / }, `/ready names Kafka: ${String(down.body.storage)}`)
  t.ok(await waitLog(node, /"msg":"Kafka has not confirmed an append/), 'the log says Kafka is not confirming')
  const ackedAtPause = tally.ackedOps
  const during = post(node.base, '/v1/counter/video/during-kafka/increment', { by: 4 })
  const v = await pollUntil(async () => await getValue(node.base, 'video', 'during-kafka'), (x) => x === 4, 10_000)
  t.equal(v, 4, 'reads are served and an increment is applied while its ack waits for Kafka')
  t.type(await getValue(node.base, 'post', 'k1'), 'number', 'reads of loaded counters are answered')
  await sleep(300)

  kafka.resume()
  const up = await waitReadiness(node.base, (r) => r.status === 200)
  t.match(up.body, { status: 'ready', storage: 'ok' }, '/ready is 200 again once Kafka confirms')
  t.same((await during).body, { type: 'video', id: 'during-kafka', value: 4 }, 'the held increment is acknowledged once Kafka is back')
  tally.ack('video:during-kafka', 4); tally.send('video:during-kafka', 4)
  t.ok(await waitLog(node, /"msg":"Kafka accepts appends again"/), 'the log says Kafka is back')
  await sleep(300)
  await load.stop()
  t.ok(tally.ackedOps > ackedAtPause, `acks resumed after the outage (${ackedAtPause} → ${tally.ackedOps})`)
  await checkAllAgree(t, { base: node.base, tally, brokers: kafka.brokers, topic, redisUrl: redis.url, clickhouseUrl: ch.url })
})

t.test('Kafka hung with the in-flight bound reached: writes shed with 503 + Retry-After (HTTP) and an error ack (WebSocket), reads still served', async (t) => {
  const [kafka, redis] = await Promise.all([startKafka(t), startRedis(t)])
  const topic = uniqueName('outage-shed')
  const env = { KAFKA_BROKERS: kafka.brokers.join(','), KAFKA_TOPIC: topic, REDIS_URL: redis.url, CHECKPOINT_INTERVAL_MS: '300', MAX_INFLIGHT_OPS: '100' }
  const node = await startNode(t, { env })
  t.same((await post(node.base, '/v1/counter/post/before/increment', { by: 2 })).body, { type: 'post', id: 'before', value: 2 })
  kafka.pause()
  // Exactly the bound: 100 single increments, all admitted, all waiting for Kafka.
  const held = Array.from({ length: 100 }, async (_, i) => await post(node.base, `/v1/counter/post/held${i % 10}/increment`, { by: 1 }))
  const metric = await pollUntil(async () => await (await fetch(`${node.base}/metrics`)).text(), (m) => /counterd_inflight_ops 100\n/.test(m), 10_000)
  t.match(metric, /counterd_inflight_ops 100\n/, '100 ops in flight: the bound')
  const shed = await post(node.base, '/v1/counter/post/shed/increment', { by: 1 })
  t.equal(shed.status, 503, 'one more increment is shed with 503')
  t.equal(shed.retryAfter, '1', 'with Retry-After')
  t.equal(shed.body.error.code, 'overloaded')
  const ws = await StreamClient.connect(node.base)
  t.teardown(() => { ws.close() })
  const ack = await ws.sendJson(1, [['post', 'shed', 1]])
  t.match(ack, { seq: 1, ok: false, error: { code: 'overloaded' } }, 'a stream frame gets an overloaded error ack')
  t.match(await (await fetch(`${node.base}/metrics`)).text(), /counterd_inflight_ops 100\n/, 'shedding kept the in-flight ops at the bound')
  // Reads do not wait for the log: they must not be refused because writes are waiting for Kafka.
  const read = await fetch(`${node.base}/v1/counter/post/before`)
  t.same({ status: read.status, body: await read.json() }, { status: 200, body: { type: 'post', id: 'before', value: 2 } }, 'a read is served while writes are shed')
  const q = await post(node.base, '/v1/counters/query', { keys: ['post:before', 'post:held0'] })
  t.same(q, { status: 200, retryAfter: null, body: { values: { 'post:before': 2, 'post:held0': 10 } } }, 'a multi-key read is served while writes are shed')

  kafka.resume()
  const results = await Promise.all(held)
  t.same(results.filter((r) => r.status !== 200), [], 'every held increment is acknowledged once Kafka is back')
  t.same(new Set(results.map((r) => r.body.value)), new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 'each one applied once, in some order')
  t.same(await queryValues(node.base, ['post:held0', 'post:held9', 'post:shed', 'post:before']), { 'post:held0': 10, 'post:held9': 10, 'post:shed': 0, 'post:before': 2 }, 'shed writes changed nothing')
  const log = await readKafkaLog(kafka.brokers, topic)
  t.equal(log.totals.get('post:held3'), 10, 'Kafka holds each held increment once')
  t.equal(log.totals.get('post:shed'), undefined, 'and nothing of the shed ones')
})

t.test('ClickHouse stopped and restarted, then hung, under load: counting unaffected, /ready 200 with the history error, history exact after', async (t) => {
  const [kafka, redis, ch] = await Promise.all([startKafka(t), startRedis(t), startClickHouse(t)])
  const topic = uniqueName('outage-ch')
  // This test runs longest: commits of 25 ms keep its log within what the mock broker retains (~5 MB per partition).
  const env = { KAFKA_BROKERS: kafka.brokers.join(','), KAFKA_TOPIC: topic, REDIS_URL: redis.url, CLICKHOUSE_URL: ch.url, CHECKPOINT_INTERVAL_MS: '300', HISTORY_FLUSH_MS: '200', FLUSH_INTERVAL_MS: '25' }
  const node = await startNode(t, { env })
  const tally = new Tally()
  const load = backgroundLoad(node.base, 51, tally)
  await sleep(500)

  await ch.stop('SIGTERM')
  const down = await waitReadiness(node.base, (r) => r.body.history !== 'ok' && r.body.storage === 'ok')
  t.equal(down.status, 200, 'history is not needed for acks: /ready stays 200')
  t.match(down.body, { status: 'ready', storage: 'ok', history: /ClickHouse/ }, `/ready reports the history error: ${String(down.body.history)}`)
  t.ok(await waitLog(node, /"msg":"history flush failed; retrying the same rows"/), 'the log says the history flush failed')
  const ackedAtStop = tally.ackedOps
  await stillCounting(t, node.base, 'post:probe-ch-down', tally, 'ClickHouse down')
  const q = await fetch(`${node.base}/v1/counter/post/probe-ch-down/history`)
  t.equal(q.status, 503, 'a history query fails while ClickHouse is down')
  t.equal(((await q.json()) as { error: { code: string } }).error.code, 'storage_unavailable')
  await sleep(500)
  t.ok(tally.ackedOps > ackedAtStop, `acks go on while ClickHouse is down (${ackedAtStop} → ${tally.ackedOps})`)
  await ch.restart()
  t.match((await waitReadiness(node.base, (r) => r.body.history === 'ok')).body, { status: 'ready', history: 'ok' }, 'history ok again after the restart')
  t.ok(await waitLog(node, /"msg":"history flushes succeed again"/), 'the log says history flushes succeed again')

  ch.pause()
  const hung = await waitReadiness(node.base, (r) => r.body.history !== 'ok' && r.body.storage === 'ok')
  t.equal(hung.status, 200, '/ready stays 200 while ClickHouse hangs')
  t.match(hung.body, { status: 'ready', storage: 'ok', history: /ClickHouse/ }, `/ready reports a hung ClickHouse: ${String(hung.body.history)}`)
  t.ok(await waitLog(node, /"msg":"ClickHouse has not confirmed a history insert/), 'the log says ClickHouse is not confirming')
  await stillCounting(t, node.base, 'post:probe-ch-hung', tally, 'ClickHouse hung')
  // Until the insert times out (10 s): ClickHouse still holds it and applies it when it wakes up,
  // while the node sends the same rows again. Those copies must not count twice.
  const timedOut = await waitReadiness(node.base, (r) => /insert into counter_history failed/.test(String(r.body.history)))
  t.match(timedOut.body, { status: 'ready', storage: 'ok', history: /failed/ }, `the hung insert timed out and is retried: ${String(timedOut.body.history)}`)
  ch.resume()
  t.match((await waitReadiness(node.base, (r) => r.body.history === 'ok')).body, { history: 'ok' }, 'history ok again once ClickHouse answers')
  await sleep(300)
  await load.stop()
  const values = await checkAllAgree(t, { base: node.base, tally, brokers: kafka.brokers, topic, redisUrl: redis.url, clickhouseUrl: ch.url })
  const series: string[] = []
  for (const key of ['post:probe-ch-down', 'post:probe-ch-hung', 'video:k7']) {
    const h = await historySum(node.base, key)
    if (h.status !== 200 || h.sum !== (values.get(key) ?? 0)) series.push(`${key}: ${h.status} ${h.sum} != ${String(values.get(key))}`)
  }
  t.same(series, [], 'GET /history sums to the values after the outages')
})

t.test('a node that cannot reach Kafka, Redis or ClickHouse at start says so and exits non-zero', async (t) => {
  const [kafka, redis] = await Promise.all([startKafka(t), startRedis(t)])
  const closed = `127.0.0.1:${await freePort()}`
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['Kafka', { KAFKA_BROKERS: closed, REDIS_URL: redis.url }, /storage_unavailable[^\n]*Kafka|Kafka[^\n]*storage_unavailable/],
    ['Redis', { KAFKA_BROKERS: kafka.brokers.join(','), REDIS_URL: `redis://${closed}` }, /storage_unavailable[^\n]*Redis|Redis[^\n]*storage_unavailable/],
    ['ClickHouse', { KAFKA_BROKERS: kafka.brokers.join(','), REDIS_URL: redis.url, CLICKHOUSE_URL: `http://${closed}` }, /storage_unavailable[^\n]*ClickHouse|ClickHouse[^\n]*storage_unavailable/]
  ]
  await Promise.all(cases.map(async ([name, env, re]) => {
    const node = await startNode(t, { env: { ...env, KAFKA_TOPIC: uniqueName('start') }, waitReady: false })
    const exited = new Promise<number | null>((resolve) => {
      if (node.proc.exitCode !== null) resolve(node.proc.exitCode)
      else node.proc.once('exit', (code) => resolve(code))
    })
    const r = await readiness(node.base).catch(() => null)
    if (r !== null) t.equal(r.status, 503, `${name} unreachable: /ready is 503 while the node tries`)
    const code = await exited
    t.not(code, 0, `${name} unreachable: the node exits non-zero (${String(code)})`)
    t.not(code, null, `${name} unreachable: it exits by itself`)
    t.match(node.output(), /"level":60/, `${name} unreachable: a fatal log line`)
    t.match(node.output(), re, `${name} unreachable: the log says storage_unavailable and names ${name}`)
  }))
})
