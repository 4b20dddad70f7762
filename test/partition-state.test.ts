// A partition's state (actors/partition-state.ts) rebuilt every way recovery rebuilds it: replaying
// its log records (as the WAL's bytes, and as decoded records), loading a checkpoint and replaying
// the records after it, loading snapshot files (this version's and version 2's) and Redis-style
// string checkpoints, and summing incremental captures. Each must give the same counters, PN totals,
// other replicas' shares, features, dedup entries and rates as the state that took the ops.
import t, { type Test } from 'tap'
import { PartitionState, MAX_VALUE } from '../actors/partition-state'
import { fnv1a32 } from '../src/core/keys'
import { decodeFrames, decodeRecord, encodeFrames } from '../src/core/record-codec'
import { DEDUP_IDEMPOTENCY, DEDUP_STREAM, unpackCounters, type Checkpoint, type DeltaRecord } from '../src/core/records'
import { decodeSnapshot, encodeSnapshot } from '../src/storage/snapshot-store'
import { crc32 } from 'node:zlib'
import { rng } from './support/load'
import { streamSeen } from '../src/core/stream-dedup'

const T0 = 1_800_000_000_000

function state (o: { replica?: string, trackDirty?: boolean } = {}): PartitionState {
  return new PartitionState({ partition: 3, epoch: 2, replica: o.replica ?? 'eu', dedupWindowMs: 3_600_000, dedupMaxEntries: 10_000, trackDirty: o.trackDirty ?? false, sampleSize: 4, historyMinutes: 1440 })
}

function args (key: string): [Buffer, number, number, number] {
  const b = Buffer.from(key, 'latin1')
  return [b, 0, b.length, fnv1a32(key)]
}

interface Snapshot {
  nonZero: number
  counters: Record<string, { v: number, own: [number, number], remote: string }>
  totals: string
  likes: Record<string, number>
  unique: Record<string, number>
  streams: Record<string, number | undefined>
  idem: Record<string, number | undefined>
  rates: Record<string, number>
}

/** Everything observable about a state, for the keys given. */
function observe (s: PartitionState, keys: readonly string[], now: number): Snapshot {
  const out: Snapshot = { nonZero: s.nonZero, counters: {}, totals: '', likes: {}, unique: {}, streams: {}, idem: {}, rates: {} }
  for (const key of keys) {
    const [own, ...remote] = s.replicas(...args(key))
    out.counters[key] = { v: s.get(...args(key)), own: [own.p, own.n], remote: JSON.stringify(remote.sort((a, b) => a.replica < b.replica ? -1 : 1)) }
    if (s.valueOf(key) !== out.counters[key].v) out.counters[key].v = NaN // the string path must agree
    out.likes[key] = s.features.likes.count(key)
    out.unique[key] = s.features.unique(key)
    out.streams[key] = s.streams.get(key, now)
    out.idem[key] = s.idempotency.get(key, now)
    out.rates[key] = s.rate(...args(key), now)
  }
  const exp = s.exportTotals(now)
  out.totals = JSON.stringify(exp.keys.map((k, i) => [k, exp.ps?.[i], exp.ns?.[i]]).sort())
  return out
}

/**
 * Same state, rates equal to float32 precision; `fromCheckpoint`: rates only from the records
 * replayed (checkpoints do not carry rates), so at most the live ones.
 */
function sameState (t: Test, got: Snapshot, want: Snapshot, what: string, fromCheckpoint = false): void {
  const rates = (x: Snapshot): Snapshot => ({ ...x, rates: {} })
  t.same(rates(got), rates(want), `${what}: counters, totals, features and dedup`)
  let bad = 0
  for (const key of Object.keys(want.rates)) {
    const a = got.rates[key]
    const b = want.rates[key]
    const ok = fromCheckpoint ? a >= 0 && a <= b * (1 + 1e-5) + 1e-30 : Math.abs(a - b) <= 1e-5 * Math.max(Math.abs(b), 1e-9)
    if (!ok && bad++ < 3) t.fail(`${what}: rate of ${key} ${a}, expected ${fromCheckpoint ? 'at most ' : ''}${b}`)
  }
  t.equal(bad, 0, `${what}: rates`)
}

