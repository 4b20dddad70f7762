// Starts a private Kafka for one test: librdkafka's built-in mock cluster, hosted by a `kcat`
// consumer process (no real broker can be installed on the build machines). It serves produce,
// fetch, metadata (auto-creating topics with 4 partitions), offsets and consumer groups; it lacks
// CreateTopics and the idempotent producer. Its data lives in the kcat process's memory, so there
// is no restart that keeps data: outages are simulated with pause() (SIGSTOP) and resume().
import { spawn, type ChildProcess } from 'node:child_process'
import { pauseProcess, resumeProcess, stopProcess, track } from './process-control'
import type { TeardownHost } from './redis'

export interface KafkaMock {
  brokers: string[] // host:port of each mock broker
  proc: ChildProcess
  /** Freezes every broker: connections stay open, requests get no answer. */
  pause: () => void
  resume: () => void
  stop: () => Promise<void>
}

// librdkafka logs the mock's listeners at start, either as a notice (always) or, with `-d mock`,
// as a debug line; accept both so a librdkafka upgrade that rewords one still works.
const BOOTSTRAP_RE = /(?:bootstrap\.servers=|replaced with )(\d[\d.]*:\d+(?:,\d[\d.]*:\d+)*)/

export async function startKafka (t: TeardownHost, opts: { brokers?: number } = {}): Promise<KafkaMock> {
  const count = opts.brokers ?? 3
  // kcat must consume something to stay up; a private topic keeps it from fetching test data.
  const proc = track(spawn('kcat', [
    '-X', `test.mock.num.brokers=${count}`, '-b', '127.0.0.1:1', '-C', '-t', '__mock_keepalive', '-q'
  ], { stdio: ['ignore', 'ignore', 'pipe'] }))
  const stop = async (): Promise<void> => { await stopProcess(proc) }
  t.teardown(stop)
  const brokers = await new Promise<string[]>((resolve, reject) => {
    let seen = ''
    const timer = setTimeout(() => finish(new Error(`kcat mock cluster did not report its brokers within 10 s: ${seen.slice(-500)}`)), 10_000)
    const onData = (chunk: Buffer): void => {
      seen = (seen + chunk.toString('utf8')).slice(-8192)
      const m = BOOTSTRAP_RE.exec(seen)
      if (m !== null) finish(null, m[1].split(','))
    }
    const onExit = (code: number | null): void => finish(new Error(`kcat exited with ${String(code)} before the mock cluster was up: ${seen.slice(-500)}`))
    const onError = (err: Error): void => finish(err)
    function finish (err: Error | null, list?: string[]): void {
      clearTimeout(timer)
      proc.stderr?.off('data', onData)
      proc.off('exit', onExit)
      proc.off('error', onError)
      proc.stderr?.resume() // keep draining its log
      if (err !== null) reject(err)
      else resolve(list as string[])
    }
    proc.stderr?.on('data', onData)
    proc.on('exit', onExit)
    proc.on('error', onError)
  })
  return {
    brokers,
    proc,
    pause: () => pauseProcess(proc),
    resume: () => resumeProcess(proc),
    stop
  }
}
