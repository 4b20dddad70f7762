// ClickHouseHistory against a private clickhouse-server (Debian 18.16 on the build machines).
import t from 'tap'
import { createClient } from '@clickhouse/client'
import type { DeltaRecord } from '../src/core/records'
import { ClickHouseHistory, type ClickHouseHistoryOptions, type HistoryPoint, type HistoryStep } from '../src/storage/clickhouse-history'
import { startClickHouse, type ClickHouseServer } from './support/clickhouse'
import { freePort } from './support/ports'

const DAY0 = Date.UTC(2024, 1, 28, 22, 0, 0) // spans a day and a month boundary (leap day)
const MIN = 60_000
let tableN = 0
function table (): string { return `history_${process.pid}_${++tableN}` }

function rec (partition: number, seq: number, ts: number, deltas: Record<string, number>, epoch = 1): DeltaRecord {
  return { partition, epoch, seq, ts, keys: Object.keys(deltas), deltas: Object.values(deltas), dedup: [] }
}

/** The expected series, computed straight from the records. */
function expected (records: DeltaRecord[], key: string, fromMs: number, toMs: number, step: HistoryStep): HistoryPoint[] {
  const size = { minute: MIN, hour: 60 * MIN, day: 1440 * MIN }[step]
  const buckets = new Map<number, number>()
  for (const r of records) {
    const minute = Math.floor(r.ts / MIN) * MIN
    if (minute < Math.floor(fromMs / MIN) * MIN || minute >= toMs) continue
    const i = r.keys.indexOf(key)
    if (i < 0) continue
    const b = Math.floor(minute / size) * size
    buckets.set(b, (buckets.get(b) ?? 0) + r.deltas[i])
  }
  return [...buckets].filter(([, v]) => v !== 0).map(([ts, value]) => ({ ts, value })).sort((a, b) => a.ts - b.ts)
}

/** Records over ~27 hours on 3 partitions, several per minute, some keys cancelling out. */
function workload (): DeltaRecord[] {
  const out: DeltaRecord[] = []
  const seq = [0, 0, 0]
  for (let m = 0; m < 27 * 60; m += 7) {
    for (let p = 0; p < 3; p++) {
      const ts = DAY0 + m * MIN + p * 1000
      out.push(rec(p, ++seq[p], ts, { [`post:${p}`]: m % 5 + 1, 'video:shared': p === 0 ? 2 : -1 }))
      if (m % 3 === 0) out.push(rec(p, ++seq[p], ts + 20_000, { [`post:${p}`]: -(m % 5 + 1), 'video:shared': 1 }))
    }
  }
  return out
}

async function rawCount (ch: ClickHouseServer, tbl: string, where = '1'): Promise<number> {
  const c = createClient({ url: ch.url })
  try {
    const rs = await c.query({ query: `SELECT count() AS n FROM ${tbl} WHERE ${where}`, format: 'JSONEachRow' })
    return Number((await rs.json<{ n: string }>())[0].n)
  } finally {
    await c.close()
  }
}

async function checkSeries (t: tap.Test, h: ClickHouseHistory, records: DeltaRecord[], label: string): Promise<void> {
  const from = DAY0 - 60 * MIN
  const to = DAY0 + 30 * 60 * MIN
  for (const step of ['minute', 'hour', 'day'] as const) {
    for (const key of ['post:0', 'post:2', 'video:shared']) {
      t.same(await h.query(key, from, to, step), expected(records, key, from, to, step), `${label}: ${key} by ${step}`)
    }
  }
}

t.test('options and query arguments are validated', async (t) => {
  const cases: Array<[string, Partial<ClickHouseHistoryOptions>]> = [
    ['not a url', { url: 'localhost:8123' }],
    ['wrong scheme', { url: 'tcp://127.0.0.1:9000' }],
    ['bad table', { url: 'http://127.0.0.1:8123', table: 'a;drop' }],
    ['flush interval 0', { url: 'http://127.0.0.1:8123', flushIntervalMs: 0 }],
    ['buffer above a ClickHouse block', { url: 'http://127.0.0.1:8123', maxPendingRows: 2_000_000 }]
  ]
  for (const [name, opts] of cases) {
    await t.rejects(ClickHouseHistory.open(opts as ClickHouseHistoryOptions), { code: 'invalid_option' }, name)
  }
  const port = await freePort()
  await t.rejects(ClickHouseHistory.open({ url: `http://127.0.0.1:${port}`, requestTimeoutMs: 1000 }), { code: 'storage_unavailable' }, 'unreachable server')
})

