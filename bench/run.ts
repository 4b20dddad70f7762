// `npm run bench [-- --quick] [-- --suite NAME]`: measures counterd next to its peers on this
// machine, in this run, and writes bench/results/latest.json and latest.md.
//
//   --quick          fewer rounds and shorter runs (the whole run takes about 4 minutes)
//   --suite NAME     run only this suite (repeat or comma-separate); results of the others are kept
//   --profile        run counterd under node --cpu-prof and summarise the profiles in the results
//   --rounds N       rounds per suite (default 3, quick 1)
//   --duration S     seconds of load per measured run (default 10, quick 2)
//   --env KEY=VALUE  extra environment for every counterd started (repeatable), e.g. WORKERS=1
//   --out DIR        where to write results (default bench/results)
// Exit status is 1 when a suite failed or any count was not exact.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { killAllChildren, takeUnexpectedExits } from './children'
import { observedUwsBinding } from './counterd'
import { summariseProfileDir, type ProfileSummary } from './cpu-profile'
import { probeFsync } from './fsync-probe'
import { redisVersion } from './redis-launcher'
import { writeResults, type BenchResults, type MachineInfo } from './report'
import type { BenchContext, Suite, SuiteResult } from './suite'
import { hot } from './suites/hot'
import { httpIncrements } from './suites/http-increments'
import { httpReads } from './suites/http-reads'
import { httpWrk } from './suites/http-wrk'
import { ingest } from './suites/ingest'
import { memory } from './suites/memory'
import { metricsCost } from './suites/metrics-cost'
import { naiveBaseline } from './suites/naive-baseline'
import { recovery } from './suites/recovery'
import { resp } from './suites/resp'
import { ring } from './suites/ring'
import { ringHot } from './suites/ring-hot'
import { wsStream } from './suites/ws-stream'

export const SUITES: Suite[] = [httpIncrements, httpReads, httpWrk, wsStream, memory, recovery, naiveBaseline, resp, ingest, ring, hot, ringHot, metricsCost]

interface Args {
  quick: boolean
  suites: string[]
  profile: boolean
  rounds?: number
  duration?: number
  env: Record<string, string>
  out: string
}

const USAGE = 'usage: node dist/bench/run.js [--quick] [--suite NAME]... [--profile] [--rounds N] [--duration S] [--env KEY=VALUE]... [--out DIR]\n' +
  `suites: ${SUITES.map(s => s.name).join(', ')}\n`