/** Random ops on a state, sealed now and then; returns the records and every key touched. */
function drive (seed: number, s: PartitionState, ops: number, start = T0): { records: DeltaRecord[], keys: string[], now: number, cuts: number[] } {
  const rand = rng(seed)
  const pool = ['post:1', 'post:2', 'post:0', 'post:007', 'post:8388607', 'post:8388608', 'video:abc', 'video:a:b', 'c', 'x:' + 'i'.repeat(128), 'like:9']
  for (let i = 0; i < 40; i++) pool.push(`post:${1000 + i}`, `user:u${i}`)
  const keys = new Set<string>()
  const records: DeltaRecord[] = []
  const cuts: number[] = []
  let now = start
  for (let op = 0; op < ops; op++) {
    now += Math.floor(rand() * 2000)
    const key = pool[Math.floor(rand() * pool.length)]
    keys.add(key)
    const r = rand()
    if (r < 0.55) {
      s.increment(...args(key), Math.floor(rand() * 21) - 6, records)
    } else if (r < 0.6) {
      s.reset(...args(key), records)
    } else if (r < 0.66) {
      s.incrementWithActor(...args(key), 1 + Math.floor(rand() * 3), `a${Math.floor(rand() * 9)}`, records)
    } else if (r < 0.7) {
      if (rand() < 0.5) s.like(key, `u${Math.floor(rand() * 5)}`)
      else s.unlike(key, `u${Math.floor(rand() * 5)}`)
    } else if (r < 0.74) {
      s.recordStream(key, op, now)
    } else if (r < 0.78) {
      s.recordIdempotent(key, op, now)
    } else if (r < 0.84) {
      // Another replica's totals (they only grow; a stale record changes nothing).
      const p = Math.floor(rand() * 50)
      const n = Math.floor(rand() * 20)
      s.mergeReplica(rand() < 0.5 ? 'us' : 'ap', [key], [p + op], [n])
    } else {
      s.seal(now, records)
      cuts.push(records.length)
    }
  }
  s.seal(now, records)
  cuts.push(records.length)
  return { records, keys: [...keys], now, cuts }
}

t.test('replaying the log gives the state that took the ops (as WAL bytes and as decoded records)', async (t) => {
  for (const seed of [11, 12, 13, 14]) {
    const live = state()
    const { records, keys, now } = drive(seed, live, 3000)
    const want = observe(live, keys, now)

    const fromBytes = state()
    let n = 0
    decodeFrames(encodeFrames(records), (r) => { if (fromBytes.replay(r)) n++ })
    t.equal(n, records.length, `seed ${seed}: every record replayed`)
    sameState(t, observe(fromBytes, keys, now), want, `seed ${seed}, WAL bytes`)

    const fromObjects = state()
    for (const r of records) fromObjects.replay(decodeRecord(encodeFrames([r]).subarray(8)))
    sameState(t, observe(fromObjects, keys, now), want, `seed ${seed}, decoded records`)
    t.equal(fromObjects.replay(records[0]), false, 'a record at or below seq is skipped')
  }
})

t.test('a checkpoint (captured, as a snapshot file, v2 file, or Redis strings) plus the records after it', async (t) => {
  for (const seed of [21, 22, 23]) {
    const live = state()
    const first = drive(seed, live, 1500)
    const cp = live.capture(true, first.now)
    const cpFile = encodeSnapshot(cp)
    const v2File = encodeSnapshotV2(cp)
    const plain: Checkpoint = { ...cp } // keys, values, ps, ns decoded: what a Redis load returns
    const rest = drive(seed + 100, live, 1500, first.now)
    const keys = [...new Set([...first.keys, ...rest.keys])]
    const want = observe(live, keys, rest.now)
    const ways: Array<[string, Checkpoint]> = [
      ['captured', cp], ['snapshot v3', decodeSnapshot(cpFile)], ['snapshot v2', decodeSnapshot(v2File)], ['string keys', plain]
    ]
    for (const [what, c] of ways) {
      const s = state()
      s.load(c)
      t.equal(s.seq, cp.seq, `${what}: seq`)
      for (const r of rest.records) s.replay(r)
      sameState(t, observe(s, keys, rest.now), want, `seed ${seed}, ${what}`, true)
    }
    t.equal(decodeSnapshot(v2File).packed?.count, cp.packed?.count, 'the v2 file holds the same counters')
  }
})