t.test('schema, insert, query by minute/hour/day, unflushed rows, retried inserts', async (t) => {
  const ch = await startClickHouse(t)
  const tbl = table()
  const h = await ClickHouseHistory.open({ url: ch.url, table: tbl, flushIntervalMs: 3_600_000 })
  t.teardown(async () => { await h.close() })

  const c = createClient({ url: ch.url })
  t.teardown(async () => { await c.close() })
  const cols = await (await c.query({ query: `SELECT name, type FROM system.columns WHERE table = '${tbl}'`, format: 'JSONEachRow' })).json()
  t.same(cols, [
    { name: 'key', type: 'String' },
    { name: 'minute', type: "DateTime('UTC')" },
    { name: 'partition', type: 'UInt16' },
    { name: 'epoch', type: 'UInt32' },
    { name: 'seq', type: 'UInt64' },
    { name: 'delta', type: 'Int64' }
  ])
  const engine = await (await c.query({ query: `SELECT engine FROM system.tables WHERE name = '${tbl}'`, format: 'JSONEachRow' })).json()
  t.same(engine, [{ engine: 'ReplacingMergeTree' }])

  await t.rejects(h.query('bad key', 0, 1, 'minute'), { code: 'invalid_key' })
  const badArgs: Array<[string, number, number, string]> = [
    ['to before from', 10, 5, 'minute'],
    ['fractional from', 1.5, 5, 'minute'],
    ['unknown step', 0, 5, 'week'],
    ['too many points', 0, 200_000 * MIN, 'minute']
  ]
  for (const [what, from, to, step] of badArgs) {
    await t.rejects(h.query('post:1', from, to, step as HistoryStep), { code: 'invalid_argument' }, what)
  }

  const records = workload()
  const half = Math.floor(records.length / 2)
  for (const r of records.slice(0, half)) h.add(r)
  await h.flush()
  for (const r of records.slice(half)) h.add(r)
  t.ok(h.status().pendingRows > 0, 'part of the history is only in memory')
  await checkSeries(t, h, records, 'half flushed')
  await h.flush()
  t.match(h.status(), { ok: true, pendingRows: 0, unconfirmedRows: 0, droppedRecords: 0 })
  await checkSeries(t, h, records, 'all flushed')

  // A retried insert that ClickHouse had already applied: the very same rows arrive twice.
  const rows = await (await c.query({ query: `SELECT key, toUInt32(minute) AS minute, partition, epoch, seq, delta FROM ${tbl}`, format: 'JSONEachRow' })).json<Record<string, unknown>>()
  await c.insert({ table: tbl, values: rows, format: 'JSONEachRow' })
  t.equal(await rawCount(ch, tbl), rows.length * 2, 'the table really holds every row twice')
  await checkSeries(t, h, records, 'after a duplicated insert')

  // Records fed again (replay) are not added again.
  for (const r of records) h.add(r)
  t.equal(h.status().pendingRows, 0)
  await checkSeries(t, h, records, 'after feeding the records again')
})

