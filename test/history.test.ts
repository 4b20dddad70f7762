// Per-minute history kept by a partition (actors/minute-history.ts, PartitionState.history): the
// buckets made as records are sealed (record ts → UTC minute) must be the ones replay rebuilds,
// from the log alone or from a snapshot plus the records after it, with no record counted twice;
// hour and day steps sum minutes; old minutes leave after the retention. Time is the ts handed to
// seal(), so nothing here waits for a real minute.
import { crc32 } from 'node:zlib'
import t from 'tap'
import { MinuteHistory, sortPairs, sumPairs } from '../actors/minute-history'
import { PartitionState } from '../actors/partition-state'
import type { HistoryStep } from '../src/core/history'
import { fnv1a32 } from '../src/core/keys'
import { decodeFrames, encodeFrames } from '../src/core/record-codec'
import type { DeltaRecord } from '../src/core/records'
import { decodeSnapshot, encodeSnapshot } from '../src/storage/snapshot-store'
import { rng } from './support/load'

const MIN = 60_000
const HOUR = 60 * MIN
const DAY = 24 * HOUR
const T0 = Date.UTC(2026, 10, 20, 0, 0, 0) // a day boundary, so days and hours are easy to check

function state (historyMinutes = 1440): PartitionState {
  return new PartitionState({ partition: 3, epoch: 2, replica: 'eu', dedupWindowMs: 3_600_000, dedupMaxEntries: 10_000, trackDirty: false, sampleSize: 4, historyMinutes })
}

function args (key: string): [Buffer, number, number, number] {
  const b = Buffer.from(key, 'latin1')
  return [b, 0, b.length, fnv1a32(key)]
}

function series (s: PartitionState, key: string, from: number, to: number, step: HistoryStep, now: number): Array<[number, number]> {
  return s.history(...args(key), from, to, step, now).map((p) => [p.ts, p.value])
}

t.test('increments land in the minute of the record that carries them', async (t) => {
  const s = state()
  const out: DeltaRecord[] = []
  s.increment(...args('post:1'), 3, out)
  s.increment(...args('post:1'), 2, out)
  s.increment(...args('post:2'), 1, out)
  s.seal(T0 + 10_000, out) // 00:00
  s.increment(...args('post:1'), 4, out)
  s.seal(T0 + 59_999, out) // still 00:00
  s.increment(...args('post:1'), -1, out)
  s.seal(T0 + MIN, out) // 00:01
  s.increment(...args('post:1'), 7, out)
  s.seal(T0 + 5 * MIN + 1, out) // 00:05
  s.reset(...args('post:2'), out)
  s.seal(T0 + 5 * MIN + 2, out) // a reset is the change −value
  const now = T0 + 6 * MIN
  t.same(series(s, 'post:1', T0, now, 'minute', now), [[T0, 9], [T0 + MIN, -1], [T0 + 5 * MIN, 7]], 'post:1 per minute, sparse')
  t.same(series(s, 'post:2', T0, now, 'minute', now), [[T0, 1], [T0 + 5 * MIN, -1]], 'post:2: the reset is a change')
  t.same(series(s, 'post:1', T0 + MIN, T0 + 5 * MIN, 'minute', now), [[T0 + MIN, -1]], '[from, to): the minute starting at `to` is out')
  t.same(series(s, 'post:1', T0 + 30_000, T0 + MIN + 1, 'minute', now), [[T0, 9], [T0 + MIN, -1]], 'the minute holding `from` is in, and the one `to` falls in')
  t.same(series(s, 'post:3', T0, now, 'minute', now), [], 'a counter never changed has no points')
  t.same(series(s, 'post:1', T0, now, 'hour', now), [[T0, 15]], 'hour: the minutes summed')
  t.equal(s.valueOf('post:1'), 15, 'the value is the sum of the series')
  // Nothing pending is in history: only sealed records (their ts decides the minute).
  s.increment(...args('post:1'), 100, out)
  t.same(series(s, 'post:1', T0, now, 'hour', now), [[T0, 15]], 'an unsealed increment is not in history yet')
})

