// Event ingestion from Kafka (INGEST_TOPIC) through real node processes and real producers on
// librdkafka's mock cluster: the event codec as a table, then exact counts under redelivery
// (duplicate event_ids, and the whole topic delivered again to a restarted consumer), kill -9
// while events stream in, and poison messages (dead-letter topic with the reason, the rest
// counted, metrics count them), and a cluster-storage node recovered on an empty disk.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Kafka, logLevel, type Producer } from 'kafkajs'
import t, { type Test } from 'tap'
import { CounterdError } from '../src/core/errors'
import { decodeEvent, eventTag } from '../src/core/ingest-event'
import { pollUntil, uniqueName } from './support/cluster-stores'
import { startKafka, type KafkaMock } from './support/kafka'
import { startRedis } from './support/redis'
import { getValue, queryValues, startNode, type NodeProcess } from './support/node-process'

interface Event { event_id: string | number, action: string, item_type: string | number, item_id: string | number, user_id?: string | number, by?: number, timestamp?: string }

async function call (base: string, path: string): Promise<any> {
  const r = await fetch(base + path)
  return await r.json()
}

/** The value of one metric line (labels included in `name`), 0 when absent. */
async function metric (base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text()
  for (const line of text.split('\n')) {
    if (line.startsWith(name + ' ')) return Number(line.slice(name.length + 1))
  }
  return 0
}

async function metricsText (base: string): Promise<string> {
  return await (await fetch(`${base}/metrics`)).text()
}

async function producerFor (t: Test, kafka: KafkaMock): Promise<Producer> {
  const client = new Kafka({ clientId: 'ingest-test', brokers: kafka.brokers, logLevel: logLevel.NOTHING })
  const producer = client.producer({ idempotent: false, allowAutoTopicCreation: true })
  await producer.connect()
  t.teardown(async () => { await producer.disconnect() })
  return producer
}

/**
 * Events keyed by their item, so the events of one item keep their order (a like before its
 * unlike), or all by `key` (one Kafka partition).
 */
async function produce (producer: Producer, topic: string, events: Array<Event | string | null>, key?: string): Promise<void> {
  for (let i = 0; i < events.length; i += 500) {
    await producer.send({
      topic,
      acks: -1,
      messages: events.slice(i, i + 500).map((e) => {
        if (e === null || typeof e === 'string') return { key: key ?? 'raw', value: e }
        return { key: key ?? `${e.item_type}:${e.item_id}`, value: JSON.stringify(e) }
      })
    })
  }
}

/** Commits offset 0 for every partition of `topic` in `group` (whose members are all gone). */
async function rewindGroup (kafka: KafkaMock, group: string, topic: string): Promise<void> {
  const client = new Kafka({ clientId: 'ingest-test-rewind', brokers: kafka.brokers, logLevel: logLevel.NOTHING })
  const admin = client.admin()
  await admin.connect()
  const partitions = (await admin.fetchTopicOffsets(topic)).map((p) => p.partition)
  await admin.disconnect()
  const consumer = client.consumer({ groupId: group, sessionTimeout: 6000, heartbeatInterval: 500 })
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic] })
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()))
    // Takes nothing: batches are neither resolved nor committed.
    await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: async () => {} })
    await joined
    await consumer.commitOffsets(partitions.map((partition) => ({ topic, partition, offset: '0' })))
  } finally {
    await consumer.disconnect()
  }
}

function ingestEnv (kafka: KafkaMock, topic: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    INGEST_TOPIC: topic,
    INGEST_BROKERS: kafka.brokers.join(','),
    INGEST_GROUP: uniqueName('group'),
    INGEST_SESSION_TIMEOUT_MS: '6000',
    WORKERS: '2',
    ...extra
  }
}