t.test('a restarted sink knows what ClickHouse holds; adopt() picks up another owner\'s progress', async (t) => {
  const ch = await startClickHouse(t)
  const tbl = table()
  const now = Date.now()
  const first = await ClickHouseHistory.open({ url: ch.url, table: tbl, flushIntervalMs: 3_600_000 })
  const records = [rec(5, 1, now, { 'post:a': 3 }), rec(5, 2, now, { 'post:a': 4 }), rec(6, 1, now, { 'post:b': 1 })]
  for (const r of records) first.add(r)
  await first.close()

  const second = await ClickHouseHistory.open({ url: ch.url, table: tbl, flushIntervalMs: 3_600_000 })
  t.teardown(async () => { await second.close() })
  t.equal(second.storedSeq(5), 2)
  t.equal(second.storedSeq(6), 1)
  for (const r of records) second.add(r) // recovery feeds the log tail again
  second.add(rec(5, 3, now, { 'post:a': 10 }))
  await second.flush()
  const from = now - 10 * MIN
  t.same(await second.query('post:a', from, now + MIN, 'hour'), [{ ts: Math.floor(now / 3_600_000) * 3_600_000, value: 17 }])

  // Partition 7 is written by another node while this one is running; this node then takes it over.
  const other = await ClickHouseHistory.open({ url: ch.url, table: tbl, flushIntervalMs: 3_600_000 })
  other.add(rec(7, 1, now, { 'post:c': 5 }))
  other.add(rec(7, 2, now, { 'post:c': 6 }))
  await other.close()
  t.equal(second.storedSeq(7), undefined)
  await second.adopt([7])
  t.equal(second.storedSeq(7), 2)
  second.add(rec(7, 2, now, { 'post:c': 6 }))
  second.add(rec(7, 3, now, { 'post:c': 1 }))
  t.same(await second.query('post:c', from, now + MIN, 'day'), [{ ts: Math.floor(now / 86_400_000) * 86_400_000, value: 12 }])
})

t.test('outage: ClickHouse stopped, then a hung insert; everything lands once afterwards', async (t) => {
  const ch = await startClickHouse(t)
  const tbl = table()
  const h = await ClickHouseHistory.open({ url: ch.url, table: tbl, flushIntervalMs: 3_600_000, requestTimeoutMs: 1000 })
  t.teardown(async () => { await h.close(0) })
  const records = workload()
  const third = Math.floor(records.length / 3)
  for (const r of records.slice(0, third)) h.add(r)
  await h.flush()

  await ch.stop()
  for (const r of records.slice(third, 2 * third)) h.add(r)
  await t.rejects(h.flush(), { code: 'storage_unavailable' })
  t.match(h.status(), { ok: false, error: /insert/, pendingRows: 0 })
  t.ok(h.status().unconfirmedRows > 0, 'the failed batch is kept')
  for (const r of records.slice(2 * third)) h.add(r)
  t.ok(h.status().pendingRows > 0, 'new records buffer beside it')
  await t.rejects(h.query('post:0', DAY0, DAY0 + MIN, 'minute'), { code: 'storage_unavailable' })

  await ch.restart()
  await h.flush() // the kept batch, exactly as first sent
  await h.flush() // what arrived meanwhile
  t.match(h.status(), { ok: true, pendingRows: 0, unconfirmedRows: 0 })
  await checkSeries(t, h, records, 'after the restart')

  // A hung server: the insert times out on our side but may still be applied when it wakes up.
  const more = [rec(0, 10_000, DAY0 + 5 * MIN, { 'post:0': 1000 }), rec(1, 10_000, DAY0 + 5 * MIN, { 'video:shared': 500 })]
  for (const r of more) h.add(r)
  ch.pause()
  await t.rejects(h.flush(), { code: 'storage_unavailable' })
  ch.resume()
  await h.flush()
  await checkSeries(t, h, [...records, ...more], 'after a hung insert was retried')
})

t.test('memory stays bounded during an outage: past maxPendingRows records are dropped and counted', async (t) => {
  const ch = await startClickHouse(t)
  const tbl = table()
  const h = await ClickHouseHistory.open({ url: ch.url, table: tbl, flushIntervalMs: 3_600_000, maxPendingRows: 10, requestTimeoutMs: 1000 })
  t.teardown(async () => { await h.close(0) })
  await ch.stop('SIGKILL')
  const kept: DeltaRecord[] = []
  for (let seq = 1; seq <= 20; seq++) {
    const r = rec(0, seq, DAY0 + seq * MIN, { 'post:0': seq, [`post:x${seq}`]: 1 })
    if (seq <= 5) kept.push(r) // 2 rows each: 5 records fill the 10-row buffer
    h.add(r)
  }
  t.match(h.status(), { pendingRows: 10, droppedRecords: 15 })
  await ch.restart()
  await h.flush()
  t.same(await h.query('post:0', DAY0, DAY0 + 60 * MIN, 'hour'), expected(kept, 'post:0', DAY0, DAY0 + 60 * MIN, 'hour'))
  t.equal(h.storedSeq(0), 20, 'dropped records are not retried later')
})
