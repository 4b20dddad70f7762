// Outage controls shared by the server launchers: freeze a server (SIGSTOP: connections stay open
// but nothing answers, like a hung broker), thaw it, and stop it for good even while frozen.
import type { ChildProcess } from 'node:child_process'
import { killAndWait } from './redis'

// Servers still running when the test process exits (a test timed out, or threw before its
// teardown) are killed on the way out instead of being left behind.
const live = new Set<ChildProcess>()
let hooked = false

/** Registers a server child so it dies with the test process at the latest. */
export function track (proc: ChildProcess): ChildProcess {
  live.add(proc)
  proc.once('exit', () => live.delete(proc))
  if (!hooked) {
    hooked = true
    process.once('exit', () => {
      for (const p of live) if (isRunning(p)) p.kill('SIGKILL')
    })
  }
  return proc
}

export function isRunning (proc: ChildProcess): boolean {
  return proc.exitCode === null && proc.signalCode === null
}

export function pauseProcess (proc: ChildProcess): void {
  if (isRunning(proc)) proc.kill('SIGSTOP')
}

export function resumeProcess (proc: ChildProcess): void {
  if (isRunning(proc)) proc.kill('SIGCONT')
}

/**
 * Stops a child that may be frozen: a stopped process only acts on SIGTERM after SIGCONT, so thaw
 * first. Falls back to SIGKILL when a graceful stop takes longer than `graceMs`.
 */
export async function stopProcess (proc: ChildProcess, signal: NodeJS.Signals = 'SIGKILL', graceMs = 10_000): Promise<void> {
  if (!isRunning(proc)) return
  resumeProcess(proc)
  if (signal === 'SIGKILL') {
    await killAndWait(proc, 'SIGKILL')
    return
  }
  const timer = setTimeout(() => { if (isRunning(proc)) proc.kill('SIGKILL') }, graceMs)
  try {
    await killAndWait(proc, signal)
  } finally {
    clearTimeout(timer)
  }
}

/** Reads and drops a child's output so a chatty server never blocks on a full pipe. */
export function drain (proc: ChildProcess): void {
  proc.stdout?.resume()
  proc.stderr?.resume()
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