t.test('hour and day steps sum UTC minutes; zero sums are left out', async (t) => {
  const s = state(3 * 1440)
  const out: DeltaRecord[] = []
  const at = (ts: number, by: number): void => { s.increment(...args('video:9'), by, out); s.seal(ts, out) }
  at(T0 + 10 * MIN, 1)
  at(T0 + 59 * MIN, 2)
  at(T0 + HOUR, 4) // next hour
  at(T0 + 23 * HOUR + 59 * MIN, 8)
  at(T0 + DAY + 3 * HOUR, 16) // next day
  at(T0 + DAY + 3 * HOUR + MIN, -16) // nets to 0 in the hour
  at(T0 + DAY + 5 * HOUR, 32)
  const now = T0 + DAY + 6 * HOUR
  t.same(series(s, 'video:9', T0, now, 'hour', now), [[T0, 3], [T0 + HOUR, 4], [T0 + 23 * HOUR, 8], [T0 + DAY + 5 * HOUR, 32]])
  t.same(series(s, 'video:9', T0, now, 'day', now), [[T0, 15], [T0 + DAY, 32]])
  t.same(series(s, 'video:9', T0 + 30 * MIN, now, 'day', now), [[T0, 14], [T0 + DAY, 32]], 'a day bucket holds only the minutes asked for')
})

t.test('retention: minutes older than it are dropped, and never answered', async (t) => {
  const s = state(10)
  const out: DeltaRecord[] = []
  for (let m = 0; m < 30; m++) {
    s.increment(...args('post:1'), m + 1, out)
    s.seal(T0 + m * MIN, out)
  }
  const now = T0 + 29 * MIN + 30_000
  const got = series(s, 'post:1', T0, now + MIN, 'minute', now)
  t.same(got, Array.from({ length: 10 }, (_, i) => [T0 + (20 + i) * MIN, 21 + i]), 'the last 10 minutes, and a range older than that answers what is kept')
  t.ok(s.historyPairs <= 11, `at most retention + 1 minutes held (${s.historyPairs} pairs)`)
  // A later query (no new records) no longer answers minutes that have aged out since.
  t.same(series(s, 'post:1', T0, now + 5 * MIN, 'minute', now + 5 * MIN), got.slice(5))
  // A record older than the retention behind the newest minute is not kept; a recent late one is merged.
  s.increment(...args('post:1'), 1000, out)
  s.seal(T0, out)
  s.increment(...args('post:1'), 500, out)
  s.seal(T0 + 25 * MIN, out) // the clock stepped back 4 minutes
  const after = series(s, 'post:1', T0, now + MIN, 'minute', now)
  t.same(after.find(([ts]) => ts === T0 + 25 * MIN), [T0 + 25 * MIN, 526], 'a late record joins its minute')
  t.equal(after.length, 10, 'the too-old record made no bucket')
})

t.test('off (0 minutes): nothing kept', async (t) => {
  const s = state(0)
  const out: DeltaRecord[] = []
  s.increment(...args('post:1'), 1, out)
  s.seal(T0, out)
  t.same(series(s, 'post:1', T0, T0 + MIN, 'minute', T0), [])
  t.equal(s.historyPairs, 0)
  t.equal(s.capture(true, T0).history, undefined, 'no history section in its checkpoints')
})

/** Random ops over `minutes` minutes of record ts, sealing often; returns the records and keys. */
function drive (seed: number, s: PartitionState, ops: number, start: number, minutes: number): { records: DeltaRecord[], keys: string[], end: number, cuts: number[] } {
  const rand = rng(seed)
  const records: DeltaRecord[] = []
  const keys = new Set<string>()
  const cuts: number[] = []
  const pool = Array.from({ length: 40 }, (_, i) => i < 30 ? `post:${i}` : `tag:x${i}`)
  const span = minutes * MIN
  let now = start
  for (let op = 0; op < ops; op++) {
    now += Math.floor(rand() * (2 * span / ops))
    const key = pool[Math.floor(rand() * pool.length)]
    keys.add(key)
    const r = rand()
    if (r < 0.7) s.increment(...args(key), Math.floor(rand() * 21) - 6, records)
    else if (r < 0.73) s.reset(...args(key), records)
    else if (r < 0.78) s.mergeReplica('us', [key], [op + Math.floor(rand() * 50)], [Math.floor(rand() * 5)])
    else if (r < 0.8) s.increment(...args(key), 3_000_000_000, records) // a minute whose deltas need f64
    else { s.seal(now, records); cuts.push(records.length) }
  }
  s.seal(now, records)
  cuts.push(records.length)
  return { records, keys: [...keys], end: now, cuts }
}

