// Runs Debian's redis-benchmark (the C load generator shipped with Redis) and parses its --csv
// output, which in Redis 7 is a header line plus one row per test:
//   "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
import { spawn } from 'node:child_process'

export interface RedisBenchRow {
  test: string
  rps: number
  avgMs: number
  minMs: number
  p50Ms: number
  p95Ms: number
  p99Ms: number
  maxMs: number
}

export interface RedisBenchOptions {
  port: number
  host?: string
  connections: number
  requests: number
  /** -P; 1 means no pipelining */
  pipeline?: number
  /** -r: keys are `counter:` + a zero-padded random number below this */
  keyspace?: number
  /** -t tests (e.g. ['incr']), or a raw command such as ['GET', 'counter:__rand_int__'] */
  tests?: string[]
  command?: string[]
  threads?: number
  /** kill it and fail past this many ms (a run that stalls must not hang the whole benchmark) */
  timeoutMs?: number
}

function splitCsvLine (line: string): string[] {
  const out: string[] = []
  let cur = ''
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { cur += '"'; i++ } else if (c === '"') quoted = false
      else cur += c
    } else if (c === '"') quoted = true
    else if (c === ',') { out.push(cur); cur = '' } else cur += c
  }
  out.push(cur)
  return out
}

const COLUMNS = {
  rps: 'rps',
  avgMs: 'avg_latency_ms',
  minMs: 'min_latency_ms',
  p50Ms: 'p50_latency_ms',
  p95Ms: 'p95_latency_ms',
  p99Ms: 'p99_latency_ms',
  maxMs: 'max_latency_ms'
} as const

/** Parses `redis-benchmark --csv` output; throws when the header or a number is missing. */
export function parseRedisBenchmarkCsv (text: string): RedisBenchRow[] {
  const lines = text.split(/\r?\n/).map(l => l.trim()).filter(l => l.startsWith('"'))
  const headerAt = lines.findIndex(l => l.startsWith('"test"'))
  if (headerAt < 0) throw new Error(`redis-benchmark output has no CSV header: ${JSON.stringify(text.slice(0, 200))}`)
  const header = splitCsvLine(lines[headerAt])
  const index = (name: string): number => {
    const i = header.indexOf(name)
    if (i < 0) throw new Error(`redis-benchmark CSV lacks column ${name} (header: ${header.join(',')})`)
    return i
  }
  const rows: RedisBenchRow[] = []
  for (const line of lines.slice(headerAt + 1)) {
    const cells = splitCsvLine(line)
    const row: Record<string, number | string> = { test: cells[index('test')] }
    for (const [field, column] of Object.entries(COLUMNS)) {
      const v = Number(cells[index(column)])
      if (!Number.isFinite(v)) throw new Error(`redis-benchmark CSV: ${column} is not a number in ${line}`)
      row[field] = v
    }
    rows.push(row as unknown as RedisBenchRow)
  }
  if (rows.length === 0) throw new Error('redis-benchmark CSV has a header but no rows')
  return rows
}

export function redisBenchmarkArgs (o: RedisBenchOptions): string[] {
  const args = ['-h', o.host ?? '127.0.0.1', '-p', String(o.port), '-c', String(o.connections),
    '-n', String(o.requests), '-P', String(o.pipeline ?? 1), '--csv']
  if (o.keyspace !== undefined) args.push('-r', String(o.keyspace))
  if (o.threads !== undefined && o.threads > 1) args.push('--threads', String(o.threads))
  if (o.command !== undefined) args.push(...o.command)
  else args.push('-t', (o.tests ?? ['incr']).join(','))
  return args
}

export interface RedisBenchRun {
  row: RedisBenchRow
  elapsedMs: number
  /** the load generator's own CPU time (user + system), from the child's resource usage */
  cpuMs: number
}

export async function runRedisBenchmark (o: RedisBenchOptions): Promise<RedisBenchRun> {
  const args = redisBenchmarkArgs(o)
  const started = process.hrtime.bigint()
  return await new Promise((resolve, reject) => {
    const p = spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    let timedOut = false
    const timer = o.timeoutMs === undefined ? null : setTimeout(() => { timedOut = true; p.kill('SIGKILL') }, o.timeoutMs)
    p.stdout.on('data', (c: Buffer) => { out += c.toString() })
    p.stderr.on('data', (c: Buffer) => { err += c.toString() })
    p.on('error', reject)
    p.on('close', (code) => {
      if (timer !== null) clearTimeout(timer)
      const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6
      if (timedOut) {
        reject(new Error(`redis-benchmark ${args.join(' ')} did not finish within ${String(o.timeoutMs)} ms: ${err.slice(-500)}`))
        return
      }
      if (code !== 0) {
        reject(new Error(`redis-benchmark ${args.join(' ')} exited ${String(code)}: ${err.slice(-500)}`))
        return
      }
      try {
        const row = parseRedisBenchmarkCsv(out)[0]
        resolve({ row, elapsedMs, cpuMs: 0 })
      } catch (e) {
        reject(e)
      }
    })
  })
}
