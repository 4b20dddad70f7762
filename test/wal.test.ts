// The WAL, record codec and snapshot files on their own: round trips, torn tails, checksums,
// and segment deletion only once checkpoints cover a segment.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { decodeFrames, decodeRecord, encodeFrames, encodeRecord } from '../src/core/record-codec'
import { SnapshotStore, decodeSnapshot, encodeSnapshot } from '../src/storage/snapshot-store'
import { DEDUP_IDEMPOTENCY, DEDUP_STREAM, FEATURE_ACTOR, FEATURE_LIKE, type DeltaRecord } from '../src/core/records'
import { WalLog, listSegments } from '../src/storage/wal'

const SEGMENT_BYTES = 256 * 1024 * 1024

const rec = (partition: number, seq: number, keys: string[], deltas: number[]): DeltaRecord =>
  ({ partition, epoch: 3, seq, ts: 1700000000000 + seq, keys, deltas, dedup: [], replica: 'main' })

function tmp (t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-wal-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('record codec round trip', async (t) => {
  const r: DeltaRecord = {
    partition: 63, epoch: 7, seq: 2 ** 40, ts: 1795000000123,
    keys: ['post:1', 'video:a:b', 'x:' + 'i'.repeat(128)], deltas: [1, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
    dedup: [{ kind: DEDUP_STREAM, tag: 'client-1', value: 4294967295, ts: 5 }, { kind: DEDUP_IDEMPOTENCY, tag: 'post:1\nk', value: -3, ts: 6 }],
    replica: 'eu-west', features: [{ kind: FEATURE_ACTOR, key: 'post:1', arg: 'user-42' }, { kind: FEATURE_LIKE, key: 'post:9', arg: 'u' }]
  }
  t.same(decodeRecord(encodeRecord(r)), r)
  const totals: DeltaRecord = { ...rec(4, 9, ['a:1', 'b:2'], [3, -1]), replica: 'us', ps: [10, 0], ns: [7, 1] }
  t.same(decodeRecord(encodeRecord(totals)), totals, 'a record with another replica\'s totals')
  const v1 = Buffer.alloc(43) // version 1: no replica, totals or features
  v1[0] = 1
  v1.writeUInt16LE(2, 1)
  v1.writeUInt32LE(3, 3)
  v1.writeDoubleLE(5, 7)
  v1.writeDoubleLE(1700000000005, 15)
  v1.writeUInt32LE(1, 23)
  v1[27] = 3
  v1.write('a:1', 28, 'latin1')
  v1.writeDoubleLE(4, 31)
  t.same(decodeRecord(v1), { partition: 2, epoch: 3, seq: 5, ts: 1700000000005, keys: ['a:1'], deltas: [4], dedup: [] }, 'version 1 records are still read')
  const out: DeltaRecord[] = []
  const buf = encodeFrames([r, rec(1, 1, ['a:b'], [2])])
  t.equal(decodeFrames(buf, (x) => out.push(x)), buf.length)
  t.same(out.map((x) => [x.partition, x.seq, x.keys, x.deltas, x.replica, x.features]), [[63, 2 ** 40, r.keys, r.deltas, 'eu-west', r.features], [1, 1, ['a:b'], [2], 'main', undefined]],
    'frames come back as records decoded on use')
})

t.test('decodeFrames stops at a torn or corrupt frame', async (t) => {
  const buf = encodeFrames([rec(0, 1, ['a:1'], [1]), rec(0, 2, ['a:1'], [2])])
  const first = encodeFrames([rec(0, 1, ['a:1'], [1])]).length
  for (let cut = first; cut < buf.length; cut += 3) {
    const seen: number[] = []
    t.equal(decodeFrames(buf.subarray(0, cut), (r) => seen.push(r.seq)), first, `cut at ${cut}`)
    t.same(seen, [1])
  }
  const flipped = Buffer.from(buf)
  flipped[buf.length - 3] ^= 0xff
  const seen: number[] = []
  t.equal(decodeFrames(flipped, (r) => seen.push(r.seq)), first, 'a flipped byte fails the CRC')
  t.same(seen, [1])
})

t.test('WAL: append, replay by partition, segment deletion after checkpoints', async (t) => {
  const dir = tmp(t)
  const wal = new WalLog({ dir, hostIndex: 0, shards: 1, epoch: 1, segmentBytes: SEGMENT_BYTES })
  await wal.append([rec(0, 1, ['a:1'], [1]), rec(2, 1, ['a:2'], [5])])
  await wal.append([rec(0, 2, ['a:1'], [3])])
  await wal.checkpointed(new Map([[0, 1], [2, 1]])) // rotates; segment 1 still holds p0 seq 2
  t.equal(listSegments(dir).length, 2, 'a segment with records past the checkpoint is kept')
  await wal.append([rec(0, 3, ['a:1'], [4])])
  await wal.close()

  const next = new WalLog({ dir, hostIndex: 0, shards: 1, epoch: 2, segmentBytes: SEGMENT_BYTES })
  const seen: Array<[number, number]> = []
  await next.replay([0], (r) => seen.push([r.partition, r.seq]))
  t.same(seen, [[0, 1], [0, 2], [0, 3]], 'only the partitions asked for, in order, across segments')
  await next.close()

  const again = new WalLog({ dir, hostIndex: 0, shards: 1, epoch: 3, segmentBytes: SEGMENT_BYTES })
  await again.append([rec(0, 4, ['a:1'], [1])])
  await again.checkpointed(new Map([[0, 4]]))
  t.same(listSegments(dir).filter((s) => s.epoch === 3).length, 1, 'the covered segment of this epoch is gone, the new current one stays')
  await again.close()
})

t.test('WAL: past WAL_SEGMENT_BYTES appends roll to new segments; replay reads them all in order', async (t) => {
  const dir = tmp(t)
  const wal = new WalLog({ dir, hostIndex: 0, shards: 1, epoch: 1, segmentBytes: 4096 })
  for (let seq = 1; seq <= 200; seq++) await wal.append([rec(0, seq, [`k:${seq}`, 'k:x'], [seq, 1])])
  await wal.close()
  const segments = listSegments(dir)
  t.ok(segments.length > 3, `${segments.length} segments`)
  t.ok(segments.every(s => fs.statSync(path.join(dir, s.file)).size < 4096 + 200), 'each segment rolled once it passed the size')
  const seen: number[] = []
  await new WalLog({ dir, hostIndex: 0, shards: 1, epoch: 2, segmentBytes: 4096 }).replay([0], (r) => seen.push(r.seq))
  t.same(seen, Array.from({ length: 200 }, (_, i) => i + 1))
})

t.test('WAL: a checkpoint while an append is in flight neither deletes nor closes its segment', async (t) => {
  const dir = tmp(t)
  const wal = new WalLog({ dir, hostIndex: 0, shards: 1, epoch: 1, segmentBytes: SEGMENT_BYTES })
  await wal.append([rec(0, 1, ['a:1'], [1])])
  const inFlight = wal.append([rec(0, 2, ['a:1'], [2])])
  // The checkpoint covers seq 1 only: the segment being written holds seq 2 and must stay.
  await wal.checkpointed(new Map([[0, 1]]))
  await inFlight
  await wal.append([rec(0, 3, ['a:1'], [3])])
  await wal.close()
  const seen: number[] = []
  await new WalLog({ dir, hostIndex: 0, shards: 1, epoch: 2, segmentBytes: SEGMENT_BYTES }).replay([0], (r) => seen.push(r.seq))
  t.same(seen, [1, 2, 3], 'every record is still there, each once')
})

t.test('WAL: segments of other shards are skipped without being read; older names are read by all', async (t) => {
  const dir = tmp(t)
  const a = new WalLog({ dir, hostIndex: 0, shards: 2, epoch: 1, segmentBytes: SEGMENT_BYTES })
  const b = new WalLog({ dir, hostIndex: 1, shards: 2, epoch: 1, segmentBytes: SEGMENT_BYTES })
  await a.append([rec(0, 1, ['a:1'], [1])])
  await b.append([rec(1, 1, ['b:1'], [1])])
  await a.close()
  await b.close()
  const legacy = listSegments(dir).find((s) => s.host === 0) as { file: string }
  fs.copyFileSync(path.join(dir, legacy.file), path.join(dir, 'h7-e0-00000001.wal'))
  t.same(listSegments(dir).map((s) => [s.host, s.shards, s.epoch]), [[7, 0, 0], [0, 2, 1], [1, 2, 1]], 'names parsed, older ones without a shard count')
  const seenBy = async (shard: number, partitions: number[]): Promise<string[]> => {
    const seen: string[] = []
    await new WalLog({ dir, hostIndex: shard, shards: 2, epoch: 2, segmentBytes: SEGMENT_BYTES }).replay(partitions, (r) => seen.push(`p${r.partition}s${r.seq}`))
    return seen
  }
  // Shard 1's segment made unreadable (a directory in its place): reading it would throw.
  const other = path.join(dir, listSegments(dir).find((s) => s.host === 1)?.file as string)
  fs.rmSync(other)
  fs.mkdirSync(other)
  t.same(await seenBy(0, [0]), ['p0s1', 'p0s1'], 'shard 0 reads the legacy copy and its own segment, never shard 1\'s')
  await t.rejects(seenBy(1, [1]), /EISDIR/, 'while shard 1 does read its own')
})

t.test('snapshots: atomic files with a checksum', async (t) => {
  const dir = tmp(t)
  const store = new SnapshotStore(dir)
  t.equal(await store.load(5), null, 'no snapshot yet')
  const cp = { partition: 5, epoch: 2, seq: 99, ts: 1, keys: ['a:1', 'b:2'], values: [10, -4], ps: [12, 0], ns: [2, 4], dedup: [{ kind: DEDUP_STREAM as 1, tag: 'c', value: 8, ts: 2 }], features: Buffer.from('opaque feature state') }
  await store.save([cp])
  t.same(await store.load(5), cp)
  t.same(decodeSnapshot(encodeSnapshot(cp)), cp)
  const file = path.join(dir, 'p00005.snap')
  const bytes = fs.readFileSync(file)
  bytes[20] ^= 1
  fs.writeFileSync(file, bytes)
  await t.rejects(store.load(5), /checksum mismatch/, 'a damaged snapshot is an error, never silently zero')
  t.same(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temp files left behind')
})
