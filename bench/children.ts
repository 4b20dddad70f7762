// Every server the benchmark starts is registered here, so an interrupted or failed run still
// stops them (nothing is left listening after `npm run bench`), and so a server that stops
// without being asked to is noticed: a crash (non-zero exit) is a finding about that server;
// a clean exit or a signal the benchmark did not send means something else on the machine
// stopped it, and the suite is run again.
import type { ChildProcess } from 'node:child_process'

export interface UnexpectedExit {
  name: string
  pid: number
  code: number | null
  signal: NodeJS.Signals | null
  /** true when it looks like an outside signal (clean exit or killed), false for a crash */
  external: boolean
  at: string
}

const live = new Map<ChildProcess, { name: string, expected: boolean }>()
const unexpected: UnexpectedExit[] = []

export function trackChild (proc: ChildProcess, name: string): void {
  const entry = { name, expected: false }
  live.set(proc, entry)
  proc.once('exit', (code, signal) => {
    live.delete(proc)
    if (entry.expected) return
    unexpected.push({ name, pid: proc.pid ?? -1, code, signal, external: code === 0 || signal !== null, at: new Date().toISOString() })
  })
}

/** Called before the benchmark itself stops a child. */
export function expectExit (proc: ChildProcess): void {
  const e = live.get(proc)
  if (e !== undefined) e.expected = true
}

/** Children that stopped on their own since the last call. */
export function takeUnexpectedExits (): UnexpectedExit[] {
  return unexpected.splice(0, unexpected.length)
}

/** SIGKILL whatever is still running (used between suites, on exit and on SIGINT/SIGTERM). */
export function killAllChildren (): void {
  for (const [p, e] of live) {
    e.expected = true
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
  }
}
