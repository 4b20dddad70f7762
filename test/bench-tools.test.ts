// The benchmark's own machinery: redis-benchmark output parsing, the Zipf key picker, the latency
// histogram, and the WebSocket load generator's exact ack counting (against a small ws server
// that decodes every frame with the benchmark codec and answers some with error acks).
import t from 'tap'
import { WebSocketServer } from 'ws'
import { decodeFrame, encodeAck } from '../bench/frame-codec'
import { LatencyHistogram } from '../bench/histogram'
import { parseRedisBenchmarkCsv, redisBenchmarkArgs } from '../bench/redis-benchmark'
import { buildStreamTemplates, expectedValues, runWsLoad } from '../bench/ws-load'
import { ZipfKeys } from '../bench/zipf'

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
