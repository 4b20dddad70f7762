// A private Kafka for a benchmark: librdkafka's built-in mock cluster hosted by a `kcat` consumer
// process (no real broker can be installed on this machine; see test/support/kafka.ts). Topics
// auto-create with 4 partitions on first produce; each partition keeps only about 5 MB, so a
// suite bounds what it leaves unconsumed.
import { spawn, type ChildProcess } from 'node:child_process'
import { expectExit, trackChild } from './children'
import { killAndWait } from '../test/support/redis'

export interface KafkaMockInstance {
  brokers: string[]
  proc: ChildProcess
  pid: number
  stop: () => Promise<void>
}

const BOOTSTRAP_RE = /(?:bootstrap\.servers=|replaced with )(\d[\d.]*:\d+(?:,\d[\d.]*:\d+)*)/

export async function launchKafkaMock (brokers = 1): Promise<KafkaMockInstance> {
  const proc = spawn('kcat', ['-X', `test.mock.num.brokers=${brokers}`, '-b', '127.0.0.1:1', '-C', '-t', '__mock_keepalive', '-q'],
    { stdio: ['ignore', 'ignore', 'pipe'] })
  trackChild(proc, 'kcat (Kafka mock)')
  const list = await new Promise<string[] | null>((resolve) => {
    let seen = ''
    const timer = setTimeout(() => done(null), 10_000)
    const onData = (chunk: Buffer): void => {
      seen = (seen + chunk.toString('utf8')).slice(-8192)
      const m = BOOTSTRAP_RE.exec(seen)
      if (m !== null) done(m[1].split(','))
    }
    const onExit = (): void => done(null)
    function done (r: string[] | null): void {
      clearTimeout(timer)
      proc.stderr?.off('data', onData)
      proc.off('exit', onExit)
      proc.stderr?.resume()
      resolve(r)
    }
    proc.stderr?.on('data', onData)
    proc.on('exit', onExit)
  })
  if (list === null || proc.pid === undefined) {
    expectExit(proc)
    await killAndWait(proc)
    throw new Error('the Kafka mock (kcat -X test.mock.num.brokers) did not report its brokers within 10 s; is kcat installed?')
  }
  return { brokers: list, proc, pid: proc.pid, stop: async () => { expectExit(proc); await killAndWait(proc, 'SIGTERM') } }
}