function parseArgs (argv: string[]): Args {
  const root = path.join(__dirname, '..', '..')
  const a: Args = { quick: false, suites: [], profile: false, env: {}, out: path.join(root, 'bench', 'results') }
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1]
    if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value\n${USAGE}`)
    return v
  }
  const positive = (v: string, flag: string): number => {
    const n = Number(v)
    if (!(n > 0)) throw new Error(`${flag} must be a positive number, got ${v}`)
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]
    switch (f) {
      case '--quick': a.quick = true; break
      case '--profile': a.profile = true; break
      case '--suite': a.suites.push(...value(i++, f).split(',').filter(s => s !== '')); break
      case '--rounds': a.rounds = Math.round(positive(value(i++, f), f)); break
      case '--duration': a.duration = positive(value(i++, f), f); break
      case '--out': a.out = path.resolve(value(i++, f)); break
      case '--env': {
        const kv = value(i++, f)
        const eq = kv.indexOf('=')
        if (eq < 1) throw new Error(`--env expects KEY=VALUE, got ${kv}`)
        a.env[kv.slice(0, eq)] = kv.slice(eq + 1)
        break
      }
      case '--help': case '-h': process.stdout.write(USAGE); process.exit(0)
      default: throw new Error(`unknown argument ${f}\n${USAGE}`)
    }
  }
  for (const s of a.suites) {
    if (!SUITES.some(x => x.name === s)) throw new Error(`unknown suite ${s}; suites: ${SUITES.map(x => x.name).join(', ')}`)
  }
  return a
}

function git (args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: path.join(__dirname, '..', '..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return 'unknown'
  }
}

async function machineInfo (tempRoot: string): Promise<MachineInfo> {
  const dirty = git(['status', '--porcelain', '--untracked-files=no']) !== ''
  return {
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    redis: await redisVersion(),
    uws: 'unknown',
    loadAverageAtStart: os.loadavg(),
    fsync: probeFsync(tempRoot),
    commit: git(['rev-parse', '--short', 'HEAD']) + (dirty ? ' (with uncommitted changes)' : '')
  }
}

async function runSuite (ctx: BenchContext, suite: Suite): Promise<SuiteResult & { ranAt: string }> {
  const t0 = Date.now()
  const ranAt = new Date().toISOString()
  try {
    const { comparisons, notes } = await suite.run(ctx)
    const exact = comparisons.every(c => c.exact)
    return {
      name: suite.name, title: suite.title, ok: exact, comparisons, notes, elapsedSec: (Date.now() - t0) / 1000, ranAt,
      ...(exact ? {} : { error: 'a count read back differed from the acknowledged operations' })
    }
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e)
    ctx.log(`  FAILED: ${e instanceof Error && e.stack !== undefined ? e.stack : msg}`)
    return { name: suite.name, title: suite.title, ok: false, error: msg, comparisons: [], notes: [], elapsedSec: (Date.now() - t0) / 1000, ranAt }
  }
}

async function main (): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  const root = path.join(__dirname, '..', '..')
  const tempRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-bench-'))
  const profileRoot = args.profile ? path.join(args.out, 'profiles') : undefined
  if (profileRoot !== undefined) fs.rmSync(profileRoot, { recursive: true, force: true })
  let tempCount = 0
  const ctx: BenchContext = {
    quick: args.quick,
    rounds: args.rounds ?? (args.quick ? 1 : 3),
    durationSec: args.duration ?? (args.quick ? 2 : 10),
    counterdScript: path.join(root, 'dist', 'src', 'main.js'),
    counterdEnv: args.env,
    ...(profileRoot === undefined ? {} : { profileDir: profileRoot }),
    log: (msg) => process.stdout.write(msg + '\n'),
    tempDir: (label) => {
      const d = path.join(tempRoot, `${++tempCount}-${label}`)
      fs.mkdirSync(d, { recursive: true })
      return d
    }
  }
  const cleanup = (): void => {
    killAllChildren()
    fs.rmSync(tempRoot, { recursive: true, force: true })
  }
  process.on('SIGINT', () => { cleanup(); process.exit(130) })
  process.on('SIGTERM', () => { cleanup(); process.exit(143) })

  const machine = await machineInfo(tempRoot)
  const selected = args.suites.length === 0 ? SUITES : SUITES.filter(s => args.suites.includes(s.name))
  ctx.log(`counterd benchmark, ${args.quick ? 'quick' : 'full'} mode: ${ctx.rounds} round(s) × ${ctx.durationSec} s; suites ${selected.map(s => s.name).join(', ')}`)
  ctx.log(`machine: ${machine.cpuModel}, ${machine.cores} cores, load average ${machine.loadAverageAtStart.map(x => x.toFixed(2)).join(' ')}, ` +
    `4 KiB write + fdatasync p50 ${machine.fsync.p50Ms} ms`)
  const started = Date.now()
  const results: Array<SuiteResult & { ranAt: string }> = []
  for (const suite of selected) {
    for (let attempt = 1; ; attempt++) {
      ctx.log(`\n== ${suite.name}: ${suite.title}${attempt > 1 ? ` (attempt ${attempt})` : ''}`)
      takeUnexpectedExits()
      const r = await runSuite(ctx, suite)
      killAllChildren()
      const exits = takeUnexpectedExits()
      for (const x of exits) {
        const how = x.signal !== null ? `killed by ${x.signal}` : `exited with ${String(x.code)}`
        r.notes.push(`${x.name} (pid ${x.pid}) ${how} at ${x.at} without the benchmark stopping it` +
          (x.external ? ' (a signal from another process on this machine)' : ' (a crash)'))
      }
      ctx.log(`  (${r.elapsedSec.toFixed(0)} s)`)
      // A server stopped from outside says nothing about it: run the suite again (once).
      if (!r.ok && attempt < 2 && exits.length > 0 && exits.every(x => x.external)) {
        ctx.log(`  ${exits.map(x => x.name).join(', ')} stopped by an outside signal; running the suite again`)
        continue
      }
      results.push(r)
      break
    }
  }
  machine.uws = observedUwsBinding() ?? 'not started'
  let profiles: Record<string, ProfileSummary[]> | undefined
  if (profileRoot !== undefined && fs.existsSync(profileRoot)) {
    profiles = {}
    for (const label of fs.readdirSync(profileRoot)) profiles[label] = summariseProfileDir(path.join(profileRoot, label))
  }
  const out: BenchResults = {
    generatedAt: new Date().toISOString(),
    command: `npm run bench --${process.argv.slice(2).map(a => ' ' + a).join('')}`.replace(/ --$/, ''),
    mode: args.quick ? 'quick' : 'full',
    ...(Object.keys(args.env).length > 0 ? { counterdEnv: args.env } : {}),
    rounds: ctx.rounds,
    durationSec: ctx.durationSec,
    machine,
    notes: [
      'Every suite alternates counterd and its peer (A B A B …) on servers it started itself on free ports, so both see the same machine state.',
      'After every run the counts are read back and compared with the acknowledged operations; a run that is fast but wrong is marked not exact and fails the benchmark.'
    ],
    suites: results,
    ...(profiles === undefined ? {} : { profiles })
  }
  const written = writeResults(args.out, out, args.suites.length > 0)
  cleanup()
  const failed = results.filter(r => !r.ok)
  ctx.log(`\nwrote ${path.relative(process.cwd(), path.join(args.out, 'latest.json'))} and latest.md in ${((Date.now() - started) / 1000).toFixed(0)} s` +
    (failed.length > 0 ? `; FAILED: ${failed.map(f => f.name).join(', ')}` : ''))
  void written
  process.exitCode = failed.length > 0 ? 1 : 0
}

main().catch((e: unknown) => {
  killAllChildren()
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`)
  process.exit(2)
})
