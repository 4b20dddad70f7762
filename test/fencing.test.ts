// Replay and a stale owner: a record of an epoch below one already applied (a stale owner writing
// after its successor took over) is ignored, and the successor's records count even where the
// stale owner's late records already used their seqs.
import t from 'tap'
import { PartitionState } from '../actors/partition-state'
import type { DeltaRecord } from '../src/core/records'

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
