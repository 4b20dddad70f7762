// wrk runner for the http-wrk suite. wrk (Debian package `wrk`) is a C load generator: an event
// loop per thread, the request built by a little Lua (bench/wrk-counters.lua), so it needs far
// less CPU per request than autocannon and leaves more of the 2 cores to the server it measures.
//
// wrk runs for a fixed time and then stops mid-flight: requests written but not yet answered are
// abandoned, and the server may still apply them. Without pipelining a connection has at most one
// request in flight, so for increments the exact check is
//     2xx answers ≤ sum read back ≤ 2xx answers + connections
// with no non-2xx answer and no socket error (a reconnect could hide a lost or repeated request).
// The Lua script counts the 2xx answers itself, per thread, and prints them from done(); wrk's own
// count of complete answers must agree with it.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { expectExit, trackChild } from './children'

export const WRK_PACKAGE = 'wrk'
export const LUA_SCRIPT = path.join(__dirname, '..', '..', 'bench', 'wrk-counters.lua')

/** The Debian package is named like the binary; say so when it is missing. */
export function wrkMissingError (): Error {
  return new Error(`wrk is not installed: the http-wrk suite needs the Debian package "${WRK_PACKAGE}" (apt-get install ${WRK_PACKAGE}; .ci/run installs it)`)
}

export function wrkInstalled (): boolean {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue
    try {
      fs.accessSync(path.join(dir, 'wrk'), fs.constants.X_OK)
      return true
    } catch {}
  }
  return false
}

export function assertWrkInstalled (): void {
  if (!wrkInstalled()) throw wrkMissingError()
}

export interface WrkOutput {
  /** complete answers (any status), from "N requests in T" */
  requests: number
  /** wrk's measured run time */
  durationSec: number
  /** wrk's Requests/sec (complete answers of any status ÷ run time) */
  rps: number
  /** from the --latency distribution */
  p50Ms: number
  p75Ms: number
  p90Ms: number
  p99Ms: number
  /** "Non-2xx or 3xx responses" (wrk 4 counts statuses above 399 there); 0 when the line is absent */
  non2xx: number
  /** "Socket errors: connect c, read r, write w, timeout t"; zeros when the line is absent */
  socketErrors: { connect: number, read: number, write: number, timeout: number }
  /** per thread, from the Lua done() line; null when the script printed none */
  threads: Array<{ ok2xx: number, other: number, mismatches: number }> | null
}

const TIME_UNITS: Record<string, number> = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 }

/** "617.00us", "1.23ms", "2.00s", "1.00m" → milliseconds */
export function wrkTimeMs (text: string): number {
  const m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h)$/.exec(text.trim())
  if (m === null) throw new Error(`wrk time ${JSON.stringify(text)} is not a number with a unit`)
  return Number(m[1]) * TIME_UNITS[m[2]]
}

