// What a suite is and what it reports. A suite measures counterd ("subject") and a peer in
// alternation, round by round, and turns the runs into a Comparison: median with min–max of
// each side, the per-round ratio subject/peer and its median, the target, and exactness.
import type { CpuUsage } from './proc-stats'
import { ratios, spread, type Spread } from './stats'

export interface BenchContext {
  quick: boolean
  rounds: number
  /** seconds of load per measured run */
  durationSec: number
  /** node script of the server under test (dist/src/main.js) */
  counterdScript: string
  /** extra environment for every counterd started (--env KEY=VALUE), e.g. WORKERS=1 */
  counterdEnv: Record<string, string>
  /** when set, counterd runs under node --cpu-prof and writes profiles here */
  profileDir?: string
  log: (msg: string) => void
  /** a fresh temporary directory, removed at the end of the benchmark */
  tempDir: (label: string) => string
}

export interface Run {
  round: number
  /** the headline figure: ops/s, bytes per counter or milliseconds */
  value: number
  p50Ms?: number
  p99Ms?: number
  /** the exactness check held (acked ops == values read back) */
  exact: boolean
  /** what was checked, with the numbers */
  check: string
  /** CPU used by each process during the run, percent of one core */
  cpu?: Record<string, CpuUsage>
  details?: Record<string, unknown>
}

export interface Side {
  system: string
  /** how it was driven (load generator, connections, pipelining) */
  config: string
  runs: Run[]
  value: Spread
  p50Ms?: Spread
  p99Ms?: Spread
}

export interface Target {
  text: string
  /** null when the suite did not produce the figure */
  met: boolean | null
}

export interface Comparison {
  name: string
  label: string
  unit: string
  higherIsBetter: boolean
  subject: Side
  peer: Side
  ratioPerRound: number[]
  ratio: number
  targets: Target[]
  exact: boolean
}

export interface SuiteResult {
  name: string
  title: string
  ok: boolean
  error?: string
  comparisons: Comparison[]
  notes: string[]
  elapsedSec: number
}

export interface Suite {
  name: string
  title: string
  run: (ctx: BenchContext) => Promise<{ comparisons: Comparison[], notes: string[] }>
}

function sideOf (system: string, config: string, runs: Run[]): Side {
  const side: Side = { system, config, runs, value: spread(runs.map(r => r.value)) }
  const p50 = runs.map(r => r.p50Ms).filter((x): x is number => x !== undefined)
  const p99 = runs.map(r => r.p99Ms).filter((x): x is number => x !== undefined)
  if (p50.length > 0) side.p50Ms = spread(p50)
  if (p99.length > 0) side.p99Ms = spread(p99)
  return side
}

export function compare (o: {
  name: string
  label: string
  unit: string
  higherIsBetter: boolean
  subject: { system: string, config: string, runs: Run[] }
  peer: { system: string, config: string, runs: Run[] }
  targets: (subject: Side, peer: Side, ratio: number) => Target[]
}): Comparison {
  const subject = sideOf(o.subject.system, o.subject.config, o.subject.runs)
  const peer = sideOf(o.peer.system, o.peer.config, o.peer.runs)
  const perRound = ratios(o.subject.runs.map(r => r.value), o.peer.runs.map(r => r.value))
  const ratio = spread(perRound).median
  return {
    name: o.name,
    label: o.label,
    unit: o.unit,
    higherIsBetter: o.higherIsBetter,
    subject,
    peer,
    ratioPerRound: perRound,
    ratio,
    targets: o.targets(subject, peer, ratio),
    exact: [...o.subject.runs, ...o.peer.runs].every(r => r.exact) && o.subject.runs.length > 0
  }
}

/** A target on a figure that may be missing (NaN): met is null then. */
export function target (text: string, value: number | undefined, ok: (v: number) => boolean): Target {
  return { text, met: value === undefined || !Number.isFinite(value) ? null : ok(value) }
}
