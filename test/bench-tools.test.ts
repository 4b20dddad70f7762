// The benchmark's own machinery: redis-benchmark and wrk output parsing, the Zipf key picker, the
// latency histogram, the WebSocket load generator's exact ack counting (against a small ws server
// that decodes every frame with the benchmark codec and answers some with error acks), and the
// benchmark's own servers: the bare uWS peer (routes, validation, counts summed over threads, wrk
// run against it for real) and the WebSocket ceiling (acks with the frame's seq); the ring suite's
// key picking (every key owned by one node), its check of a settled ring, and the parsing of the
// Kafka records a run appended. Servers run as real processes on free ports; no test asserts a timing.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { WebSocketServer } from 'ws'
import { ACK_ERROR, ACK_OK, decodeFrame, encodeAck, encodeFrame } from '../client/frame-codec'
import { LatencyHistogram } from '../bench/histogram'
import { parseKcatValues } from '../bench/kafka-records'
import { readCounterd } from '../bench/readback'
import { parseRedisBenchmarkCsv, redisBenchmarkArgs } from '../bench/redis-benchmark'
import { pickOwnedIds, ringProblem, RING_PARTITIONS, type RingView } from '../bench/suites/ring'
import { startUwsPeer } from '../bench/uws-peers'
import { incrementCheck, parseWrkOutput, readCheck, runWrk, writeExpectedFile, writeIdsFile, wrkTimeMs, type WrkResult } from '../bench/wrk'
import { buildStreamTemplates, expectedValues, runWsLoad } from '../bench/ws-load'
import { clientFrame, RawWebSocket } from '../bench/ws-raw-client'
import { ZipfKeys } from '../bench/zipf'
import { partitionOf } from '../src/core/keys'
import { decodeRecord, encodeRecord } from '../src/core/record-codec'

t.test('redis-benchmark CSV parsing', async (t) => {
  const out = 'noise line\n"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"\n' +
    '"INCR","49188.39","0.748","0.192","0.655","1.191","3.023","10.871"\n'
  t.same(parseRedisBenchmarkCsv(out), [{ test: 'INCR', rps: 49188.39, avgMs: 0.748, minMs: 0.192, p50Ms: 0.655, p95Ms: 1.191, p99Ms: 3.023, maxMs: 10.871 }])
  const custom = '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"\n"GET counter:__rand_int__","45641.26","0.817","0.184","0.663","1.535","3.775","40.383"'
  t.equal(parseRedisBenchmarkCsv(custom)[0].test, 'GET counter:__rand_int__')
  t.throws(() => parseRedisBenchmarkCsv('ERROR: connection refused'), /no CSV header/)
  t.throws(() => parseRedisBenchmarkCsv('"test","rps"\n"INCR","1"'), /lacks column/)
  t.throws(() => parseRedisBenchmarkCsv(out.replace('"49188.39"', '"n/a"')), /rps is not a number/)
  t.same(redisBenchmarkArgs({ port: 7, connections: 64, requests: 1000, keyspace: 100, pipeline: 64, tests: ['incr'] }),
    ['-h', '127.0.0.1', '-p', '7', '-c', '64', '-n', '1000', '-P', '64', '--csv', '-r', '100', '-t', 'incr'])
})

t.test('Zipf picks are seeded, in range and skewed', async (t) => {
  const a = new ZipfKeys({ n: 1000, seed: 7 }).table(50_000)
  const b = new ZipfKeys({ n: 1000, seed: 7 }).table(50_000)
  t.same(a, b, 'same seed, same sequence')
  const z = new ZipfKeys({ n: 1000, seed: 7 })
  const counts = new Map<number, number>()
  let outOfRange = 0
  for (const id of a) {
    if (id >= 1000) outOfRange++
    counts.set(id, (counts.get(id) ?? 0) + 1)
  }
  t.equal(outOfRange, 0, 'every id is below n')
  const hottest = z.idOfRank(0)
  const share = (counts.get(hottest) ?? 0) / a.length
  t.ok(Math.abs(share - z.probabilityOfRank(0)) < 0.01, `rank 1 share ${share} ≈ ${z.probabilityOfRank(0)}`)
  t.ok((counts.get(hottest) ?? 0) > (counts.get(z.idOfRank(99)) ?? 0) * 20, 'rank 1 far above rank 100')
  t.throws(() => new ZipfKeys({ n: 0 }), RangeError)
})