t.test('the event codec', async (t) => {
  // The seed's like event, exactly.
  const seed = '{"event_id": "uuid", "user_id": 123, "item_id": 456, "item_type": 1, "action": "like", "timestamp": "2024-01-15T10:30:00Z"}'
  const ev = decodeEvent(Buffer.from(seed))
  t.same(ev, { eventId: 'uuid', action: 'like', key: '1:456', user: '123', by: 0 })
  t.equal(eventTag(ev as never), '1:456\n\nuuid')
  t.same(decodeEvent('{"event_id":7,"action":"view","item_type":"post","item_id":"9"}'), { eventId: '7', action: 'view', key: 'post:9', user: null, by: 1 })
  t.same(decodeEvent('{"event_id":"e","action":"view","item_type":"post","item_id":9,"user_id":5}'), { eventId: 'e', action: 'view', key: 'post:9', user: '5', by: 1 })
  t.same(decodeEvent('{"event_id":"e","action":"increment","item_type":"post","item_id":9,"by":-4,"timestamp":1705314600000}'), { eventId: 'e', action: 'increment', key: 'post:9', user: null, by: -4 })
  t.same(decodeEvent('{"event_id":"e","action":"unlike","item_type":"post","item_id":"9","user_id":"u1","extra":{"x":1}}'), { eventId: 'e', action: 'unlike', key: 'post:9', user: 'u1', by: 0 })

  const bad: Array<[Buffer | string | null, string, RegExp]> = [
    [null, 'invalid_event', /no value/],
    ['', 'invalid_event', /no value/],
    ['{"event_id":', 'malformed_json', /not valid JSON/],
    ['[1,2]', 'invalid_event', /JSON object/],
    ['{"action":"like","item_type":"post","item_id":1,"user_id":1}', 'invalid_event_id', /event_id/],
    ['{"event_id":"","action":"view","item_type":"post","item_id":1}', 'invalid_event_id', /event_id/],
    ['{"event_id":-1,"action":"view","item_type":"post","item_id":1}', 'invalid_event_id', /event_id/],
    ['{"event_id":"a b","action":"view","item_type":"post","item_id":1}', 'invalid_event_id', /event_id/],
    ['{"event_id":"e","action":"share","item_type":"post","item_id":1}', 'invalid_event', /action must be one of like, unlike, view, increment, got "share"/],
    ['{"event_id":"e","item_type":"post","item_id":1}', 'invalid_event', /action/],
    ['{"event_id":"e","action":"like","item_type":"post","item_id":1}', 'invalid_user_id', /user_id is missing/],
    ['{"event_id":"e","action":"like","item_type":"post","item_id":-456,"user_id":1}', 'invalid_id', /item_id .*got -456/],
    ['{"event_id":"e","action":"view","item_type":1.5,"item_id":1}', 'invalid_type', /item_type/],
    ['{"event_id":"e","action":"view","item_type":"post","item_id":1,"user_id":-2}', 'invalid_user_id', /user_id/],
    ['{"event_id":"e","action":"increment","item_type":"post","item_id":1}', 'invalid_delta', /needs "by"/],
    ['{"event_id":"e","action":"increment","item_type":"post","item_id":1,"by":1.5}', 'invalid_delta', /by/],
    ['{"event_id":"e","action":"view","item_type":"post","item_id":1,"timestamp":"yesterday"}', 'invalid_event', /timestamp/]
  ]
  for (const [value, code, message] of bad) {
    const r = decodeEvent(value)
    t.ok(r instanceof CounterdError, `${String(value)}: refused`)
    t.equal((r as CounterdError).code, code, `${String(value)}: ${code}`)
    t.match((r as CounterdError).message, message)
  }
})

