// Composition of one counterd node: data dir (lock, epoch), actor hosts, router, uWS front.
// Lifecycle: listen (so /health and /ready answer during recovery) → recover → ready → drain on close.
import fs from 'node:fs'
import path from 'node:path'
import type { Logger } from 'pino'
import { ActorHosts } from '../../actors/host'
import type { Config } from '../../config/loader'
import type { FrontContext, NodeStatus } from '../front/context'
import { installFeatureRoutes } from '../front/features-http'
import { installHttpRoutes } from '../front/http'
import { Metrics } from '../front/metrics'
import { closeStreams, installStream, type StreamConn } from '../front/stream'
import { uws, uwsImplementation, type WebSocket } from '../front/uws'
import { walDir } from '../storage/open-storage'
import { listSegments } from '../storage/wal'
import { Router } from '../routing/router'

export class CounterNode {
  private listenSocket: unknown = null
  private readonly sockets = new Set<WebSocket<StreamConn>>()
  private closing: Promise<void> | null = null
  port = 0

  private constructor (
    readonly config: Config,
    private readonly logger: Logger,
    private readonly hosts: ActorHosts,
    readonly router: Router,
    readonly status: NodeStatus,
    private readonly lockFile: string
  ) {}

  static async start (config: Config, logger: Logger, onFatal: (err: Error) => void): Promise<CounterNode> {
    fs.mkdirSync(config.dataDir, { recursive: true })
    const lockFile = takeLock(config.dataDir)
    const epoch = bumpEpoch(config.dataDir)
    logger.info({ uws: uwsImplementation, dataDir: config.dataDir, epoch, partitions: config.partitions, workers: config.workers, ackMode: config.ackMode }, 'starting')
    if (uwsImplementation === 'fallback') {
      logger.warn('uWebSockets.js native binary did NOT load: running on its slow JavaScript fallback. Throughput will be a fraction of normal. Use Node 20 on linux-x64 with glibc ≥ 2.36.')
    }
    const hosts = new ActorHosts(config, epoch, onFatal)
    const router = new Router(hosts, config.partitions)
    const status: NodeStatus = {
      ready: false,
      draining: false,
      readiness: async () => {
        if (!status.ready || status.draining) return { ready: false, detail: { recovering: !status.ready, draining: status.draining } }
        // Ready means acks can be given: the log and checkpoints work. History lag is reported, not fatal.
        const stats = await hosts.stats()
        const failing = stats.filter((s) => !s.logOk).map((s) => s.logError)
        const detail: Record<string, unknown> = { storage: failing.length === 0 ? 'ok' : failing[0] }
        const history = stats.map((s) => s.history).filter((h) => h !== undefined)
        if (history.length > 0) {
          const bad = history.find((h) => !h.ok)
          detail.history = bad === undefined ? 'ok' : bad.error
          detail.historyPendingRows = history.reduce((n, h) => n + h.pendingRows + h.unconfirmedRows, 0)
        }
        return { ready: failing.length === 0, detail }
      }
    }
    const node = new CounterNode(config, logger, hosts, router, status, lockFile)
    await node.listen()
    const started = Date.now()
    const recovered = await hosts.recover()
    // Every host has checkpointed what it recovered: segments of earlier epochs are no longer needed.
    for (const seg of listSegments(walDir(config))) {
      if (seg.epoch < epoch) fs.rmSync(path.join(walDir(config), seg.file), { force: true })
    }
    status.ready = true
    logger.info({
      ms: Date.now() - started,
      counters: recovered.reduce((n, r) => n + r.counters, 0),
      recordsReplayed: recovered.reduce((n, r) => n + r.records, 0)
    }, 'ready')
    return node
  }

  private async listen (): Promise<void> {
    const ctx: FrontContext = { config: this.config, router: this.router, metrics: new Metrics(), status: this.status, logger: this.logger }
    const app = uws.App()
    installStream(app, ctx, this.sockets)
    installFeatureRoutes(app, ctx)
    installHttpRoutes(app, ctx)
    await new Promise<void>((resolve, reject) => {
      app.listen(this.config.host, this.config.port, (socket) => {
        if (socket === false) { reject(new Error(`cannot listen on ${this.config.host}:${this.config.port}`)); return }
        this.listenSocket = socket
        this.port = uws.us_socket_local_port(socket)
        this.logger.info({ host: this.config.host, port: this.port }, 'listening')
        resolve()
      })
    })
  }

  /** Graceful stop: no new work, in-flight work finished and acked, final checkpoint, threads stopped. */
  async close (): Promise<void> {
    this.closing ??= this.drain()
    return await this.closing
  }

  private async drain (): Promise<void> {
    this.status.draining = true
    if (this.listenSocket !== null) uws.us_listen_socket_close(this.listenSocket as never)
    const deadline = Date.now() + 30_000
    while (this.router.inflightOps + this.router.inflightReads > 0 && Date.now() < deadline) await sleep(5)
    closeStreams(this.sockets)
    await this.hosts.close()
    fs.rmSync(this.lockFile, { force: true })
    this.logger.info('stopped')
  }
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** One process per data dir. A lock left by a process that no longer runs (kill -9) is taken over. */
function takeLock (dataDir: string): string {
  const file = path.join(dataDir, 'LOCK')
  try {
    fs.writeFileSync(file, String(process.pid), { flag: 'wx' })
    return file
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  const holder = Number(fs.readFileSync(file, 'utf8'))
  // A process killed a moment ago may take a little while to be gone.
  const deadline = Date.now() + 3000
  while (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
    if (Date.now() > deadline) throw new Error(`DATA_DIR ${dataDir} is in use by process ${holder}`)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50)
  }
  fs.writeFileSync(file, String(process.pid))
  return file
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Each start is a new owner of every partition: a higher epoch, written durably before use. */
function bumpEpoch (dataDir: string): number {
  const file = path.join(dataDir, 'EPOCH')
  const prev = fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8')) : 0
  const epoch = (Number.isInteger(prev) ? prev : 0) + 1
  const tmp = file + '.tmp'
  const fd = fs.openSync(tmp, 'w')
  fs.writeSync(fd, String(epoch))
  fs.fdatasyncSync(fd)
  fs.closeSync(fd)
  fs.renameSync(tmp, file)
  const dir = fs.openSync(dataDir, 'r')
  fs.fsyncSync(dir)
  fs.closeSync(dir)
  return epoch
}