t.test('histogram percentiles', async (t) => {
  const h = new LatencyHistogram()
  for (let i = 1; i <= 1000; i++) h.record(i * 10) // 10 µs .. 10 ms
  t.ok(Math.abs(h.percentileMs(50) - 5) / 5 < 0.04, `p50 ${h.percentileMs(50)}`)
  t.ok(Math.abs(h.percentileMs(99) - 9.9) / 9.9 < 0.04, `p99 ${h.percentileMs(99)}`)
  t.equal(h.percentileMs(100), 10)
  const other = new LatencyHistogram()
  other.record(50_000)
  h.merge(other)
  t.equal(h.count, 1001)
  t.equal(h.percentileMs(100), 50)
  t.equal(new LatencyHistogram().percentileMs(99), 0)
})

t.test('load generator counts every ack exactly', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise(resolve => wss.once('listening', resolve))
  t.teardown(() => new Promise<void>(resolve => { for (const c of wss.clients) c.terminate(); wss.close(() => resolve()) }))
  const applied = new Map<string, number>()
  let frames = 0
  wss.on('connection', (ws) => {
    ws.on('message', (data: Buffer) => {
      const f = decodeFrame(data)
      frames++
      // Every 7th frame is refused (not applied); answers are delayed so several stay in flight
      // and come back out of order.
      const refuse = frames % 7 === 0
      if (!refuse) for (const [type, id, d] of f.ops) applied.set(`${type}:${id}`, (applied.get(`${type}:${id}`) ?? 0) + d)
      setTimeout(() => ws.send(refuse ? encodeAck(f.seq, { code: 'overloaded', message: 'busy' }) : encodeAck(f.seq)), frames % 3)
    })
  })
  const port = (wss.address() as { port: number }).port
  const templates = buildStreamTemplates({ count: 40, opsPerFrame: 50, type: 'bt', keys: new ZipfKeys({ n: 500, seed: 3 }) })
  for (const threads of [1, 2]) {
    applied.clear()
    frames = 0
    const r = await runWsLoad({ url: `ws://127.0.0.1:${port}/v1/stream`, connections: 3, framesInFlight: 8, frames: templates.frames, durationMs: 300, threads })
    t.equal(r.unanswered, 0, `threads ${threads}: nothing left in flight`)
    t.equal(r.strayAcks, 0)
    t.same(r.closes, [])
    t.equal(r.framesSent, frames, 'server saw every frame sent')
    t.equal(r.framesAcked + (r.errorAcks.overloaded ?? 0), frames, 'every frame answered once')
    t.ok((r.errorAcks.overloaded ?? 0) > 0, 'error acks were counted')
    const expected = expectedValues(templates, r.acks, 500)
    let mismatched = 0
    for (let id = 0; id < 500; id++) if ((applied.get(`bt:${id}`) ?? 0) !== expected[id]) mismatched++
    t.equal(mismatched, 0, 'per-key expectation equals what the server applied')
    t.ok(r.latency.count === frames && r.elapsedMs > 0)
  }
})

// wrk 4.1 output with --latency and the counters script (shape of a real run, numbers edited).
const WRK_OUT = `Running 1s test @ http://127.0.0.1:41099/
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   247.02us  696.02us   8.60ms   95.20%
    Req/Sec    29.53k     8.13k   36.73k    80.95%
  Latency Distribution
     50%  100.00us
     75%  131.00us
     90%  239.00us
     99%    4.05ms
  61625 requests in 1.10s, 9.38MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:  56011.07
Transfer/sec:      8.53MB
wrk-counters {"threads":[{"ok2xx":32550,"other":2,"mismatches":0},{"ok2xx":29072,"other":1,"mismatches":4}]}
`

