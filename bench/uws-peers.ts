// Starts the benchmark's own uWS peers (bench/bare-uws-server.ts, bench/ws-ceiling-server.ts) as
// processes on a free port, with the thread count the suite chose, and reads the port every
// thread listens on from the listening line.
import os from 'node:os'
import path from 'node:path'
import { startNodeService, type NodeService } from './node-service'
import type { BenchContext } from './suite'

export interface UwsPeer extends NodeService {
  /** the port of each thread, thread 0 first (one shared port: all equal) */
  ports: number[]
  threads: number
}

/**
 * Threads of the uWS peers, and WORKERS of every counterd measured next to them, so both sides
 * get the same number of threads: --env WORKERS=N when given, else one per core.
 */
export function serverThreads (ctx: BenchContext): number {
  const given = ctx.counterdEnv.WORKERS
  const n = given === undefined ? os.availableParallelism() : Number(given)
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`WORKERS must be a positive integer, got ${String(given)}`)
  return n
}

export async function startUwsPeer (name: string, scriptName: 'bare-uws-server' | 'ws-ceiling-server', threads: number): Promise<UwsPeer> {
  const service = await startNodeService({
    name,
    script: path.join(__dirname, `${scriptName}.js`),
    env: { HOST: '127.0.0.1', PORT: '0', WORKERS: String(threads) },
    timeoutMs: 30_000
  })
  const ports = service.listening.ports
  if (!Array.isArray(ports) || ports.length !== threads || !ports.every(p => typeof p === 'number')) {
    await service.kill()
    throw new Error(`${name} listed ports ${JSON.stringify(ports)}, expected ${threads}`)
  }
  return { ...service, ports: ports as number[], threads }
}
