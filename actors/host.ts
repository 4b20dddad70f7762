// The main-thread side of the actor hosts: one single-thread piscina pool per host, so every
// partition is pinned to one thread for the node's life (partition p lives on host p mod WORKERS).
import path from 'node:path'
import { Piscina } from 'piscina'
import type { Config } from '../config/loader'
import { fromWire, type WireError } from '../src/core/errors'
import type { HostInit, HostStats, HostTask, RecoverStats } from './host-protocol'

export class ActorHosts {
  readonly count: number
  private readonly pools: Piscina[]

  constructor (config: Config, epoch: number, onFatal: (err: Error) => void) {
    this.count = config.workers
    this.pools = []
    for (let h = 0; h < this.count; h++) {
      const partitions: number[] = []
      for (let p = h; p < config.partitions; p += this.count) partitions.push(p)
      const workerData: HostInit = { hostIndex: h, partitions, epoch, config }
      const pool = new Piscina({
        filename: path.join(__dirname, 'host-worker.js'),
        minThreads: 1,
        maxThreads: 1,
        // Many write batches wait for the same group commit at once; the router bounds the total.
        concurrentTasksPerWorker: 1 << 20,
        idleTimeout: Number.POSITIVE_INFINITY,
        // The host thread runs timers and fs callbacks between tasks; it must never block waiting.
        atomics: 'disabled',
        workerData
      })
      // A host thread that dies takes partition state with it: the node cannot go on serving.
      pool.on('error', (err: Error) => onFatal(err))
      this.pools.push(pool)
    }
  }

  hostOf (partition: number): number {
    return partition % this.count
  }

  async run (host: number, task: HostTask, transferList?: ArrayBuffer[]): Promise<unknown> {
    try {
      return await this.pools[host].run(task, transferList === undefined ? undefined : { transferList })
    } catch (err) {
      throw (err !== null && typeof err === 'object' && 'code' in err) ? fromWire(err as WireError) : err
    }
  }

  async recover (): Promise<RecoverStats[]> {
    return await Promise.all(this.pools.map(async (_, h) => await this.run(h, { t: 'recover' }) as RecoverStats))
  }

  async stats (): Promise<HostStats[]> {
    return await Promise.all(this.pools.map(async (_, h) => await this.run(h, { t: 'stats' }) as HostStats))
  }

  /** Final group commit and checkpoint on every host, then the threads stop. */
  async close (): Promise<void> {
    await Promise.all(this.pools.map(async (_, h) => await this.run(h, { t: 'close' })))
    await Promise.all(this.pools.map(async (pool) => await pool.destroy()))
  }
}
