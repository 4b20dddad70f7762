// GET /metrics (prom-client): one exposition for the whole node, merged from every shard thread,
// whose histograms and counters match the traffic the test sent.
import http from 'node:http'
import t from 'tap'
import { StreamClient } from './support/stream-client'
import { startNode } from './support/node-process'

type Series = Map<string, number>

/** Parses the text exposition: `name{labels}` → value; also checks every metric has HELP and TYPE. */
function parse (text: string): { series: Series, help: Set<string>, type: Set<string> } {
  const series: Series = new Map()
  const help = new Set<string>()
  const type = new Set<string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    const h = /^# HELP (\S+) /.exec(line)
    if (h !== null) { help.add(h[1]); continue }
    const ty = /^# TYPE (\S+) (counter|gauge|histogram|summary)$/.exec(line)
    if (ty !== null) { type.add(ty[1]); continue }
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (m === null) throw new Error(`not an exposition line: ${line}`)
    series.set(m[1] + (m[2] ?? ''), Number(m[3]))
  }
  return { series, help, type }
}

async function scrape (base: string): Promise<Series> {
  const r = await fetch(base + '/metrics')
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`)
  return parse(await r.text()).series
}

/** One request on a fresh connection, so the kernel spreads requests over the shards. */
async function request (port: number, method: string, path: string, body?: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)) })
    req.on('error', reject)
    req.end(body)
  })
}

t.test('one exposition for the node: every metric named, helped and typed', async (t) => {
  const node = await startNode(t, { env: { WORKERS: '2' } })
  const text = await (await fetch(node.base + '/metrics')).text()
  const { series, help, type } = parse(text)
  const names = new Set([...series.keys()].map(k => k.replace(/\{.*$/, '').replace(/_(bucket|sum|count)$/, '')))
  for (const n of names) {
    t.ok(help.has(n), `${n} has HELP`)
    t.ok(type.has(n), `${n} has TYPE`)
  }
  for (const n of [
    'counterd_http_request_duration_seconds', 'counterd_stream_ack_duration_seconds', 'counterd_commit_duration_seconds', 'counterd_commit_ops',
    'counterd_forward_duration_seconds', 'counterd_checkpoint_duration_seconds', 'counterd_ops_total', 'counterd_http_errors_total',
    'counterd_inflight_ops', 'counterd_shed_total', 'counterd_checkpoint_age_seconds', 'counterd_history_lag_seconds', 'counterd_eventloop_delay_seconds',
    'counterd_counters', 'counterd_resident_memory_bytes', 'counterd_commit_failures_total'
  ]) t.ok(help.has(n), `${n} is exported`)
  t.equal(series.get('counterd_shards'), 2, 'node-wide gauges are taken once, not summed over shards')
  t.equal(series.get('counterd_partitions_owned'), 64, 'an embedded node serves every partition (summed over its shards)')
  t.equal(series.get('counterd_ring_members'), 1, 'and is a ring of one')
  t.equal(series.get('counterd_ready'), 1)
  for (const s of ['0', '1']) t.ok(series.has(`counterd_eventloop_delay_seconds{shard="${s}",quantile="0.99"}`), `event-loop delay of shard ${s}`)
})

t.test('figures follow the traffic, whichever shard answered', async (t) => {
  const node = await startNode(t, { env: { WORKERS: '2', MAX_INFLIGHT_FRAMES: '1' } })
  const before = await scrape(node.base)
  const N = 60
  for (let i = 0; i < N; i++) t.equal(await request(node.port, 'POST', `/v1/counter/mt/k${i}/increment`, '{"by":2}'), 200)
  for (let i = 0; i < 7; i++) t.equal(await request(node.port, 'POST', `/v1/counter/mt/k${i}/increment`, '{"by":0.5}'), 400)
  for (let i = 0; i < N; i++) t.equal(await request(node.port, 'GET', `/v1/counter/mt/k${i}`), 200)

  // Stream frames, acked one by one, then a burst past MAX_INFLIGHT_FRAMES=1 to be shed.
  const c = await StreamClient.connect(node.base, 'metrics-test')
  t.teardown(() => c.close())
  for (let seq = 1; seq <= 5; seq++) t.equal((await c.sendBinary(seq, [{ type: 'mt', id: 's1', by: 1 }, { type: 'mt', id: 's2', by: 1 }])).ok, true)
  const burst = await Promise.all(Array.from({ length: 40 }, async (_, i) => await c.sendBinary(100 + i, [{ type: 'mt', id: 's3', by: 1 }])))
  const shed = burst.filter(a => !a.ok).length
  t.ok(shed > 0, `${shed} of 40 frames sent at once were refused as overloaded`)
  t.ok(burst.every(a => a.ok || a.error?.code === 'overloaded'))

  const after = await scrape(node.base)
  const d = (k: string): number => (after.get(k) ?? 0) - (before.get(k) ?? 0)
  const incr = 'route="POST /v1/counter/:type/:id/increment"'
  t.equal(d(`counterd_http_request_duration_seconds_count{${incr},status_class="2xx"}`), N, 'increments timed as 2xx')
  t.equal(d(`counterd_http_request_duration_seconds_count{${incr},status_class="4xx"}`), 7, 'refused increments timed as 4xx')
  t.equal(d('counterd_http_request_duration_seconds_count{route="GET /v1/counter/:type/:id",status_class="2xx"}'), N)
  t.equal(d(`counterd_http_request_duration_seconds_bucket{le="+Inf",${incr},status_class="2xx"}`), N, 'buckets end at the count')
  t.equal(d('counterd_http_requests_total'), N + 7 + N, 'requests summed over the shards')
  t.equal(d('counterd_http_errors_total{code="invalid_delta"}'), 7)
  const acked = 40 - shed
  t.equal(d('counterd_stream_ack_duration_seconds_count'), 5 + acked, 'every acked frame timed')
  t.equal(d('counterd_ops_total{kind="increment"}'), N + 5 * 2 + acked, 'increments applied')
  t.equal(d('counterd_ops_total{kind="get"}'), N, 'reads answered')
  t.equal(d('counterd_shed_total'), shed, 'shed frames counted')
  t.equal(d('counterd_ws_errors_total{code="overloaded"}'), shed)
  t.ok(d('counterd_forward_duration_seconds_count{kind="write"}') > 0, 'some increments crossed to the other shard')
  t.ok(d('counterd_forward_duration_seconds_count{kind="read"}') > 0, 'some reads crossed to the other shard')
  t.equal(d('counterd_commit_duration_seconds_count{log="wal"}'), d('counterd_commits_total'), 'every commit timed')
  t.equal(d('counterd_commit_ops_sum{log="wal"}'), N + 5 * 2 + acked, 'commits carried every increment once')
  t.equal(after.get('counterd_counters'), N + 3, 'counters held')
  t.equal(after.get('counterd_inflight_ops'), 0)
})