t.test('wrk output parsing', async (t) => {
  const r = parseWrkOutput(WRK_OUT)
  t.equal(r.requests, 61625)
  t.equal(r.durationSec, 1.1)
  t.equal(r.rps, 56011.07)
  t.equal(r.p50Ms, 0.1)
  t.equal(r.p75Ms, 0.131)
  t.equal(r.p99Ms, 4.05)
  t.equal(r.non2xx, 3)
  t.same(r.socketErrors, { connect: 0, read: 2, write: 0, timeout: 1 })
  t.same(r.threads, [{ ok2xx: 32550, other: 2, mismatches: 0 }, { ok2xx: 29072, other: 1, mismatches: 4 }])
  // A clean run has neither error line; both count as zero.
  const clean = parseWrkOutput(WRK_OUT.replace(/ {2}Socket errors.*\n/, '').replace(/ {2}Non-2xx.*\n/, ''))
  t.equal(clean.non2xx, 0)
  t.same(clean.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 })
  t.equal(parseWrkOutput(WRK_OUT.replace(/wrk-counters.*\n/, '')).threads, null, 'no script line')
  t.equal(wrkTimeMs('1.50s'), 1500)
  t.equal(wrkTimeMs('2.00m'), 120_000)
  t.equal(wrkTimeMs('617.00us'), 0.617)
  t.throws(() => wrkTimeMs('fast'), /not a number with a unit/)
  t.throws(() => parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused'), /no "N requests in T"/)
  t.throws(() => parseWrkOutput(WRK_OUT.replace(/ {2}Latency Distribution[^]*?(?= {2}61625)/, '')), /Latency Distribution/)
  t.throws(() => parseWrkOutput(WRK_OUT.replace('     99%    4.05ms\n', '')), /99% latency/)
  t.throws(() => parseWrkOutput(WRK_OUT.replace('"ok2xx":32550', '"ok2xx":-1')), /integer ok2xx/)
})

t.test('wrk exactness checks', async (t) => {
  const base = parseWrkOutput(WRK_OUT.replace(/ {2}Socket errors.*\n/, '').replace(/ {2}Non-2xx.*\n/, '')
    .replace('"other":2', '"other":0').replace('"other":1', '"other":0').replace('61625 requests', '61622 requests'))
  const r: WrkResult = { ...base, ok2xx: 61622, other: 0, mismatches: 0, connections: 8, okPerSec: 0, command: 'wrk', raw: '' }
  t.ok(incrementCheck(r, 61622).exact, 'every increment answered')
  t.ok(incrementCheck(r, 61630).exact, 'up to one unanswered increment per connection')
  t.notOk(incrementCheck(r, 61631).exact, 'more than that was applied')
  t.notOk(incrementCheck(r, 61621).exact, 'an answered increment is missing')
  t.notOk(incrementCheck({ ...r, other: 1, requests: 61623 }, 61622).exact, 'a non-2xx answer')
  t.notOk(incrementCheck({ ...r, socketErrors: { ...r.socketErrors, read: 1 } }, 61622).exact, 'a socket error')
  t.notOk(incrementCheck({ ...r, requests: 61623 }, 61622).exact, 'wrk and the script disagree')
  t.ok(readCheck(r).exact)
  t.notOk(readCheck({ ...r, mismatches: 1 }).exact, 'a wrong value')
})

async function json (port: number, p: string, body?: string): Promise<{ status: number, body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, body === undefined ? {} : { method: 'POST', body, headers: { 'content-type': 'application/json' } })
  return { status: res.status, body: await res.json() }
}