function allSeries (s: PartitionState, keys: readonly string[], now: number): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const k of keys) out[k] = { m: series(s, k, 0, now + MIN, 'minute', now), h: series(s, k, 0, now + MIN, 'hour', now) }
  return out
}

/** The same file as version 3 wrote it: no history section. */
function asV3 (file: Buffer): Buffer {
  const body = file.subarray(0, file.length - 4)
  const hlen = body.readUInt32LE(body.length - 4 - (decodeSnapshot(file).history?.length ?? 0))
  const v3 = Buffer.from(body.subarray(0, body.length - 4 - hlen))
  v3[4] = 3
  const crc = Buffer.alloc(4)
  crc.writeUInt32LE(crc32(v3))
  return Buffer.concat([v3, crc])
}

t.test('replay rebuilds the same buckets: from the log, and from a snapshot plus the records after it', async (t) => {
  for (const seed of [1, 2, 3]) {
    const live = state(90)
    const first = drive(seed, live, 3000, T0, 60)
    const cp = live.capture(true, first.end)
    const file = encodeSnapshot(cp)
    const rest = drive(seed + 50, live, 3000, first.end, 60)
    const keys = [...new Set([...first.keys, ...rest.keys])]
    const now = rest.end
    const want = allSeries(live, keys, now)
    t.ok(Object.values(want).some((v) => (v as { m: unknown[] }).m.length > 20), `seed ${seed}: the series are not trivial`)
    // With a retention covering the whole run, a counter's buckets sum to its value.
    const wide = state(1440)
    for (const r of [...first.records, ...rest.records]) wide.replay(r)
    for (const k of keys) {
      const total = series(wide, k, 0, now + MIN, 'day', now).reduce((a, [, v]) => a + v, 0)
      t.equal(total, live.valueOf(k), `seed ${seed}: ${k}'s history sums to its value`)
    }

    const fromLog = state(90)
    decodeFrames(encodeFrames([...first.records, ...rest.records]), (r) => { fromLog.replay(r) })
    t.same(allSeries(fromLog, keys, now), want, `seed ${seed}: the whole log replayed`)

    const fromFile = state(90)
    fromFile.load(decodeSnapshot(file))
    // The log still holds the records the snapshot covers: replaying them too must not count twice.
    decodeFrames(encodeFrames([...first.records, ...rest.records]), (r) => { fromFile.replay(r) })
    t.same(allSeries(fromFile, keys, now), want, `seed ${seed}: snapshot + the log (records it holds skipped)`)

    const fromCaptured = state(90)
    fromCaptured.load(cp)
    for (const r of rest.records) fromCaptured.replay(r)
    t.same(allSeries(fromCaptured, keys, now), want, `seed ${seed}: captured checkpoint + the records after it`)

    // A second snapshot of the recovered state holds the same history again.
    const again = state(90)
    again.load(decodeSnapshot(encodeSnapshot(fromFile.capture(true, now))))
    t.same(allSeries(again, keys, now), want, `seed ${seed}: snapshot of the recovered state`)

    // A version 3 file (written before history existed) loads: counters, and no history before its seq.
    const old = state(90)
    const v3 = decodeSnapshot(asV3(file))
    t.equal(v3.history, undefined, 'a v3 file has no history')
    old.load(v3)
    for (const r of rest.records) old.replay(r)
    for (const k of keys) t.equal(old.valueOf(k), live.valueOf(k), `seed ${seed}: v3 file + log: ${k}'s value`)
    const tail = state(90)
    for (const r of rest.records) tail.replay(r)
    t.same(allSeries(old, keys, now), allSeries(tail, keys, now), `seed ${seed}: v3 file: history from the records after it`)
  }
})

