// Writes bench/results/latest.json (everything: every run, CPU per process, checks, machine)
// and bench/results/latest.md (the table the README quotes, then per-suite detail).
import fs from 'node:fs'
import path from 'node:path'
import type { ProfileSummary } from './cpu-profile'
import type { FsyncProbe } from './fsync-probe'
import { human } from './stats'
import type { Comparison, Run, Side, SuiteResult } from './suite'

export interface MachineInfo {
  cpuModel: string
  cores: number
  memoryGiB: number
  kernel: string
  node: string
  redis: string
  uws: string
  loadAverageAtStart: number[]
  /** write + fdatasync of 4 KiB in the temp directory the servers' data lives in */
  fsync: FsyncProbe
  commit: string
}

export interface BenchResults {
  generatedAt: string
  command: string
  mode: 'quick' | 'full'
  /** environment given to every counterd with --env, when any */
  counterdEnv?: Record<string, string>
  rounds: number
  durationSec: number
  machine: MachineInfo
  notes: string[]
  suites: Array<SuiteResult & { ranAt: string }>
  profiles?: Record<string, ProfileSummary[]>
}

function fmtValue (x: number, unit: string): string {
  if (unit === 'ms') return `${Math.round(x).toLocaleString('en-US')} ms`
  if (unit === 'B/counter') return `${x.toFixed(0)} B`
  return `${human(x)}/s`
}

function fmtSide (s: Side, unit: string): string {
  if (s.value.n === 0) return '–'
  const v = fmtValue(s.value.median, unit)
  if (s.value.n < 2) return v
  return `${v} (${human(s.value.min)}–${human(s.value.max)})`
}

function fmtLatency (s: Side): string {
  if (s.p50Ms === undefined || s.p99Ms === undefined) return '–'
  return `${s.p50Ms.median.toFixed(2)} / ${s.p99Ms.median.toFixed(2)}`
}

/** Two decimals, or two significant digits below 0.1 (a ceiling can be 100× counterd). */
function fmtFactor (r: number): string {
  if (!Number.isFinite(r)) return '–'
  return Math.abs(r) >= 0.1 || r === 0 ? r.toFixed(2) : r.toPrecision(2)
}

function fmtRatio (c: Comparison): string {
  if (!Number.isFinite(c.ratio)) return '–'
  const rounds = c.ratioPerRound.length > 1 ? ` [${c.ratioPerRound.map(fmtFactor).join(', ')}]` : ''
  return `${fmtFactor(c.ratio)}×${rounds}`
}

function fmtTargets (c: Comparison): string {
  if (c.targets.length === 0) return '–'
  return c.targets.map(t => `${t.met === null ? '?' : t.met ? '✅' : '❌'} ${t.text}`).join('<br>')
}

const SERVERS = ['counterd', 'redis', 'naive server', 'bare uWS', 'ws ceiling', 'bare Node RESP', 'node A (owner)', 'node B (non-owner)']

/** Median CPU share per process; for servers in a throughput run also CPU time per operation. */
function cpuLine (runs: Run[], unit: string): string {
  const byLabel = new Map<string, { pct: number[], perOp: number[] }>()
  for (const r of runs) {
    for (const [label, u] of Object.entries(r.cpu ?? {})) {
      if (!byLabel.has(label)) byLabel.set(label, { pct: [], perOp: [] })
      const e = byLabel.get(label) as { pct: number[], perOp: number[] }
      e.pct.push(u.percent)
      // percent of a core ÷ ops per second = core-seconds per op
      if (unit.endsWith('/s') && SERVERS.includes(label) && r.value > 0) e.perOp.push(u.percent / 100 / r.value * 1e6)
    }
  }
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]
  const parts: string[] = []
  for (const [label, e] of byLabel) {
    const m = med(e.perOp)
    // The ceilings spend hundredths of a µs per increment: keep two significant digits there.
    const perOp = e.perOp.length > 0 ? ` (${m >= 10 ? m.toFixed(0) : m >= 0.1 ? m.toFixed(2) : m.toPrecision(2)} µs CPU per op)` : ''
    parts.push(`${label} ${med(e.pct).toFixed(0)}%${perOp}`)
  }
  return parts.join(', ')
}

function busiestThreads (runs: Run[], label: string): string {
  const r = runs[runs.length - 1]
  const threads = r?.cpu?.[label]?.threads ?? []
  return threads.slice(0, 4).map(t => `${t.name} ${t.percent.toFixed(0)}%`).join(', ')
}

/** CPU that other processes on the machine used while this comparison ran (median, % of a core). */
function otherLoad (c: Comparison): string {
  const med = (label: string): number | undefined => {
    const xs = [...c.subject.runs, ...c.peer.runs].map(r => r.cpu?.[label]?.percent).filter((x): x is number => x !== undefined).sort((a, b) => a - b)
    return xs.length === 0 ? undefined : xs[xs.length >> 1]
  }
  const others = med('others')
  const steal = med('hypervisor steal')
  if (others === undefined) return '–'
  return `${others.toFixed(0)}%` + (steal !== undefined && steal >= 1 ? ` + steal ${steal.toFixed(0)}%` : '')
}