t.test('bare uWS peer: every thread on one port, routes, validation, counts summed over threads', async (t) => {
  const peer = await startUwsPeer('bare uWS peer (test)', 'bare-uws-server', 2)
  t.teardown(async () => { await peer.stop() })
  t.same(peer.ports, [peer.port, peer.port], 'both threads listen on one port (SO_REUSEPORT)')
  const p0 = peer.port
  // A connection lands on either thread; an answer's value is that thread's share of the count.
  for (const by of [1, 5, -2]) {
    const r = await json(p0, '/v1/counter/post/1/increment', JSON.stringify({ by }))
    t.equal(r.status, 200)
    t.match(r.body, { type: 'post', id: '1', value: Number }, `by ${by}`)
  }
  t.same(await json(p0, '/v1/counters/query', '{"keys":["post:1","post:2"]}'), { status: 200, body: { values: { 'post:1': 4, 'post:2': 0 } } }, 'the query sums every thread')
  t.same(await json(p0, '/v1/bench/load', '{"values":{"rd:1":7,"rd:2":9}}'), { status: 200, body: { loaded: 2 } })
  t.same((await json(p0, '/v1/counter/rd/2')).body, { type: 'rd', id: '2', value: 9 }, 'loaded values answer on every thread')
  t.same((await json(p0, '/v1/counters/query', '{"keys":["rd:1","rd:2"]}')).body, { values: { 'rd:1': 7, 'rd:2': 9 } }, 'loaded values count once')
  const error = async (port: number, p: string, body: string | undefined, status: number, code: string): Promise<void> => {
    const r = await json(port, p, body)
    t.equal(r.status, status, `${p} ${body ?? ''} → ${status}`)
    t.equal(r.body?.error?.code, code)
  }
  await error(p0, '/v1/counter/BAD/1/increment', '', 400, 'invalid_type')
  await error(p0, '/v1/counter/BAD/1', undefined, 400, 'invalid_type')
  await error(p0, '/v1/counter/post/a%20b/increment', '', 400, 'invalid_id')
  await error(p0, '/v1/counter/post/1/increment', '{"by":1.5}', 400, 'invalid_delta')
  await error(p0, '/v1/counter/post/1/increment', '{"by":9007199254740992}', 400, 'invalid_delta')
  await error(p0, '/v1/counter/post/1/increment', '{"by":', 400, 'malformed_json')
  await error(p0, '/v1/counter/post/1/increment', '[1]', 400, 'invalid_body')
  await error(p0, '/v1/counters/query', '{"keys":["nocolon"]}', 400, 'invalid_key')
  await error(p0, '/v1/nothing', undefined, 404, 'not_found')
  t.equal((await json(p0, '/v1/counters/query', '{"keys":["post:1"]}')).body.values['post:1'], 4, 'refused requests changed nothing')
})