t.test('snapshot history section: a reset counter keeps its minutes; truncation is refused', async (t) => {
  const s = state()
  const out: DeltaRecord[] = []
  s.increment(...args('post:7'), 5, out)
  s.seal(T0, out)
  s.reset(...args('post:7'), out)
  s.seal(T0 + MIN, out)
  const cp = s.capture(true, T0 + MIN)
  const back = state()
  back.load(decodeSnapshot(encodeSnapshot(cp)))
  t.same(series(back, 'post:7', T0, T0 + 2 * MIN, 'minute', T0 + MIN), [[T0, 5], [T0 + MIN, -5]])
  const h = cp.history as Buffer
  t.throws(() => state().load({ ...cp, history: h.subarray(0, h.length - 3) }), /history/)
})

t.test('a hot counter sealed in thousands of records in one minute keeps one bucket', async (t) => {
  const s = state()
  const out: DeltaRecord[] = []
  for (let i = 0; i < 20_000; i++) {
    s.increment(...args('post:hot'), 1, out)
    if (i % 7 === 0) s.increment(...args(`post:${i}`), 1, out)
    s.seal(T0 + Math.floor(i / 10_000) * MIN + (i % 10_000), out)
  }
  t.ok(s.historyPairs < 2 * 4096 + 3000, `compacted as it goes (${s.historyPairs} pairs)`)
  const now = T0 + 2 * MIN
  t.same(series(s, 'post:hot', T0, now, 'minute', now), [[T0, 10_000], [T0 + MIN, 10_000]])
  t.same(series(s, 'post:7', T0, now, 'minute', now), [[T0, 1]])
})

t.test('sortPairs sorts by entry and keeps each delta with its entry', async (t) => {
  const rand = rng(9)
  for (const n of [0, 1, 5, 47, 48, 1000, 70_000]) {
    const max = n > 1000 ? 5_000_000 : 3000
    const e = new Uint32Array(n)
    const d = new Float64Array(n)
    for (let i = 0; i < n; i++) { e[i] = Math.floor(rand() * max); d[i] = e[i] * 3 + 0.5 }
    const want = [...e].sort((a, b) => a - b)
    sortPairs(e, d, n)
    t.same([...e], want, `n ${n}: sorted`)
    let ok = true
    for (let i = 0; i < n; i++) if (d[i] !== e[i] * 3 + 0.5) ok = false
    t.ok(ok, `n ${n}: deltas moved with their entries`)
  }
})

t.test('sumPairs: sorted, summed per entry, zero sums dropped (dense and sparse entries)', async (t) => {
  const rand = rng(10)
  for (const [n, max] of [[10, 5], [100, 50], [5000, 3000], [5000, 10_000_000], [100_000, 20_000]]) {
    const e = new Uint32Array(n)
    const d = new Float64Array(n)
    const want = new Map<number, number>()
    for (let i = 0; i < n; i++) {
      e[i] = Math.floor(rand() * max)
      d[i] = Math.floor(rand() * 7) - 3
      want.set(e[i], (want.get(e[i]) ?? 0) + d[i])
    }
    const left = sumPairs(e, d, n)
    const expected = [...want].filter(([, v]) => v !== 0).sort((a, b) => a[0] - b[0])
    t.same(Array.from({ length: left }, (_, i) => [e[i], d[i]]), expected, `n ${n}, entries below ${max}`)
  }
  // The per-thread sums are all 0 again afterwards: a second use is not disturbed by the first.
  const e = Uint32Array.from([3, 3, 1])
  const d = Float64Array.from([1, 1, 5])
  t.equal(sumPairs(e, d, 3), 2)
  t.same([...e.subarray(0, 2), ...d.subarray(0, 2)], [1, 3, 5, 2])
})

