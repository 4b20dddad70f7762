// KafkaDeltaLog against a real Kafka protocol server (librdkafka's mock cluster, started per test).
import t from 'tap'
import { Kafka, logLevel } from 'kafkajs'
import { KafkaDeltaLog, type KafkaDeltaLogOptions } from '../src/storage/kafka-log'
import { decodeRecord, encodeRecord } from '../src/core/record-codec'
import type { DeltaRecord } from '../src/core/records'
import { startKafka } from './support/kafka'
import { freePort } from './support/ports'
import { sleep } from './support/process-control'

let topicN = 0
function topicName (): string { return `deltas-${process.pid}-${++topicN}` }

function rec (partition: number, seq: number, epoch = 1): DeltaRecord {
  return {
    partition,
    epoch,
    seq,
    ts: 1_700_000_000_000 + seq,
    keys: [`post:${partition}-${seq}`, 'video:hot'],
    deltas: [seq, -partition - 1],
    dedup: seq % 3 === 0 ? [{ kind: 1, tag: `client-${seq}`, value: seq, ts: 1_700_000_000_000 }] : []
  }
}

async function collect (log: KafkaDeltaLog, partitions: number[], from?: Map<number, { seq: number, logOffset?: number }>): Promise<DeltaRecord[]> {
  const out: DeltaRecord[] = []
  await log.replay(partitions, (r) => { out.push(r) }, from)
  return out
}

/** The fields this test writes (the codec may carry more, e.g. a replica id, with defaults). */
function core (r: DeltaRecord): Pick<DeltaRecord, 'partition' | 'epoch' | 'seq' | 'ts' | 'keys' | 'deltas' | 'dedup'> {
  return { partition: r.partition, epoch: r.epoch, seq: r.seq, ts: r.ts, keys: r.keys, deltas: r.deltas, dedup: r.dedup }
}

function byPartition (records: DeltaRecord[]): Map<number, DeltaRecord[]> {
  const m = new Map<number, DeltaRecord[]>()
  for (const r of records) {
    const list = m.get(r.partition) ?? []
    list.push(r)
    m.set(r.partition, list)
  }
  return m
}

t.test('options are validated at construction', async (t) => {
  const cases: Array<[string, Partial<KafkaDeltaLogOptions>]> = [
    ['no brokers', { brokers: [] }],
    ['broker without port', { brokers: ['localhost'] }],
    ['bad topic', { brokers: ['127.0.0.1:9092'], topic: 'a b' }],
    ['numPartitions 0', { brokers: ['127.0.0.1:9092'], numPartitions: 0 }],
    ['fractional timeout', { brokers: ['127.0.0.1:9092'], requestTimeoutMs: 1.5 }],
    ['maxRequestBytes too small', { brokers: ['127.0.0.1:9092'], maxRequestBytes: 10 }]
  ]
  for (const [name, opts] of cases) {
    await t.rejects(KafkaDeltaLog.open(opts as KafkaDeltaLogOptions), { code: 'invalid_option' }, name)
  }
})

t.test('an unreachable broker at open is a clear storage_unavailable error', async (t) => {
  const port = await freePort()
  await t.rejects(
    KafkaDeltaLog.open({ brokers: [`127.0.0.1:${port}`], startTimeoutMs: 1500, connectTimeoutMs: 200 }),
    { code: 'storage_unavailable', message: new RegExp(`127\\.0\\.0\\.1:${port}`) }
  )
})