t.test('exact counts under redelivery: duplicate event_ids, then the whole topic again', async (t) => {
  const kafka = await startKafka(t)
  const topic = uniqueName('events')
  const producer = await producerFor(t, kafka)
  const events: Event[] = []
  for (let i = 0; i < 200; i++) events.push({ event_id: `v-${i}`, action: 'view', item_type: 'post', item_id: i % 5, user_id: i % 17 })
  for (let i = 0; i < 10; i++) events.push({ event_id: `inc-${i}`, action: 'increment', item_type: 'video', item_id: '9', by: 7 })
  for (let u = 1; u <= 30; u++) events.push({ event_id: `like-${u}`, action: 'like', item_type: 1, item_id: 456, user_id: u, timestamp: '2024-01-15T10:30:00Z' })
  for (let u = 1; u <= 10; u++) events.push({ event_id: 900 + u, action: 'unlike', item_type: 1, item_id: 456, user_id: u })
  // Every event twice (the second copy later in the topic), every tenth a third time.
  const copies = [...events, ...events, ...events.filter((_, i) => i % 10 === 0)]
  await produce(producer, topic, copies)
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-ingest-'))
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  // One consumer (shard 0) for the whole topic; the other tests run one per shard (the default).
  const env = ingestEnv(kafka, topic, { INGEST_CONSUMERS: '1' })
  let node: NodeProcess = await startNode(t, { env, dataDir })

  const seen = async (): Promise<number> => await metric(node.base, 'counterd_ingest_events_total') + await metric(node.base, 'counterd_ingest_duplicates_total')
  t.equal(await pollUntil(seen, (n) => n === copies.length, 60_000), copies.length, 'every message was taken')
  const check = async (t: Test, when: string): Promise<void> => {
    const values = await queryValues(node.base, ['post:0', 'post:1', 'post:2', 'post:3', 'post:4', 'video:9'])
    t.same(values, { 'post:0': 40, 'post:1': 40, 'post:2': 40, 'post:3': 40, 'post:4': 40, 'video:9': 70 }, `${when}: each view and increment counted once`)
    t.same(await call(node.base, '/v1/count?item_type=1&item_id=456'), { item_id: '456', item_type: '1', count: 20 }, `${when}: 30 likes − 10 unlikes`)
    t.equal((await call(node.base, '/v1/has-liked?user_id=5&item_type=1&item_id=456')).liked, false)
    t.equal((await call(node.base, '/v1/has-liked?user_id=25&item_type=1&item_id=456')).liked, true)
    t.equal((await call(node.base, '/v1/counter/post/0/unique')).unique, 17, `${when}: a view's user_id is its actor`)
  }
  await check(t, 'first delivery')
  t.equal(await metric(node.base, 'counterd_ingest_events_total'), events.length, 'events applied: each once')
  t.equal(await metric(node.base, 'counterd_ingest_duplicates_total'), copies.length - events.length, 'the copies were recognised')

  // The consumer goes away cleanly and the group's committed offsets are moved back to the start
  // (by a member of the same group: the mock lacks the DescribeGroups call admin.setOffsets makes),
  // so the restarted node gets every message again, as after a crash before any offset commit.
  t.equal(await node.stop(), 0)
  await rewindGroup(kafka, env.INGEST_GROUP, topic)
  node = await startNode(t, { env, dataDir })
  t.equal(await pollUntil(seen, (n) => n === copies.length, 60_000), copies.length, 'every message was delivered again')
  t.equal(await metric(node.base, 'counterd_ingest_events_total'), 0, 'and none applied again')
  await check(t, 'after redelivery of the whole topic')
})

t.test('kill -9 while events stream in (two consumers): every event counted exactly once after restart', async (t) => {
  const kafka = await startKafka(t)
  const topic = uniqueName('events')
  const producer = await producerFor(t, kafka)
  const keys = 50
  const total = 30_000
  const events: Event[] = Array.from({ length: total }, (_, i) => ({ event_id: `k-${i}`, action: i % 3 === 0 ? 'increment' : 'view', item_type: 'clip', item_id: i % keys, by: i % 3 === 0 ? 2 : undefined }))
  const expected = new Map<string, number>()
  for (const e of events) expected.set(`clip:${e.item_id}`, (expected.get(`clip:${e.item_id}`) ?? 0) + (e.action === 'increment' ? 2 : 1))
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-ingest-'))
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  // Two consumers (shards 0 and 1, the default), each a member of the group.
  const env = ingestEnv(kafka, topic)
  await produce(producer, topic, events.slice(0, 2000))
  let node: NodeProcess = await startNode(t, { env, dataDir })
  // The rest streams in while the node consumes; it dies once about a third is in.
  const streaming = produce(producer, topic, events.slice(2000))
  const applied = await pollUntil(async () => await metric(node.base, 'counterd_ingest_events_total'), (n) => n >= 10_000, 60_000, 5)
  t.ok(applied >= 10_000, `killed after ${applied} events applied`)
  await node.kill9()
  await streaming
  node = await startNode(t, { env, dataDir })
  const sum = async (): Promise<number> => Object.values(await queryValues(node.base, [...expected.keys()])).reduce((a, b) => a + b, 0)
  const want = [...expected.values()].reduce((a, b) => a + b, 0)
  t.equal(await pollUntil(sum, (n) => n >= want, 60_000), want, 'the total over every counter')
  // Once the sum is reached, anything counted twice would show as a larger value: look again after the lag is 0.
  await pollUntil(async () => await metricsText(node.base), (text) => /counterd_ingest_lag_messages\{[^}]*\} 0\n/.test(text) && !/counterd_ingest_lag_messages\{[^}]*\} [1-9]/.test(text), 30_000)
  const values = await queryValues(node.base, [...expected.keys()])
  t.same(values, Object.fromEntries(expected), 'each counter exact')
})