t.test('wrk against the bare peer: real output parses and the counts hold', async (t) => {
  const peer = await startUwsPeer('bare uWS peer (wrk test)', 'bare-uws-server', 2)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-wrk-test-'))
  t.teardown(async () => { await peer.stop(); fs.rmSync(dir, { recursive: true, force: true }) })
  const idsFile = path.join(dir, 'ids')
  writeIdsFile(idsFile, new ZipfKeys({ n: 100, seed: 5 }).table(1000))
  const r = await runWrk({ ports: peer.ports, threads: 2, connections: 8, durationSec: 1, mode: 'increment', type: 'wt', idsFile })
  t.ok(r.requests > 0, `${r.requests} answers`)
  t.equal(r.ok2xx, r.requests, 'all 2xx, and the script counted what wrk counted')
  t.equal(r.threads?.length, 2, 'one count per wrk thread')
  t.ok((r.threads ?? []).every(x => x.ok2xx > 0), 'both threads (both ports) answered')
  t.equal(r.non2xx, 0)
  t.same(r.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 })
  t.ok(r.p50Ms > 0 && r.p50Ms <= r.p75Ms && r.p75Ms <= r.p90Ms && r.p90Ms <= r.p99Ms, 'percentiles parsed in order')
  t.ok(r.durationSec > 0)
  const values = await readCounterd(peer.port, 'wt', 100)
  const sum = values.reduce((a, b) => a + b, 0)
  const check = incrementCheck(r, sum)
  t.ok(check.exact, check.check)

  // Reads: the script checks each answer's value against the expected file; one entry is wrong
  // on purpose, so exactly the answers for that id are mismatches.
  const load: Record<string, number> = {}
  for (let id = 0; id < 100; id++) load[`wr:${id}`] = id * 3
  t.equal((await json(peer.port, '/v1/bench/load', JSON.stringify({ values: load }))).status, 200)
  const expectedFile = path.join(dir, 'expected')
  writeExpectedFile(expectedFile, Array.from({ length: 100 }, (_, id): [string, number] => [String(id), id === 7 ? -1 : id * 3]))
  writeIdsFile(idsFile, Array.from({ length: 100 }, (_, i) => i))
  const g = await runWrk({ ports: peer.ports, threads: 2, connections: 4, durationSec: 1, mode: 'get', type: 'wr', idsFile, expectedFile })
  t.ok(g.ok2xx > 100, `${g.ok2xx} answers`)
  t.ok(g.mismatches > 0 && g.mismatches < g.ok2xx / 20, `only id 7 mismatches (${g.mismatches} of ${g.ok2xx})`)
  t.notOk(readCheck(g).exact)
})

t.test('WebSocket ceiling acks a real frame with its seq on every thread', async (t) => {
  const peer = await startUwsPeer('ws ceiling (test)', 'ws-ceiling-server', 2)
  t.teardown(async () => { await peer.stop() })
  for (const port of peer.ports) {
    const answers: Buffer[] = []
    let wake: () => void = () => {}
    const ws = await RawWebSocket.connect(`ws://127.0.0.1:${port}/v1/stream`, {
      onMessage: (payload) => { answers.push(Buffer.from(payload)); wake() },
      onClose: () => { wake() }
    })
    const next = async (): Promise<Buffer> => {
      if (answers.length === 0) await new Promise<void>((resolve) => { wake = resolve })
      return answers.shift() as Buffer
    }
    ws.sendFrame(clientFrame(encodeFrame(0xdeadbeef, [['post', '1', 1], ['video', '9', -300]])))
    t.same([...await next()], [ACK_OK, 0xef, 0xbe, 0xad, 0xde], `port ${port}: ok ack with the frame's seq`)
    const unknownKind = encodeFrame(42, [['post', '1', 1]])
    unknownKind[0] = 0x02
    ws.sendFrame(clientFrame(unknownKind))
    const err = await next()
    t.equal(err[0], ACK_ERROR)
    t.equal(err.readUInt32LE(1), 42)
    t.equal(JSON.parse(err.toString('utf8', 5)).code, 'malformed_frame')
    ws.close()
  }
})

t.test('ring suite: keys owned by one node, picked by partitionOf', async (t) => {
  const owned = [0, 3, 7, 12, 33, 63]
  const ids = pickOwnedIds('rg1o', owned, 500)
  t.equal(ids.length, 500)
  t.ok(ids.every((id) => owned.includes(partitionOf(`rg1o:${id}`, RING_PARTITIONS))), 'every key in an owned partition')
  t.same(ids, [...ids].sort((a, b) => a - b), 'ids in increasing order')
  t.equal(new Set(ids).size, 500, 'no id twice')
  const skipped = Array.from({ length: ids[ids.length - 1] }, (_, id) => id).filter((id) => !ids.includes(id))
  t.ok(skipped.every((id) => !owned.includes(partitionOf(`rg1o:${id}`, RING_PARTITIONS))), 'the ids left out below the last are all in other partitions')
  t.same(pickOwnedIds('rg1o', owned, 500), ids, 'deterministic')
  t.notSame(pickOwnedIds('rg1f', owned, 50), ids.slice(0, 50), 'the type is part of the key')
  const all = Array.from({ length: RING_PARTITIONS }, (_, p) => p)
  t.same(pickOwnedIds('x', all, 5), [0, 1, 2, 3, 4], 'owning every partition takes the first ids')
  t.same(pickOwnedIds('x', [5], 3, 8).map((id) => partitionOf(`x:${id}`, 8)), [5, 5, 5], 'another partition count')
  t.same(pickOwnedIds('x', owned, 0), [])
  t.throws(() => pickOwnedIds('x', [], 10), /owns no partition/)
  t.throws(() => pickOwnedIds('x', [64], 10), /not in 0\.\.63/)
  t.throws(() => pickOwnedIds('x', [1], -1), /non-negative/)
})

