// Fencing of a stale owner. (1) Replay: a record of an epoch below one already applied (a stale
// owner writing after its successor took over) is ignored, and the successor's records count even
// where the stale owner's late records already used their seqs. (2) A real node whose partition is
// claimed by a newer owner (a higher epoch in Redis) does not acknowledge what it appends after
// that: the increment fails, the node stops, and after a restart the value holds every
// acknowledged increment.
import t from 'tap'
import { Redis } from 'ioredis'
import { PartitionState } from '../actors/partition-state'
import { partitionOf } from '../src/core/keys'
import type { DeltaRecord } from '../src/core/records'
import { startKafka } from './support/kafka'
import { getValue, startNode } from './support/node-process'
import { startRedis } from './support/redis'
import { ringEnv, waitForRing } from './support/ring'

const T0 = 1_800_000_000_000

function record (epoch: number, seq: number, delta: number): DeltaRecord {
  return { partition: 3, epoch, seq, ts: T0 + seq, keys: ['post:1'], deltas: [delta], dedup: [] }
}

t.test('replay ignores a stale owner\'s late records and keeps its successor\'s', async (t) => {
  const cases: Array<{ name: string, records: DeltaRecord[], value: number }> = [
    { name: 'one owner, a retried copy', records: [record(1, 11, 1), record(1, 12, 10), record(1, 12, 10)], value: 11 },
    {
      name: 'the stale owner wrote seq 12 before its successor\'s first record (never acknowledged: counted, as an unacknowledged write may be)',
      records: [record(1, 11, 1), record(1, 12, 10), record(2, 12, 100), record(2, 13, 1000)],
      value: 1111
    },
    {
      name: 'the stale owner wrote after its successor\'s first record: ignored',
      records: [record(1, 11, 1), record(2, 12, 100), record(1, 12, 10), record(1, 13, 20), record(2, 13, 1000)],
      value: 1101
    },
    { name: 'a record below the checkpoint\'s epoch is ignored', records: [record(1, 11, 7), record(3, 11, 5)], value: 5 }
  ]
  for (const c of cases) {
    const s = new PartitionState({ partition: 3, epoch: 5, replica: 'main', dedupWindowMs: 60_000, dedupMaxEntries: 100, trackDirty: false, sampleSize: 4 })
    s.load({ partition: 3, epoch: c.name.includes('checkpoint') ? 2 : 1, seq: 10, ts: T0, keys: [], values: [], dedup: [] })
    for (const r of c.records) s.replay(r)
    t.equal(s.valueOf('post:1'), c.value, c.name)
  }
})

t.test('a node whose partition a newer owner claimed acknowledges nothing more and stops', async (t) => {
  const [kafka, redis] = await Promise.all([startKafka(t), startRedis(t)])
  const { env } = ringEnv(kafka, redis, 'fence')
  let node = await startNode(t, { env: { ...env, WORKERS: '1' }, waitReady: false })
  await waitForRing(t, [node])
  const r1 = await fetch(`${node.base}/v1/counter/post/fenced/increment`, { method: 'POST', body: '{"by":5}' })
  t.equal(r1.status, 200, 'an increment is acknowledged while the node owns the partition')
  await r1.arrayBuffer()

  // A successor claims the partition: its owner epoch in Redis passes this node's.
  const client = new Redis(redis.url)
  t.teardown(() => { client.disconnect() })
  const meta = `counterd:{p${partitionOf('post:fenced', 64)}}:meta`
  const owner = Number(await client.hget(meta, 'owner'))
  t.ok(owner >= 1, `the node claimed epoch ${owner}`)
  await client.hset(meta, 'owner', String(owner + 1000))

  const r2 = await fetch(`${node.base}/v1/counter/post/fenced/increment`, { method: 'POST', body: '{"by":7}' }).then(async (r) => { await r.arrayBuffer(); return r.status }, () => 'no answer')
  t.not(r2, 200, `the increment appended after the claim is not acknowledged (${String(r2)})`)
  const proc = node.proc
  const code = proc.exitCode ?? await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)))
  t.not(code, 0, `the node stops with an error (exit code ${String(code)})`)
  t.match(node.output(), /log append fenced/, 'and says why')

  node = await node.restart()
  await waitForRing(t, [node])
  const value = await getValue(node.base, 'post', 'fenced')
  t.ok(value >= 5 && value <= 12, `after a restart (under a higher epoch) the acknowledged increment is there: 5 ≤ ${value} ≤ 12`)
})
