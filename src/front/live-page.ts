// GET /: a small live page of the node, served as one HTML document with its script inline (no
// build step). It polls /metrics once a second and works out rates and the p99 from the change
// between two scrapes, lists the counters rising fastest (/v1/top), and looks a counter up.
export const LIVE_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>counterd — live</title>
<link rel="icon" href="data:,">
<style>
  :root { font-family: system-ui, sans-serif; color: #1d232a; background: #f6f7f9; }
  body { margin: 0 auto; max-width: 960px; padding: 24px; }
  h1 { font-size: 20px; margin: 0 0 16px; }
  h1 small { font-weight: normal; color: #66707a; font-size: 13px; margin-left: 8px; }
  .tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 12px; }
  .tile { background: #fff; border-radius: 8px; padding: 12px 14px; box-shadow: 0 1px 2px #0001; }
  .tile .label { color: #66707a; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
  .tile .value { font-size: 26px; font-variant-numeric: tabular-nums; margin-top: 4px; }
  section { background: #fff; border-radius: 8px; padding: 12px 14px; margin-top: 16px; box-shadow: 0 1px 2px #0001; }
  h2 { font-size: 14px; margin: 0 0 8px; }
  table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
  td, th { text-align: left; padding: 4px 6px; border-bottom: 1px solid #eef0f2; font-size: 14px; }
  th:last-child, td:last-child { text-align: right; }
  form { display: flex; gap: 8px; }
  input { flex: 1; padding: 6px 8px; font-size: 14px; }
  button { padding: 6px 12px; font-size: 14px; }
  #lookup-result { margin-top: 8px; font-size: 14px; min-height: 1.2em; }
  .bad { color: #b3261e; }
</style>
</head>
<body>
<h1>counterd <small id="status">connecting…</small></h1>
<div class="tiles">
  <div class="tile"><div class="label">increments/s</div><div class="value" id="increments">–</div></div>
  <div class="tile"><div class="label">reads/s</div><div class="value" id="reads">–</div></div>
  <div class="tile"><div class="label">HTTP p99</div><div class="value" id="p99">–</div></div>
  <div class="tile"><div class="label">stream ack p99</div><div class="value" id="ack-p99">–</div></div>
  <div class="tile"><div class="label">in flight</div><div class="value" id="inflight">–</div></div>
  <div class="tile"><div class="label">shards</div><div class="value" id="shards">–</div></div>
  <div class="tile"><div class="label">counters</div><div class="value" id="counters">–</div></div>
</div>
<section>
  <h2>Rising fastest</h2>
  <table><thead><tr><th>counter</th><th>increments/s</th></tr></thead><tbody id="top"></tbody></table>
</section>
<section>
  <h2>Look a counter up</h2>
  <form id="lookup"><input id="lookup-key" placeholder="type:id, e.g. post:123" autocomplete="off"><button>Get</button></form>
  <div id="lookup-result"></div>
</section>
<script>
'use strict'
const INCREMENT_KINDS = ['increment', 'increment_actor']
const READ_KINDS = ['get', 'unique', 'rate', 'like_count', 'has_liked']
const $ = (id) => document.getElementById(id)

// "name{a="x",b="y"} 12" lines → [{name, labels, value}]
function parseMetrics (text) {
  const out = []
  for (const line of text.split('\\n')) {
    if (line === '' || line[0] === '#') continue
    const m = /^([a-zA-Z_:][\\w:]*)(?:\\{(.*)\\})? (\\S+)$/.exec(line)
    if (m === null) continue
    const labels = {}
    if (m[2]) for (const l of m[2].matchAll(/(\\w+)="((?:[^"\\\\]|\\\\.)*)"/g)) labels[l[1]] = l[2]
    out.push({ name: m[1], labels, value: Number(m[3]) })
  }
  return out
}

const sum = (ms, name, keep = () => true) => ms.filter(m => m.name === name && keep(m.labels)).reduce((a, m) => a + m.value, 0)

// Cumulative bucket counts by upper bound, summed over every series of a histogram.
function buckets (ms, name) {
  const b = new Map()
  for (const m of ms) if (m.name === name + '_bucket') b.set(m.labels.le, (b.get(m.labels.le) || 0) + m.value)
  return b
}

// The quantile of the observations between two scrapes (the bucket's upper bound, as Prometheus rounds up).
function quantile (q, before, after) {
  const les = [...after.keys()].sort((x, y) => (x === '+Inf' ? Infinity : Number(x)) - (y === '+Inf' ? Infinity : Number(y)))
  const total = (after.get('+Inf') || 0) - (before.get('+Inf') || 0)
  if (total <= 0) return null
  for (const le of les) {
    if ((after.get(le) || 0) - (before.get(le) || 0) >= q * total) return le === '+Inf' ? Infinity : Number(le)
  }
  return null
}

const fmt = (n) => n >= 1e6 ? (n / 1e6).toFixed(2) + 'M' : n >= 1e4 ? (n / 1e3).toFixed(1) + 'k' : String(Math.round(n))
const ms = (s) => s === null ? '–' : s === Infinity ? '> 5 s' : s < 1 ? '≤ ' + (s * 1000).toFixed(s < 0.001 ? 1 : 0) + ' ms' : '≤ ' + s + ' s'

let last = null
async function poll () {
  try {
    const r = await fetch('/metrics', { cache: 'no-store' })
    if (!r.ok) throw new Error('metrics answered ' + r.status)
    const m = parseMetrics(await r.text())
    const now = performance.now()
    const sample = {
      at: now,
      increments: sum(m, 'counterd_ops_total', l => INCREMENT_KINDS.includes(l.kind)),
      reads: sum(m, 'counterd_ops_total', l => READ_KINDS.includes(l.kind)),
      http: buckets(m, 'counterd_http_request_duration_seconds'),
      ack: buckets(m, 'counterd_stream_ack_duration_seconds')
    }
    $('inflight').textContent = fmt(sum(m, 'counterd_inflight_ops'))
    $('shards').textContent = fmt(sum(m, 'counterd_shards'))
    $('counters').textContent = fmt(sum(m, 'counterd_counters'))
    $('status').textContent = sum(m, 'counterd_ready') === 1 ? 'ready' : 'not ready'
    $('status').className = sum(m, 'counterd_ready') === 1 ? '' : 'bad'
    if (last !== null) {
      const secs = (now - last.at) / 1000
      $('increments').textContent = fmt(Math.max(0, sample.increments - last.increments) / secs)
      $('reads').textContent = fmt(Math.max(0, sample.reads - last.reads) / secs)
      $('p99').textContent = ms(quantile(0.99, last.http, sample.http))
      $('ack-p99').textContent = ms(quantile(0.99, last.ack, sample.ack))
    }
    last = sample
  } catch (err) {
    $('status').textContent = 'unreachable: ' + err.message
    $('status').className = 'bad'
  }
}

async function refreshTop () {
  try {
    const r = await fetch('/v1/top?k=10', { cache: 'no-store' })
    const body = await r.json()
    const rows = (body.top || []).map(e => {
      const tr = document.createElement('tr')
      const key = document.createElement('td')
      key.textContent = e.key
      const rate = document.createElement('td')
      rate.textContent = e.rate_per_sec.toFixed(1)
      tr.append(key, rate)
      return tr
    })
    $('top').replaceChildren(...rows)
  } catch (err) { /* the status line already says when the node is unreachable */ }
}

$('lookup').addEventListener('submit', async (ev) => {
  ev.preventDefault()
  const key = $('lookup-key').value.trim()
  const colon = key.indexOf(':')
  const out = $('lookup-result')
  if (colon < 1) { out.textContent = 'give a key as type:id'; out.className = 'bad'; return }
  const r = await fetch('/v1/counter/' + encodeURIComponent(key.slice(0, colon)) + '/' + encodeURIComponent(key.slice(colon + 1)))
  const body = await r.json()
  if (r.ok) { out.textContent = body.type + ':' + body.id + ' = ' + body.value; out.className = '' } else { out.textContent = body.error.code + ': ' + body.error.message; out.className = 'bad' }
})

poll()
refreshTop()
setInterval(poll, 1000)
setInterval(refreshTop, 2000)
</script>
</body>
</html>
`