t.test('snapshot round trip: every field, and counters in either form', async (t) => {
  const live = state()
  const { now } = drive(31, live, 2000)
  const cp = live.capture(true, now)
  const back = decodeSnapshot(encodeSnapshot(cp))
  for (const f of ['partition', 'epoch', 'seq', 'ts', 'keys', 'values', 'ps', 'ns', 'dedup'] as const) t.same(back[f], cp[f], f)
  t.same(back.features, cp.features, 'features')
  t.ok(cp.history !== undefined && cp.history.length > 0, 'the partition keeps history')
  t.same(back.history, cp.history, 'history')
  t.same(decodeSnapshot(encodeSnapshotV2(cp)).keys, cp.keys, 'v2 keys')
  // A plain checkpoint (no packed counters) encodes the same file.
  const plain: Checkpoint = { partition: cp.partition, epoch: cp.epoch, seq: cp.seq, ts: cp.ts, keys: cp.keys, values: cp.values, ps: cp.ps, ns: cp.ns, dedup: cp.dedup, features: cp.features, history: cp.history }
  t.same(encodeSnapshot(plain), encodeSnapshot(cp), 'same bytes from strings as from packed counters')
  // Without ps/ns a value is all this replica's own.
  const own = decodeSnapshot(encodeSnapshot({ partition: 1, epoch: 1, seq: 1, ts: 1, keys: ['a:1', 'a:2'], values: [5, -3], dedup: [] }))
  t.same([own.ps, own.ns], [[5, 0], [0, 3]])
  t.throws(() => decodeSnapshot(Buffer.from(encodeSnapshot(cp)).fill(7, 40, 41)), /checksum/)
  // Assigning a field replaces the packed counters.
  const edited = decodeSnapshot(encodeSnapshot(cp))
  edited.values = edited.values.map(() => 1)
  t.equal(edited.packed, undefined, 'no stale packed counters')
  t.same(edited.keys, cp.keys)
})

t.test('incremental captures, summed as Redis sums them, equal a full capture', async (t) => {
  const live = state({ trackDirty: true })
  const saved = new Map<string, [number, number, number]>()
  const take = (full: boolean, now: number): void => {
    const cp = live.capture(full, now)
    for (let i = 0; i < cp.keys.length; i++) saved.set(cp.keys[i], [cp.values[i], (cp.ps as number[])[i], (cp.ns as number[])[i]])
  }
  let now = T0
  take(true, now)
  for (let round = 0; round < 8; round++) {
    const r = drive(40 + round, live, 400, now)
    now = r.now
    take(false, now)
  }
  const full = live.capture(true, now)
  const u = unpackCounters(full.packed ?? { count: 0, keys: new Uint8Array(0), values: new Float64Array(0), ps: null, ns: null })
  const want = new Map(u.keys.map((k, i) => [k, [u.values[i], u.ps[i], u.ns[i]]]))
  const nonZero = new Map([...saved].filter(([, [v, p, n]]) => v !== 0 || p !== 0 || n !== 0))
  t.same(Object.fromEntries(nonZero), Object.fromEntries(want))
  t.same(live.capture(false, now).keys, [], 'nothing changed since the last capture')
})

