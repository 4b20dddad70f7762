// The operations files: the Prometheus alert rules pass promtool's checks and unit tests (each
// alert fires on synthetic series in ops/prometheus/alerts.test.yml), and the Grafana dashboard
// is valid JSON whose every query parses and names only metrics a running node exports.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { startNode } from './support/node-process'

const OPS = path.join(__dirname, '..', '..', 'ops')
const RULES = path.join(OPS, 'prometheus', 'alerts.yml')
const RULE_TESTS = path.join(OPS, 'prometheus', 'alerts.test.yml')
const DASHBOARD = path.join(OPS, 'grafana', 'counterd.json')

async function promtool (args: string[]): Promise<{ code: number, out: string }> {
  return await new Promise((resolve) => {
    execFile('promtool', args, { cwd: path.dirname(RULES) }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : 1), out: stdout + stderr })
    })
  })
}

/** The counterd_* metric families an expression names (histogram series map to their family). */
function metricsIn (expr: string): string[] {
  return [...expr.matchAll(/\bcounterd_[a-z_]+/g)].map(m => m[0].replace(/_(bucket|sum|count)$/, ''))
}

interface Rule { alert: string, expr: string }
const rules = (parse(fs.readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap(g => g.rules)
interface Panel { id: number, title: string, targets: Array<{ expr: string }> }
const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as { title: string, uid: string, panels: Panel[] }
const dashboardExprs = dashboard.panels.flatMap(p => p.targets.map(x => x.expr))

t.test('alert rules: promtool check and unit tests pass; every alert has a test that fires it', async (t) => {
  const check = await promtool(['check', 'rules', RULES])
  t.equal(check.code, 0, check.out)
  t.match(check.out, new RegExp(`SUCCESS: ${rules.length} rules found`))
  const unit = await promtool(['test', 'rules', RULE_TESTS])
  t.equal(unit.code, 0, unit.out)
  t.match(unit.out, /SUCCESS/)

  const tests = parse(fs.readFileSync(RULE_TESTS, 'utf8')) as { tests: Array<{ alert_rule_test?: Array<{ alertname: string, exp_alerts: unknown[] }> }> }
  const fired = new Set(tests.tests.flatMap(x => x.alert_rule_test ?? []).filter(a => a.exp_alerts.length > 0).map(a => a.alertname))
  t.same(rules.map(r => r.alert).filter(a => !fired.has(a)), [], 'alerts without a test that fires them')
  for (const a of ['HighIncrementLatency', 'ClickHouseIngestionLag', 'RedisMemoryHigh', 'FsyncSlow', 'NodeNotReady', 'Shedding']) {
    t.ok(rules.some(r => r.alert === a), `${a} is defined`)
  }
})

t.test('a broken rule file fails promtool (the check can fail)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-ops-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const bad = path.join(dir, 'bad.yml')
  fs.writeFileSync(bad, 'groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: rate(counterd_shed_total[5m] > 0\n')
  t.not((await promtool(['check', 'rules', bad])).code, 0)
})

t.test('dashboard: valid, every query parses', async (t) => {
  t.equal(dashboard.uid, 'counterd')
  t.ok(dashboard.panels.length >= 10, `${dashboard.panels.length} panels`)
  t.equal(new Set(dashboard.panels.map(p => p.id)).size, dashboard.panels.length, 'panel ids are unique')
  for (const p of dashboard.panels) t.ok(p.targets.length > 0 && p.targets.every(x => x.expr.length > 0), `${p.title} has queries`)
  // Every query as a recording rule, with the dashboard variable filled in, goes through promtool's parser.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-ops-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'dashboard-queries.yml')
  const records = dashboardExprs.map((e, i) => `      - record: dashboard_query_${i}\n        expr: ${JSON.stringify(e.replaceAll('$instance', '.*'))}\n`).join('')
  fs.writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${records}`)
  const check = await promtool(['check', 'rules', file])
  t.equal(check.code, 0, check.out)
})

t.test('every metric the alerts and the dashboard name is exported by a node', async (t) => {
  const node = await startNode(t)
  await fetch(`${node.base}/v1/counter/ops/1/increment`, { method: 'POST' })
  const text = await (await fetch(`${node.base}/metrics`)).text()
  const exported = new Set([...text.matchAll(/^# HELP (\S+) /gm)].map(m => m[1]))
  const named = new Set([...rules.map(r => r.expr), ...dashboardExprs].flatMap(metricsIn))
  t.ok(named.size >= 15, `${named.size} metrics named`)
  t.same([...named].filter(n => !exported.has(n)).sort(), [], 'named but not exported')
})