t.test('ring suite: a settled ring of two', async (t) => {
  const a = 'http://127.0.0.1:1'
  const b = 'http://127.0.0.1:2'
  const half = (odd: number): number[] => Array.from({ length: 32 }, (_, i) => 2 * i + odd)
  const view = (self: string, generation = 2, members = [{ id: a, url: a, partitions: half(0) }, { id: b, url: b, partitions: half(1) }]): RingView =>
    ({ cluster: 'c', generation, self, members })
  t.equal(ringProblem([view(a), view(b)], [b, a]), '', 'both see the same two members, every partition owned once')
  t.match(ringProblem([view(a), null], [a, b]), /no view/)
  t.match(ringProblem([view(a), view(b, 3)], [a, b]), /generations 2, 3/)
  t.match(ringProblem([view(a, 1, [{ id: a, url: a, partitions: [...half(0), ...half(1)] }]), view(b, 1)], [a, b]), /lists http:\/\/127.0.0.1:1, expected/)
  const gap = [{ id: a, url: a, partitions: half(0) }, { id: b, url: b, partitions: half(1).slice(1) }]
  t.match(ringProblem([view(a, 2, gap), view(b, 2, gap)], [a, b]), /partition 1 has 0 owners/)
  const twice = [{ id: a, url: a, partitions: [...half(0), 1] }, { id: b, url: b, partitions: half(1) }]
  t.match(ringProblem([view(a, 2, twice), view(b, 2, twice)], [a, b]), /partition 1 has 2 owners/)
  t.match(ringProblem([], [a]), /no view/)
})

t.test('Kafka records of a run: kcat output parsed by size, records decoded', async (t) => {
  const rec = (seq: number, keys: string[]): Buffer => encodeRecord({ partition: 7, epoch: 3, seq, ts: 1_800_000_000_000, keys, deltas: keys.map(() => 1), dedup: [] })
  // Values are binary and may hold newlines (a 10-byte key's length byte is one): the parser must
  // go by the size, not by lines.
  const values = [rec(1, ['post:1', 'post:2']), rec(2, ['post:12345']), Buffer.from([10, 10, 1])]
  const raw = Buffer.concat(values.flatMap((v, i) => [Buffer.from(`${100 + i} ${v.length}\n`), v, Buffer.from('\n')]))
  const parsed = parseKcatValues(raw)
  t.same(parsed.map((p) => p.offset), [100, 101, 102])
  t.ok(parsed.every((p, i) => p.value.equals(values[i])), 'every value byte for byte')
  t.same(decodeRecord(parsed[1].value).keys, ['post:12345'], 'and decodes')
  t.same(parseKcatValues(Buffer.from('5 -1\n\n')).map((p) => p.value.length), [0], 'a null value')
  t.same(parseKcatValues(Buffer.alloc(0)), [])
  t.throws(() => parseKcatValues(Buffer.from('5 10\nabc\n')), /inside a value/)
  t.throws(() => parseKcatValues(Buffer.from('% Reached end\n')), /unexpected kcat header/)
  t.throws(() => parseKcatValues(Buffer.from('5 3')), /inside a header/)
})