t.test('append then replay: content, order per partition, message layout, positions', async (t) => {
  const kafka = await startKafka(t)
  const topic = topicName()
  const log = await KafkaDeltaLog.open({ brokers: kafka.brokers, topic })
  t.teardown(async () => { await log.close() })
  t.equal(log.kafkaPartitions, 4, 'the mock auto-creates topics with 4 partitions')

  // Many appends in flight at once, as group commits would issue them; each holds several partitions.
  const written: DeltaRecord[] = []
  const appends: Array<Promise<void>> = []
  for (let seq = 1; seq <= 30; seq++) {
    const batch = [0, 1, 2, 5, 6].map((p) => rec(p, seq))
    written.push(...batch)
    appends.push(log.append(batch))
  }
  await Promise.all(appends)
  t.same(log.status(), { ok: true })

  const all = await collect(log, [0, 1, 2, 5, 6])
  const got = byPartition(all)
  for (const p of [0, 1, 2, 5, 6]) {
    t.same(got.get(p)?.map(core), written.filter((r) => r.partition === p).map(core), `partition ${p}: every record once, in seq order, unchanged`)
  }

  const some = await collect(log, [1, 5])
  t.same([...byPartition(some).keys()].sort(), [1, 5], 'only the partitions asked for')
  t.equal(some.length, 60)

  // Positions let a checkpoint skip the log before it: replay from seq 25's offset of partition 1.
  const pos = log.positionOf(1, 25)
  t.type(pos, 'number')
  const tail = await collect(log, [1], new Map([[1, { seq: 25, logOffset: pos as number }]]))
  t.same(tail.map((r) => r.seq), [26, 27, 28, 29, 30], 'replay starts after the checkpointed offset')
  // Partition 5 shares Kafka partition 1 but has no checkpoint offset: all of it, and still only 1's tail.
  const shared = byPartition(await collect(log, [1, 5], new Map([[1, { seq: 25, logOffset: pos as number }]])))
  t.same(shared.get(1)?.map((r) => r.seq), [26, 27, 28, 29, 30])
  t.same(shared.get(5)?.map((r) => r.seq), written.filter((r) => r.partition === 5).map((r) => r.seq))
  t.equal(log.positionOf(1, 0), undefined, 'no position before the first record')

  // Raw layout, as another service would consume it.
  const raw = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING })
  const consumer = raw.consumer({ groupId: `raw-${topic}`, maxWaitTimeInMs: 100 })
  await consumer.connect()
  t.teardown(async () => { await consumer.disconnect() })
  await consumer.subscribe({ topic, fromBeginning: true })
  const seen: Array<{ kp: number, key: string, r: DeltaRecord }> = []
  const undecodable: string[] = []
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ partition, message }) => {
        // Never throw here: kafkajs would redeliver the message forever and the test would hang.
        try {
          seen.push({ kp: partition, key: String(message.key), r: decodeRecord(message.value as Buffer) })
        } catch (err) {
          undecodable.push(`${partition}/${message.offset}: ${(err as Error).message}`)
        }
        if (seen.length + undecodable.length === written.length) resolve()
      }
    })
  })
  t.same(undecodable, [], 'every message value decodes')
  t.same(seen.filter((s) => s.key !== String(s.r.partition)), [], 'message key = counter partition')
  t.same(seen.filter((s) => s.kp !== s.r.partition % 4), [], 'Kafka partition = counter partition mod 4')
  t.equal(seen.length, written.length)
})

t.test('replay drops retry copies and a stale epoch\'s late records', async (t) => {
  const kafka = await startKafka(t)
  const topic = topicName()
  const log = await KafkaDeltaLog.open({ brokers: kafka.brokers, topic })
  t.teardown(async () => { await log.close() })
  await log.append([rec(3, 1), rec(3, 2)])
  // What the log can hold after a retry whose first attempt was stored, and after a handoff where
  // the old owner (epoch 1) still wrote once after the new owner (epoch 2) started.
  const producer = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING }).producer()
  await producer.connect()
  const raw = (r: DeltaRecord): { key: string, value: Buffer, partition: number } => ({ key: String(r.partition), value: encodeRecord(r), partition: r.partition % 4 })
  await producer.send({ topic, acks: -1, messages: [raw(rec(3, 2)), raw(rec(3, 3, 2)), raw(rec(3, 3)), raw(rec(3, 4, 2))] })
  await producer.disconnect()
  const got = await collect(log, [3])
  t.same(got.map((r) => [r.epoch, r.seq]), [[1, 1], [1, 2], [2, 3], [2, 4]])
})

t.test('outage: appends wait and retry while the brokers hang, then land once', async (t) => {
  const kafka = await startKafka(t)
  const topic = topicName()
  const log = await KafkaDeltaLog.open({ brokers: kafka.brokers, topic, requestTimeoutMs: 500, retryMaxMs: 200 })
  t.teardown(async () => { await log.close() })
  await log.append([rec(0, 1), rec(1, 1)])

  kafka.pause()
  let settled = false
  const during = log.append([rec(0, 2), rec(1, 2)]).finally(() => { settled = true })
  const later = log.append([rec(0, 3)])
  while (log.status().ok) await sleep(50)
  t.match(log.status(), { ok: false, error: /Kafka append to .* failed|no confirmation of an append to/ })
  t.equal(settled, false, 'append has not resolved while Kafka is down')

  kafka.resume()
  await Promise.all([during, later])
  t.same(log.status(), { ok: true })
  const got = byPartition(await collect(log, [0, 1]))
  t.same(got.get(0)?.map((r) => r.seq), [1, 2, 3], 'partition 0 once each, in order')
  t.same(got.get(1)?.map((r) => r.seq), [1, 2])
})

t.test('close during an outage rejects what Kafka has not confirmed', async (t) => {
  const kafka = await startKafka(t)
  const log = await KafkaDeltaLog.open({ brokers: kafka.brokers, topic: topicName(), requestTimeoutMs: 500 })
  kafka.pause()
  const pending = log.append([rec(0, 1)])
  await log.close(300)
  await t.rejects(pending, { code: 'shutting_down' })
  await t.rejects(log.append([rec(0, 2)]), { code: 'shutting_down' })
  t.match(log.status(), { ok: false })
  kafka.resume()
})