t.test('a counter reset to 0 keeps its totals and survives every round trip', async (t) => {
  const s = state()
  const out: DeltaRecord[] = []
  s.increment(...args('post:5'), 7, out)
  s.increment(...args('post:x'), 2, out)
  s.seal(T0, out)
  s.reset(...args('post:5'), out)
  s.reset(...args('post:never'), out)
  s.seal(T0 + 1, out)
  t.equal(s.valueOf('post:5'), 0)
  t.equal(s.nonZero, 1)
  t.same(s.replicas(...args('post:5'))[0], { replica: 'eu', p: 7, n: 7 })
  const cp = s.capture(true, T0 + 2)
  t.same(cp.keys, ['post:5', 'post:x'], 'a reset counter stays in a checkpoint (its totals are not 0)')
  t.same([cp.values, cp.ps, cp.ns], [[0, 2], [7, 2], [7, 0]])
  for (const c of [decodeSnapshot(encodeSnapshot(cp)), decodeSnapshot(encodeSnapshotV2(cp))]) {
    const back = state()
    back.load(c)
    t.same([back.valueOf('post:5'), back.nonZero, back.replicas(...args('post:5'))[0]], [0, 1, { replica: 'eu', p: 7, n: 7 }])
  }
  const replayed = state()
  for (const r of out) replayed.replay(r)
  t.same([replayed.valueOf('post:5'), replayed.valueOf('post:x'), replayed.nonZero], [0, 2, 1])
})

t.test('a net delta that would leave ±(2^53−1) is sealed first; values out of range are refused', async (t) => {
  const s = state()
  const out: DeltaRecord[] = []
  t.equal(s.increment(...args('big:1'), MAX_VALUE, out), MAX_VALUE)
  t.ok(Number.isNaN(s.increment(...args('big:1'), 1, out)), 'past 2^53−1: refused')
  t.equal(s.increment(...args('big:1'), -MAX_VALUE, out), 0)
  t.equal(s.increment(...args('big:1'), -MAX_VALUE, out), -MAX_VALUE, 'net −(2^53−1) in the window')
  t.equal(out.length, 0, 'still one window')
  s.seal(T0, out)
  s.increment(...args('big:2'), 5, out)
  t.equal(s.increment(...args('big:1'), MAX_VALUE, out), 0, 'net +(2^53−1) since the seal')
  t.equal(out.length, 1)
  t.equal(s.increment(...args('big:1'), 1, out), 1, 'a net delta of 2^53 is not a safe integer: the window is sealed first')
  t.equal(out.length, 2)
  t.equal(s.increment(...args('big:1'), 2, out), 3)
  s.seal(T0 + 1, out)
  t.equal(out.length, 3)
  const deltas = new Map<string, number>()
  for (const r of out) r.keys.forEach((k, i) => deltas.set(k, (deltas.get(k) ?? 0) + r.deltas[i]))
  t.ok(out.every((r) => r.deltas.every((d) => Math.abs(d) <= MAX_VALUE)), 'every logged delta is a safe integer')
  t.same(Object.fromEntries(deltas), { 'big:1': 3, 'big:2': 5 })
  const back = state()
  for (const r of out) back.replay(r)
  t.same([back.valueOf('big:1'), back.valueOf('big:2')], [3, 5])
  t.same(back.replicas(...args('big:1'))[0], s.replicas(...args('big:1'))[0], 'the same totals')
  t.same(s.replicas(...args('big:1'))[0], { replica: 'eu', p: MAX_VALUE + 3, n: MAX_VALUE }, 'P past 2^53−1 (kept per counter from then on)')
})

