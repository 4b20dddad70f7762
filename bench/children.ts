// Every server the benchmark starts is registered here, so an interrupted or failed run still
// stops them (nothing is left listening after `npm run bench`).
import type { ChildProcess } from 'node:child_process'

const live = new Set<ChildProcess>()

export function trackChild (proc: ChildProcess): void {
  live.add(proc)
  proc.once('exit', () => live.delete(proc))
}

/** SIGKILL whatever is still running (used on exit and on SIGINT/SIGTERM). */
export function killAllChildren (): void {
  for (const p of live) {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
  }
  live.clear()
}