/** The summary table (also what the README shows). */
export function summaryTable (results: BenchResults): string {
  const lines = [
    '| suite | counterd | peer | counterd ÷ peer (per round) | p50 / p99 ms counterd | p50 / p99 ms peer | targets | exact | other load |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |'
  ]
  for (const s of results.suites) {
    if (!s.ok && s.comparisons.length === 0) {
      lines.push(`| ${s.title} | failed: ${(s.error ?? '').replace(/\|/g, '/').replace(/\n/g, ' ').slice(0, 160)} | | | | | | ❌ | |`)
      continue
    }
    for (const c of s.comparisons) {
      // A row whose subject is not counterd (a ceiling against a peer) names it.
      const subject = c.subject.system === 'counterd' ? '' : `${c.subject.system}: `
      lines.push(`| ${c.label} | ${subject}${fmtSide(c.subject, c.unit)} | ${c.peer.system}: ${fmtSide(c.peer, c.unit)} | ${fmtRatio(c)} | ` +
        `${fmtLatency(c.subject)} | ${fmtLatency(c.peer)} | ${fmtTargets(c)} | ${c.exact ? '✅' : '❌'} | ${otherLoad(c)} |`)
    }
  }
  return lines.join('\n')
}

export function markdown (results: BenchResults): string {
  const m = results.machine
  const out: string[] = []
  out.push('# counterd benchmark results', '')
  out.push(`Generated ${results.generatedAt} by \`${results.command}\` (${results.mode} mode: ${results.rounds} round(s) of ${results.durationSec} s per side, counterd and peer alternating).`, '')
  if (results.counterdEnv !== undefined) out.push(`counterd environment overrides: ${Object.entries(results.counterdEnv).map(([k, v]) => `${k}=${v}`).join(' ')}.`, '')
  out.push(`Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}, Redis ${m.redis}, uWS ${m.uws}, commit ${m.commit}, load average at start ${m.loadAverageAtStart.map(x => x.toFixed(2)).join(' ')}; a 4 KiB write + fdatasync takes ${m.fsync.p50Ms} ms (median of ${m.fsync.samples}, max ${m.fsync.maxMs} ms).`, '')
  out.push('**The load generators (autocannon, wrk, the WebSocket generator, redis-benchmark) run on the same 2 cores as the servers they measure.** Figures are medians over rounds with min–max in parentheses; ratios are counterd ÷ peer per round (for memory and recovery, lower is better). "other load" is the CPU used meanwhile by processes that are not part of the benchmark, plus the hypervisor\'s steal time (% of one core; this machine has 2): anything well above 0 means the figures are depressed by outside work.', '')
  out.push(summaryTable(results), '')
  for (const n of results.notes) out.push(`- ${n}`)
  if (results.notes.length > 0) out.push('')
  out.push('## Details', '')
  for (const s of results.suites) {
    out.push(`### ${s.title} (\`--suite ${s.name}\`, ran ${s.ranAt}, ${s.elapsedSec.toFixed(0)} s)`, '')
    if (s.error !== undefined) out.push(`**Failed:** ${s.error}`, '')
    for (const c of s.comparisons) {
      out.push(`**${c.label}**`, '')
      out.push(`- ${c.subject.system}: ${c.subject.config}`)
      out.push(`- ${c.peer.system}: ${c.peer.config}`)
      for (const [side, name] of [[c.subject, c.subject.system], [c.peer, c.peer.system]] as const) {
        for (const r of side.runs) {
          const lat = r.p99Ms === undefined ? '' : `, p50 ${r.p50Ms?.toFixed(2) ?? '?'} ms, p99 ${r.p99Ms.toFixed(2)} ms`
          out.push(`- round ${r.round} ${name}: ${fmtValue(r.value, c.unit)}${lat}; ${r.exact ? 'exact' : '**NOT EXACT**'}: ${r.check}`)
        }
        out.push(`- CPU (% of one core, median over rounds) while ${name} ran: ${cpuLine(side.runs, c.unit)}`)
        for (const label of SERVERS) {
          const t = busiestThreads(side.runs, label)
          if (t !== '' && side.runs.some(r => r.cpu?.[label] !== undefined)) out.push(`  - busiest ${label} threads (last round): ${t}`)
        }
      }
      out.push('')
    }
    for (const n of s.notes) out.push(`- ${n}`)
    out.push('')
  }
  if (results.profiles !== undefined) {
    out.push('## CPU profiles (`--profile`)', '')
    for (const [label, summaries] of Object.entries(results.profiles)) {
      out.push(`### ${label}`, '')
      for (const p of summaries.slice(0, 3)) {
        const cats = Object.entries(p.categories).map(([k, v]) => `${k} ${v}%`).join(', ')
        out.push(`- thread profile ${p.file}: busy ${p.busyPercent}% of ${p.totalMs} ms; ${cats}`)
        for (const f of p.top.slice(0, 8)) out.push(`  - ${f.selfPercent}% ${f.fn} ${f.where}`)
      }
      out.push('')
    }
  }
  return out.join('\n')
}

/** Writes both files; with a subset of suites, replaces just those in the existing results. */
export function writeResults (dir: string, results: BenchResults, merge: boolean): BenchResults {
  fs.mkdirSync(dir, { recursive: true })
  const jsonPath = path.join(dir, 'latest.json')
  let final = results
  if (merge && fs.existsSync(jsonPath)) {
    try {
      const old = JSON.parse(fs.readFileSync(jsonPath, 'utf8')) as BenchResults
      const fresh = new Map(results.suites.map(s => [s.name, s]))
      const order = old.suites.map(s => s.name)
      for (const s of results.suites) if (!order.includes(s.name)) order.push(s.name)
      final = {
        ...results,
        command: `${old.command}; then ${results.command}`,
        suites: order.map(n => fresh.get(n) ?? old.suites.find(s => s.name === n)).filter((s): s is SuiteResult & { ranAt: string } => s !== undefined),
        profiles: { ...(old.profiles ?? {}), ...(results.profiles ?? {}) }
      }
      if (Object.keys(final.profiles ?? {}).length === 0) delete final.profiles
    } catch {}
  }
  fs.writeFileSync(jsonPath, JSON.stringify(final, null, 2) + '\n')
  fs.writeFileSync(path.join(dir, 'latest.md'), markdown(final) + '\n')
  return final
}