t.test('poison messages go to the dead-letter topic with the reason; the rest count', async (t) => {
  const kafka = await startKafka(t)
  const topic = uniqueName('events')
  const producer = await producerFor(t, kafka)
  const good = (n: number): Event => ({ event_id: `g-${n}`, action: 'view', item_type: 'post', item_id: 77 })
  const batch: Array<Event | string | null> = [
    good(1),
    'this is not JSON',
    { event_id: 'bad-action', action: 'share', item_type: 'post', item_id: 77 },
    good(2),
    { event_id: 'neg-id', action: 'like', item_type: 'post', item_id: -77, user_id: 1 },
    { event_id: 'no-by', action: 'increment', item_type: 'post', item_id: 77 },
    null,
    { event_id: 'max', action: 'increment', item_type: 'big', item_id: 1, by: Number.MAX_SAFE_INTEGER },
    { event_id: 'over', action: 'increment', item_type: 'big', item_id: 1, by: 1 },
    good(3)
  ]
  await produce(producer, topic, batch, 'poison')
  // ack=applied: offsets wait for a commit barrier on every shard instead of durable replies.
  const env = ingestEnv(kafka, topic, { ACK_MODE: 'applied' })
  const node = await startNode(t, { env })
  const deadLetters = async (): Promise<number> => {
    const text = await metricsText(node.base)
    let n = 0
    for (const m of text.matchAll(/^counterd_ingest_dead_letters_total\{code="[a-z_]+"\} (\d+)$/gm)) n += Number(m[1])
    return n
  }
  t.equal(await pollUntil(deadLetters, (n) => n === 6, 60_000), 6, 'six dead letters counted')
  t.equal(await getValue(node.base, 'post', '77'), 3, 'the good events around them counted')
  t.equal(await getValue(node.base, 'big', '1'), Number.MAX_SAFE_INTEGER, 'the overflowing increment was refused, nothing applied')
  const text = await metricsText(node.base)
  for (const [code, n] of [['malformed_json', 1], ['invalid_event', 2], ['invalid_id', 1], ['invalid_delta', 1], ['value_out_of_range', 1]] as const) {
    t.match(text, `counterd_ingest_dead_letters_total{code="${code}"} ${n}\n`, `${code}: ${n}`)
  }
  t.equal(await metric(node.base, 'counterd_ingest_events_total'), 4)
  t.match(text, new RegExp(`counterd_ingest_lag_messages\\{topic="${topic}",partition="\\d+"\\} \\d+`), 'lag per partition is exposed')
  t.match(text, /^counterd_ingest_consumers 2$/m, 'a consumer per shard by default')

  // The dead-letter topic, read as any consumer would.
  const client = new Kafka({ clientId: 'ingest-test-dlq', brokers: kafka.brokers, logLevel: logLevel.NOTHING })
  const consumer = client.consumer({ groupId: uniqueName('dlq-reader') })
  await consumer.connect()
  t.teardown(async () => { await consumer.disconnect() })
  const got: Array<{ value: string | null, code: string, reason: string, offset: string, topic: string }> = []
  await consumer.subscribe({ topics: [`${topic}.dead-letter`], fromBeginning: true })
  const all = new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ message: m }) => {
        const h = m.headers ?? {}
        got.push({ value: m.value === null ? null : m.value.toString('utf8'), code: String(h['counterd-dead-letter-code']), reason: String(h['counterd-dead-letter-reason']), offset: String(h['counterd-source-offset']), topic: String(h['counterd-source-topic']) })
        if (got.length === 6) resolve()
      }
    })
  })
  await all
  got.sort((a, b) => Number(a.offset) - Number(b.offset))
  t.same(got.map((g) => [g.value, g.code]), [
    ['this is not JSON', 'malformed_json'],
    [JSON.stringify(batch[2]), 'invalid_event'],
    [JSON.stringify(batch[4]), 'invalid_id'],
    [JSON.stringify(batch[5]), 'invalid_delta'],
    [null, 'invalid_event'],
    [JSON.stringify(batch[8]), 'value_out_of_range']
  ], 'each poison message, unchanged, with its code')
  t.match(got[1].reason, /action must be one of like, unlike, view, increment, got "share"/, 'the reason header says why')
  t.match(got[2].reason, /item_id .*-77/)
  t.ok(got.every((g) => g.topic === topic), 'the source topic is named')
  t.same(got.map((g) => Number(g.offset)), [1, 2, 4, 5, 6, 8], 'and the source offsets (one partition)')
})