/** Parses wrk 4's text output (with --latency and the counters script); throws on what it lacks. */
export function parseWrkOutput (text: string): WrkOutput {
  const lines = text.split(/\r?\n/)
  const fail = (what: string): never => {
    throw new Error(`wrk output has no ${what}: ${JSON.stringify(text.slice(0, 600))}`)
  }
  const done = /^\s*(\d+) requests in (\S+),/m.exec(text) ?? fail('"N requests in T" line')
  const rps = /^Requests\/sec:\s+([\d.]+)\s*$/m.exec(text) ?? fail('Requests/sec line')
  // The distribution follows its heading: "     50%  617.00us" lines until another kind of line.
  const percentiles = new Map<number, number>()
  const at = lines.findIndex(l => /^\s*Latency Distribution\s*$/.test(l))
  if (at < 0) fail('Latency Distribution (was --latency given?)')
  for (const l of lines.slice(at + 1)) {
    const m = /^\s*(\d+(?:\.\d+)?)%\s+(\S+)\s*$/.exec(l)
    if (m === null) break
    percentiles.set(Number(m[1]), wrkTimeMs(m[2]))
  }
  const pct = (p: number): number => percentiles.get(p) ?? fail(`${p}% latency`)
  const sock = /^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$/m.exec(text)
  const non2xx = /^\s*Non-2xx or 3xx responses: (\d+)\s*$/m.exec(text)
  let threads: WrkOutput['threads'] = null
  const script = /^wrk-counters (\{.*\})\s*$/m.exec(text)
  if (script !== null) {
    const parsed = JSON.parse(script[1]) as { threads?: unknown }
    if (!Array.isArray(parsed.threads)) fail('thread list in the wrk-counters line')
    threads = (parsed.threads as Array<Record<string, unknown>>).map((t) => {
      const n = (k: string): number => {
        const v = t[k]
        return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : fail(`integer ${k} in the wrk-counters line`)
      }
      return { ok2xx: n('ok2xx'), other: n('other'), mismatches: n('mismatches') }
    })
  }
  return {
    requests: Number(done[1]),
    durationSec: wrkTimeMs(done[2]) / 1000,
    rps: Number(rps[1]),
    p50Ms: pct(50),
    p75Ms: pct(75),
    p90Ms: pct(90),
    p99Ms: pct(99),
    non2xx: non2xx === null ? 0 : Number(non2xx[1]),
    socketErrors: sock === null
      ? { connect: 0, read: 0, write: 0, timeout: 0 }
      : { connect: Number(sock[1]), read: Number(sock[2]), write: Number(sock[3]), timeout: Number(sock[4]) },
    threads
  }
}

export interface WrkOptions {
  host?: string
  /** the server's port; with several (one per server thread), wrk thread i uses port i mod n */
  ports: number[]
  threads: number
  connections: number
  durationSec: number
  mode: 'increment' | 'get'
  type: string
  /** file of ids, one a line (writeIdsFile) */
  idsFile: string
  /** increment mode: a Prefer header ("return=minimal": the node answers 204 without the value) */
  prefer?: string
  /** get mode: file of "id value" lines (writeExpectedFile) */
  expectedFile?: string
  timeoutSec?: number
}

export interface WrkResult extends WrkOutput {
  /** Σ over threads of the script's counts */
  ok2xx: number
  other: number
  mismatches: number
  /** connections wrk really opened: it gives each thread ⌊connections / threads⌋ */
  connections: number
  /** 2xx answers per second of wrk's run time: the figure the suite reports */
  okPerSec: number
  /** the command line, for the report */
  command: string
  raw: string
}

export function writeIdsFile (file: string, ids: ArrayLike<number>): void {
  const lines: string[] = []
  for (let i = 0; i < ids.length; i++) lines.push(String(ids[i]))
  fs.writeFileSync(file, lines.join('\n') + '\n')
}

export function writeExpectedFile (file: string, values: Iterable<[string, number]>): void {
  const lines: string[] = []
  for (const [id, v] of values) lines.push(`${id} ${v}`)
  fs.writeFileSync(file, lines.join('\n') + '\n')
}

export function wrkArgs (o: WrkOptions): string[] {
  return ['-t', String(o.threads), '-c', String(o.connections), '-d', `${Math.max(1, Math.round(o.durationSec))}s`,
    '--timeout', `${o.timeoutSec ?? 10}s`, '--latency', '-s', LUA_SCRIPT, `http://${o.host ?? '127.0.0.1'}:${o.ports[0]}/`]
}