t.test('rates decay with a one-minute time constant, across a move of the landmark', async (t) => {
  const s = state()
  const born = Date.now()
  const rec = (seq: number, ts: number, key: string, d: number): DeltaRecord =>
    ({ partition: 3, epoch: 2, seq, ts, keys: [key], deltas: [d], dedup: [], replica: 'eu' })
  s.replay(rec(1, born - 10 * 60_000, 'r:old', 60)) // ten minutes before: e^−10 of it is left
  s.replay(rec(2, born + 3 * 3_600_000, 'r:a', 120)) // three hours on: past the float32 range, the landmark moves
  s.replay(rec(3, born + 3 * 3_600_000 + 60_000, 'r:a', 60))
  s.replay(rec(4, born + 3 * 3_600_000 + 60_000, 'r:b', 30))
  const now = born + 3 * 3_600_000 + 120_000
  const rate = (key: string): number => s.rate(...args(key), now)
  const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-5 * Math.abs(b)
  t.ok(close(rate('r:a'), (120 * Math.exp(-2) + 60 * Math.exp(-1)) / 60), `r:a ${rate('r:a')}`)
  t.ok(close(rate('r:b'), 30 * Math.exp(-1) / 60), `r:b ${rate('r:b')}`)
  t.ok(rate('r:old') >= 0 && rate('r:old') < 1e-30, 'long ago: about 0')
  t.same(s.top('r', 2, now).map((x) => x.key), ['r:a', 'r:b'])
  t.same(s.top(null, 5, now).map((x) => x.key), ['r:a', 'r:b', 'r:old'], 'a counter ever incremented is still listed')
  t.equal(rate('r:none'), 0)
})

t.test('dedup entries recovered from records and checkpoints answer resends', async (t) => {
  const s = state()
  const out: DeltaRecord[] = []
  s.recordStream('client-1', 41, T0)
  s.recordIdempotent('post:1\nkey', 9, T0)
  s.seal(T0, out)
  const back = state()
  back.replay(out[0])
  const recovered = back.streams.get('client-1', T0 + 1)
  t.ok(streamSeen(recovered, 41) && !streamSeen(recovered, 42), 'the stream\'s frame 41 is recovered as applied, 42 as not')
  t.equal(back.idempotency.get('post:1\nkey', T0 + 1), 9)
  const cp = back.capture(true, T0 + 2)
  t.same(cp.dedup.map((d) => d.kind).sort(), [DEDUP_STREAM, DEDUP_IDEMPOTENCY].sort())
  const again = state()
  again.load(decodeSnapshot(encodeSnapshot(cp)))
  t.equal(again.streams.get('client-1', T0 + 3), recovered, 'and the same from a snapshot')
})

/** A snapshot file as version 2 wrote it (kept here to test that such files are still read). */
function encodeSnapshotV2 (cp: Checkpoint): Buffer {
  const features = cp.features ?? Buffer.alloc(0)
  let size = 4 + 1 + 2 + 4 + 8 + 8 + 4 + 4 + 4 + 4 + features.length
  for (const k of cp.keys) size += 1 + k.length + 24
  for (const d of cp.dedup) size += 1 + 2 + d.tag.length + 16
  const buf = Buffer.allocUnsafe(size)
  let o = buf.writeUInt32LE(0x504e5343, 0)
  o = buf.writeUInt8(2, o)
  o = buf.writeUInt16LE(cp.partition, o)
  o = buf.writeUInt32LE(cp.epoch, o)
  o = buf.writeDoubleLE(cp.seq, o)
  o = buf.writeDoubleLE(cp.ts, o)
  o = buf.writeUInt32LE(cp.keys.length, o)
  for (let i = 0; i < cp.keys.length; i++) {
    o = buf.writeUInt8(cp.keys[i].length, o)
    o += buf.write(cp.keys[i], o, 'latin1')
    o = buf.writeDoubleLE(cp.values[i], o)
    o = buf.writeDoubleLE(cp.ps?.[i] ?? Math.max(cp.values[i], 0), o)
    o = buf.writeDoubleLE(cp.ns?.[i] ?? Math.max(-cp.values[i], 0), o)
  }
  o = buf.writeUInt32LE(cp.dedup.length, o)
  for (const d of cp.dedup) {
    o = buf.writeUInt8(d.kind, o)
    o = buf.writeUInt16LE(d.tag.length, o)
    o += buf.write(d.tag, o, 'latin1')
    o = buf.writeDoubleLE(d.value, o)
    o = buf.writeDoubleLE(d.ts, o)
  }
  o = buf.writeUInt32LE(features.length, o)
  o += features.copy(buf, o)
  buf.writeUInt32LE(crc32(buf.subarray(0, o)), o)
  return buf
}