t.test('cluster storage: brokers default to KAFKA_BROKERS; kill -9 and a new node on an empty disk count each event once', async (t) => {
  const [kafka, redis] = await Promise.all([startKafka(t), startRedis(t)])
  const topic = uniqueName('events')
  const producer = await producerFor(t, kafka)
  const events: Event[] = Array.from({ length: 6000 }, (_, i) => ({ event_id: `c-${i}`, action: i % 4 === 0 ? 'like' : 'view', item_type: 'post', item_id: i % 30, user_id: i }))
  const want = { views: 4500, likes: 1500 }
  const env = {
    KAFKA_BROKERS: kafka.brokers.join(','),
    KAFKA_TOPIC: uniqueName('deltas'),
    REDIS_URL: redis.url,
    INGEST_TOPIC: topic, // no INGEST_BROKERS: the log's brokers
    INGEST_GROUP: uniqueName('group'),
    INGEST_SESSION_TIMEOUT_MS: '6000',
    CLUSTER_SESSION_MS: '3000', // the killed node leaves the ring soon, so the new one has it sooner
    CHECKPOINT_INTERVAL_MS: '300',
    WORKERS: '2'
  }
  await produce(producer, topic, events.slice(0, 3000))
  let node: NodeProcess = await startNode(t, { env })
  const streaming = produce(producer, topic, events.slice(3000))
  await pollUntil(async () => await metric(node.base, 'counterd_ingest_events_total'), (n) => n >= 2000, 60_000, 5)
  await node.kill9()
  await streaming
  // Not a restart: a new process with an empty data dir; counts and remembered event_ids come
  // from Redis checkpoints and the Kafka log, the group's offsets from Kafka.
  node = await startNode(t, { env })
  const totals = async (): Promise<{ views: number, likes: number }> => {
    const ids = Array.from({ length: 30 }, (_, i) => i)
    const views = Object.values(await queryValues(node.base, ids.map((i) => `post:${i}`))).reduce((a, b) => a + b, 0)
    const r = await fetch(`${node.base}/v1/counts`, { method: 'POST', body: JSON.stringify({ items: ids.map((i) => ({ item_type: 'post', item_id: i })) }) })
    const likes = Object.values((await r.json() as { counts: Record<string, number> }).counts).reduce((a, b) => a + b, 0)
    return { views, likes }
  }
  t.same(await pollUntil(totals, (v) => v.views >= want.views && v.likes >= want.likes, 60_000), want, 'every view and like, once')
  await pollUntil(async () => await metricsText(node.base), (text) => /counterd_ingest_lag_messages\{[^}]*\} 0\n/.test(text) && !/counterd_ingest_lag_messages\{[^}]*\} [1-9]/.test(text), 30_000)
  t.same(await totals(), want, 'and still once after the topic is consumed to its end')
})