export async function runWrk (o: WrkOptions): Promise<WrkResult> {
  if (o.ports.length === 0) throw new RangeError('ports must not be empty')
  if (o.threads < 1 || o.connections < o.threads) throw new RangeError(`wrk needs 1 ≤ threads (${o.threads}) ≤ connections (${o.connections})`)
  if (o.mode === 'get' && o.expectedFile === undefined) throw new RangeError('get mode needs expectedFile')
  assertWrkInstalled()
  const args = wrkArgs(o)
  const env: Record<string, string> = {
    ...process.env as Record<string, string>,
    WRK_COUNTERS_MODE: o.mode,
    WRK_COUNTERS_TYPE: o.type,
    WRK_COUNTERS_IDS: o.idsFile,
    WRK_COUNTERS_THREADS: String(o.threads),
    WRK_COUNTERS_PORTS: o.ports.join(','),
    ...(o.expectedFile === undefined ? {} : { WRK_COUNTERS_EXPECTED: o.expectedFile }),
    ...(o.prefer === undefined ? {} : { WRK_COUNTERS_PREFER: o.prefer })
  }
  const { code, out, err } = await new Promise<{ code: number | null, out: string, err: string }>((resolve, reject) => {
    const p = spawn('wrk', args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    // Registered so an interrupted benchmark stops it too; its own exit is the expected one.
    trackChild(p, 'wrk')
    expectExit(p)
    let out = ''
    let err = ''
    p.stdout.on('data', (c: Buffer) => { out += c.toString() })
    p.stderr.on('data', (c: Buffer) => { err += c.toString() })
    p.on('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? wrkMissingError() : e))
    p.on('close', (code) => resolve({ code, out, err }))
  })
  const command = `wrk ${args.join(' ')}`
  if (code !== 0) throw new Error(`${command} exited ${String(code)}: ${(err + out).slice(-800)}`)
  const parsed = parseWrkOutput(out)
  if (parsed.threads === null) throw new Error(`${command}: the Lua script printed no counts (stderr: ${err.slice(-400)})`)
  const sum = (k: 'ok2xx' | 'other' | 'mismatches'): number => (parsed.threads ?? []).reduce((n, t) => n + t[k], 0)
  const ok2xx = sum('ok2xx')
  return {
    ...parsed,
    ok2xx,
    other: sum('other'),
    mismatches: sum('mismatches'),
    connections: Math.floor(o.connections / o.threads) * o.threads,
    okPerSec: ok2xx / parsed.durationSec,
    command,
    raw: out
  }
}

/** What breaks the exact accounting of answers, as text; '' when nothing did. */
function troubles (r: WrkResult): string {
  const t: string[] = []
  const s = r.socketErrors
  if (r.other > 0 || r.non2xx > 0) t.push(`non-2xx ${r.other} (wrk: ${r.non2xx})`)
  if (s.connect + s.read + s.write + s.timeout > 0) t.push(`socket errors: connect ${s.connect}, read ${s.read}, write ${s.write}, timeout ${s.timeout}`)
  if (r.ok2xx + r.other !== r.requests) t.push(`the script counted ${r.ok2xx + r.other} answers, wrk ${r.requests}`)
  return t.join('; ')
}

/** Increments: 2xx ≤ read back ≤ 2xx + connections (see the top of this file), nothing else answered. */
export function incrementCheck (r: WrkResult, readBack: number): { exact: boolean, check: string } {
  const within = readBack >= r.ok2xx && readBack <= r.ok2xx + r.connections
  const bad = troubles(r)
  const exact = within && bad === ''
  let check = `2xx ${r.ok2xx} ≤ sum read back ${readBack} ≤ 2xx + ${r.connections} connections: ${within ? 'yes' : 'NO'}` +
    (readBack > r.ok2xx ? ` (${readBack - r.ok2xx} applied but unanswered when wrk stopped)` : '')
  if (bad !== '') check += `; ${bad}`
  return { exact, check }
}

/** Reads: every 2xx answer carried the loaded value of its key, nothing else answered. */
export function readCheck (r: WrkResult): { exact: boolean, check: string } {
  const bad = troubles(r)
  return {
    exact: bad === '' && r.mismatches === 0 && r.ok2xx > 0,
    check: `${r.ok2xx} answers checked by the wrk script, ${r.mismatches} with a wrong value` + (bad === '' ? '' : `; ${bad}`)
  }
}
