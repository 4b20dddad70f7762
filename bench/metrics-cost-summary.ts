// Pools the rounds of one or more metrics-cost results (bench/results/.../latest.json) and prints,
// per comparison, the per-round throughput ratio and CPU-per-op ratio against the lean node of
// the same round (median, interquartile range, range) and the pooled CPU-per-op ratio (all CPU
// over all ops of each side). Usage: node dist/bench/metrics-cost-summary.js LABEL FILE...
import fs from 'node:fs'
import type { Run, SuiteResult } from './suite'

interface Pool { throughput: number[], cpu: number[], cpuSubject: number, opsSubject: number, cpuPeer: number, opsPeer: number }

function seconds (r: Run): number {
  const d = r.details as { durationSec?: number, elapsedMs?: number }
  return d.durationSec ?? (d.elapsedMs ?? NaN) / 1000
}

function quantile (xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b)
  const at = (s.length - 1) * q
  const lo = Math.floor(at)
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (at - lo)
}

const [label, ...files] = process.argv.slice(2)
if (label === undefined || files.length === 0) {
  console.error('usage: node dist/bench/metrics-cost-summary.js LABEL FILE...')
  process.exit(2)
}
const pools = new Map<string, Pool>()
for (const file of files) {
  const suites = (JSON.parse(fs.readFileSync(file, 'utf8')) as { suites: SuiteResult[] }).suites
  const suite = suites.find((s) => s.name === 'metrics-cost')
  if (suite === undefined) throw new Error(`${file} has no metrics-cost results`)
  for (const c of suite.comparisons) {
    if (c.name.endsWith('-cpu')) continue
    const p = pools.get(c.name) ?? { throughput: [], cpu: [], cpuSubject: 0, opsSubject: 0, cpuPeer: 0, opsPeer: 0 }
    pools.set(c.name, p)
    c.subject.runs.forEach((a, i) => {
      const b = c.peer.runs[i]
      const ca = a.cpu?.counterd?.cpuMs ?? NaN
      const cb = b.cpu?.counterd?.cpuMs ?? NaN
      const oa = a.value * seconds(a)
      const ob = b.value * seconds(b)
      p.throughput.push(a.value / b.value)
      p.cpu.push((ca / oa) / (cb / ob))
      p.cpuSubject += ca; p.opsSubject += oa; p.cpuPeer += cb; p.opsPeer += ob
    })
  }
}
const f = (x: number): string => x.toFixed(3)
console.log(`| ${label} | rounds | throughput ratio: median (IQR; range) | CPU per op ratio: median (IQR) | pooled CPU per op ratio |`)
console.log('| --- | --- | --- | --- | --- |')
for (const [name, p] of pools) {
  console.log(`| ${name} | ${p.throughput.length} | ${f(quantile(p.throughput, 0.5))} (${f(quantile(p.throughput, 0.25))}–${f(quantile(p.throughput, 0.75))}; ${f(Math.min(...p.throughput))}–${f(Math.max(...p.throughput))}) | ` +
    `${f(quantile(p.cpu, 0.5))} (${f(quantile(p.cpu, 0.25))}–${f(quantile(p.cpu, 0.75))}) | ${f((p.cpuSubject / p.opsSubject) / (p.cpuPeer / p.opsPeer))} |`)
}