t.test('MinuteHistory on its own: open minute queried before and after compaction', async (t) => {
  const h = new MinuteHistory(5)
  const got = (e: number): Array<[number, number]> => {
    const out: Array<[number, number]> = []
    h.series(e, 0, 1e9, (m, d) => out.push([m, d]))
    return out
  }
  t.equal(h.begin(10 * MIN), true)
  for (let i = 0; i < 5000; i++) h.push(i % 3, 1)
  h.end()
  t.same(got(0), [[10, 1667]])
  t.same(got(2), [[10, 1666]])
  t.equal(h.pairs, 3, 'compacted past 4096 pairs')
  t.equal(h.begin(16 * MIN), true)
  h.push(1, 2)
  h.end()
  t.same(got(1), [[16, 2]], 'minute 10 is older than 5 minutes before minute 16: dropped')
  t.equal(h.begin(11 * MIN), false, 'a record older than the retention is not kept')
})

t.test('MinuteHistory against a model: many distinct counters per minute (the accumulator grows), late records', async (t) => {
  const h = new MinuteHistory(30)
  const model = new Map<string, number>()
  let s = 12345
  const rand = (n: number): number => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s % n }
  for (let minute = 100; minute < 104; minute++) {
    for (let record = 0; record < 400; record++) {
      // Now and then a record of the minute before (a clock that stepped back).
      const m = record % 97 === 96 && minute > 100 ? minute - 1 : minute
      t.equal(h.begin(m * MIN + rand(60_000)), true)
      const n = 1 + rand(60)
      for (let i = 0; i < n; i++) {
        const e = rand(6000) < 3000 ? rand(30) : rand(6000) // hot and cold counters
        const d = rand(11) - 3
        h.push(e, d)
        model.set(`${e}:${m}`, (model.get(`${e}:${m}`) ?? 0) + d)
      }
      h.end()
    }
  }
  let wrong = 0
  for (let e = 0; e < 6000; e++) {
    const want: Array<[number, number]> = []
    for (let m = 100; m < 104; m++) { const v = model.get(`${e}:${m}`) ?? 0; if (v !== 0) want.push([m, v]) }
    const got: Array<[number, number]> = []
    h.series(e, 0, 1e9, (m, d) => got.push([m, d]))
    if (JSON.stringify(got) !== JSON.stringify(want)) wrong++
  }
  t.equal(wrong, 0, 'every counter\'s minutes equal the model\'s')
})

t.test('MinuteHistory.pushMany equals push per pair: several histories staged at once, large records, deltas past 32 bits, late records', async (t) => {
  const one = [new MinuteHistory(30), new MinuteHistory(30), new MinuteHistory(30)]
  const many = [new MinuteHistory(30), new MinuteHistory(30), new MinuteHistory(30)]
  let s = 777
  const rand = (n: number): number => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return (s >>> 8) % n }
  const es = new Int32Array(5000)
  const ds = new Float64Array(5000)
  const series = (h: MinuteHistory, e: number): string => {
    const a: Array<[number, number]> = []
    h.series(e, 0, 1e9, (m, d) => a.push([m, d]))
    return JSON.stringify(a)
  }
  const minutes = [200, 200, 200]
  for (let record = 0; record < 1200; record++) {
    const h = rand(3)
    if (rand(60) === 0) minutes[h]++
    const m = rand(13) === 0 && minutes[h] > 200 ? minutes[h] - 1 : minutes[h]
    const ts = m * MIN + rand(60_000)
    const n = rand(30) === 0 ? 2500 + rand(2500) : rand(40)
    for (let i = 0; i < n; i++) {
      es[i] = rand(8000)
      ds[i] = rand(500) === 0 ? 3_000_000_000 * (rand(2) === 0 ? 1 : -1) : rand(9) - 3
    }
    t.equal(one[h].begin(ts), many[h].begin(ts))
    for (let i = 0; i < n; i++) one[h].push(es[i], ds[i])
    many[h].pushMany(es, ds, n)
    one[h].end()
    many[h].end()
    if (rand(100) === 0) { const e = es[0]; t.equal(series(many[h], e), series(one[h], e), 'a query between records sees every record') }
  }
  let wrong = 0
  for (let h = 0; h < 3; h++) for (let e = 0; e < 8000; e++) if (series(one[h], e) !== series(many[h], e)) wrong++
  t.equal(wrong, 0, 'every counter\'s minutes are the same')
})
