// History on a real node without ClickHouse: GET /v1/counter/{type}/{id}/history answers from the
// partitions' own minute buckets, which survive kill -9 exactly (snapshot + WAL replay, nothing
// counted twice); client errors are logged at debug, without a stack.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { queryValues, startNode } from './support/node-process'
import { Tally, runLoad } from './support/load'

interface Reply { type: string, id: string, step: string, from: number, to: number, points: Array<{ ts: number, value: number }> }

const HOUR = 3_600_000

async function history (base: string, key: string, query: string): Promise<Reply> {
  const [type, id] = key.split(':')
  const r = await fetch(`${base}/v1/counter/${type}/${id}/history?${query}`)
  const body = await r.json() as Reply
  if (r.status !== 200) throw new Error(`history of ${key}: ${r.status} ${JSON.stringify(body)}`)
  return body
}

/** Every key's minute series over a window around now (the test's data all lies in it). */
async function allHistory (base: string, keys: string[], from: number, to: number): Promise<Record<string, Reply['points']>> {
  const out: Record<string, Reply['points']> = {}
  for (const key of keys) out[key] = (await history(base, key, `from=${from}&to=${to}&step=minute`)).points
  return out
}

const sum = (points: Reply['points']): number => points.reduce((a, p) => a + p.value, 0)

t.test('history without ClickHouse survives kill -9: the same buckets, each record counted once', async (t) => {
  // No periodic checkpoint: the first recovery is all WAL replay; the node checkpoints once
  // recovered, so the second recovers from those snapshots plus the WAL after them.
  let node = await startNode(t, { env: { ACK_MODE: 'durable', CHECKPOINT_INTERVAL_MS: '600000', WORKERS: '2' } })
  const from = Date.now() - HOUR
  const to = Date.now() + HOUR
  const tally = new Tally()
  let stopAt = Date.now() + 1500
  await runLoad({ base: node.base, keys: 30, httpClients: 6, streams: 2, opsPerFrame: 30, until: () => Date.now() > stopAt, seed: 7, tally, clientIdPrefix: 'h1' })
  const keys = tally.keys()
  const values = await queryValues(node.base, keys)
  const before = await allHistory(node.base, keys, from, to)
  for (const key of keys) t.equal(sum(before[key]), values[key], `${key}: its minutes sum to its value`)
  const one = await history(node.base, keys[0], `from=${from}&to=${to}&step=minute`)
  t.same([one.type + ':' + one.id, one.step, one.from, one.to], [keys[0], 'minute', from, to], 'the reply names what was asked')
  for (const p of one.points) t.equal(p.ts % 60_000, 0, 'buckets start on a minute')

  await node.kill9()
  node = await node.restart()
  t.match(node.output(), /"recordsReplayed":[1-9]/, 'the restart replayed the WAL')
  t.same(await queryValues(node.base, keys), values, 'values recovered')
  t.same(await allHistory(node.base, keys, from, to), before, 'every key\'s minutes recovered exactly')

  // Again with the kill in the middle of the load, once the recovered node has written its
  // snapshots: what was recovered (snapshot + WAL after it) must still add up.
  const snapshots = path.join(node.dataDir, 'snapshots')
  while (fs.readdirSync(snapshots).filter((f) => f.endsWith('.snap')).length === 0) await new Promise((resolve) => setTimeout(resolve, 20))
  stopAt = Infinity
  let killed = false
  const load = runLoad({ base: node.base, keys: 30, httpClients: 6, streams: 2, opsPerFrame: 30, until: () => killed, seed: 8, tally, clientIdPrefix: 'h2' })
  await new Promise((resolve) => setTimeout(resolve, 900))
  await node.kill9()
  killed = true
  await load
  node = await node.restart()
  t.match(node.output(), /"recordsReplayed":[1-9]/, 'the second restart replayed the WAL after the snapshots')
  const after = await queryValues(node.base, keys)
  const recovered = await allHistory(node.base, keys, from, to)
  for (const key of keys) {
    t.equal(sum(recovered[key]), after[key], `after a kill under load, ${key}'s minutes sum to its value`)
    t.ok(after[key] >= values[key], `${key} kept what it had`)
  }
  // Hour and day steps are the minutes summed.
  for (const key of keys.slice(0, 5)) {
    const hours = (await history(node.base, key, `from=${from}&to=${to}&step=hour`)).points
    const days = (await history(node.base, key, `from=${from}&to=${to}&step=day`)).points
    t.equal(sum(hours), after[key], `${key}: hours sum to the value`)
    t.equal(sum(days), after[key], `${key}: days sum to the value`)
    for (const p of hours) t.equal(p.ts % HOUR, 0, 'hour buckets start on the hour')
    for (const p of days) t.equal(p.ts % (24 * HOUR), 0, 'day buckets start at 00:00 UTC')
  }
  // A range with no minutes kept answers no points.
  t.same((await history(node.base, keys[0], `from=${from - 48 * HOUR}&to=${from - 24 * HOUR}`)).points, [])
  t.same((await history(node.base, 'post:never', `from=${from}&to=${to}`)).points, [], 'a counter never changed: no points')
})

t.test('client errors are logged at debug without a stack; history off answers 404', async (t) => {
  const node = await startNode(t, { env: { LOG_LEVEL: 'debug', HISTORY_RETENTION_MINUTES: '0', WORKERS: '2' } })
  const cases: Array<[string, number, string]> = [
    ['/v1/counter/post/1/history', 404, 'not_found'],
    ['/v1/counter/post/2/history', 404, 'not_found'], // the other shard too (another partition)
    ['/v1/counter/post/1/history?step=week', 400, 'invalid_argument'],
    ['/v1/counter/post/1/history?from=9&to=3', 400, 'invalid_argument'],
    ['/v1/counter/BAD/1', 400, 'invalid_type'],
    ['/nothing/here', 404, 'not_found']
  ]
  for (const [path, status, code] of cases) {
    const r = await fetch(node.base + path)
    const body = await r.json() as { error: { code: string, message: string } }
    t.equal(r.status, status, path)
    t.equal(body.error.code, code, path)
  }
  const off = await (await fetch(node.base + '/v1/counter/post/1/history')).json() as { error: { message: string } }
  t.match(off.error.message, /HISTORY_RETENTION_MINUTES/, 'the 404 says why')
  await new Promise((resolve) => setTimeout(resolve, 200)) // the log lines are written by now
  const lines = node.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number, msg: string, code?: string, stack?: unknown, err?: unknown })
  const refused = lines.filter((l) => l.msg === 'request refused')
  for (const [, , code] of cases) t.ok(refused.some((l) => l.code === code && l.level === 20), `a debug line for ${code}`)
  t.equal(lines.filter((l) => l.level >= 50).length, 0, 'nothing logged as an error')
  t.equal(refused.filter((l) => l.err !== undefined || l.stack !== undefined).length, 0, 'no stack in those lines')
  t.notMatch(node.output(), /"stack"/, 'no stack anywhere in the log')
})

t.test('at the default log level client errors write nothing', async (t) => {
  const node = await startNode(t, { env: { WORKERS: '1' } })
  const before = node.output().length
  for (let i = 0; i < 5; i++) await (await fetch(`${node.base}/v1/counter/post/1/history?step=week`)).text()
  t.equal((await fetch(`${node.base}/v1/counter/post/1/history`)).status, 200, 'history answers without ClickHouse')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.notMatch(node.output().slice(before), /request refused/)
})
