// The supervisor of one counterd node (the main thread): owns the data dir (lock, epoch, the
// stored partition count), lays out the shared memory the shards talk through, starts one shard
// thread per WORKERS, and drives the node's lifecycle:
//   listen (so /health and /ready answer during recovery) → recover → ready → drain on close.
// It serves no request itself.
import fs from 'node:fs'
import path from 'node:path'
import tls from 'node:tls'
import { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'
import { isClusterStorage, type Config } from '../../config/loader'
import { assignSlots, parseApiKeyFile, type ApiKeyTable } from '../core/api-keys'
import { KEY_RATE_SLOTS, KeyRateLimiter } from '../core/key-rate'
import { withDeadline } from '../core/deadline'
import { fromWire } from '../core/errors'
import { PHASE_DRAINING, PHASE_READY, PHASE_RECOVERING, StatusBoard } from '../front/status-board'
import { Membership } from '../../cluster/membership'
import type { RingView } from '../../cluster/ring-view'
import { uwsImplementation } from '../front/uws'
import { InflightGauge } from '../routing/inflight'
import { Doorbell, SpscRing } from '../routing/spsc-ring'
import { walDir } from '../storage/open-storage'
import { freePort } from './free-port'
import { listSegments } from '../storage/wal'
import type { FromShard, ShardInit, ToShard } from './shard-protocol'

/** A start refused for a reason the operator must fix (exit code 2, like a bad setting). */
export class StartError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'StartError'
  }
}

type Wanted = FromShard['t']

/** How long the final commits and checkpoints of a graceful stop may take. */
const CLOSE_DEADLINE_MS = 60_000

class ShardHandle {
  // Questions asked and not yet answered, oldest first; a shard answers each kind in order.
  private readonly waiting: Array<{ t: Wanted, resolve: (m: FromShard) => void }> = []

  constructor (readonly index: number, readonly worker: Worker, private readonly onFailed: (err: Error, exitCode?: number) => void) {
    worker.on('message', (m: FromShard) => {
      if (m.t === 'failed') { this.onFailed(fromWire(m.error), m.exitCode); return }
      const i = this.waiting.findIndex((w) => w.t === m.t)
      if (i >= 0) this.waiting.splice(i, 1)[0].resolve(m)
    })
  }

  /** Sends a lifecycle message and resolves with the shard's answer of type `t`. */
  async ask<T extends Wanted> (msg: ToShard, t: T): Promise<Extract<FromShard, { t: T }>> {
    return await new Promise((resolve) => {
      this.waiting.push({ t, resolve: resolve as (m: FromShard) => void })
      this.worker.postMessage(msg)
    })
  }
}

export class CounterNode {
  private closing: Promise<void> | null = null
  private stopped = false
  port = 0
  respPort = -1
  // Ring mode (cluster storage): this node's membership, and the views adopted one at a time.
  private membership: Membership | null = null
  private peerPorts: number[] = []
  private adopting: Promise<void> = Promise.resolve()

  private constructor (
    readonly config: Config,
    private readonly logger: Logger,
    private readonly shards: ShardHandle[],
    private readonly board: StatusBoard,
    private readonly lockFile: string,
    readonly epoch: number
  ) {}

  static async start (config: Config, logger: Logger, onFatal: (err: Error, exitCode?: number) => void): Promise<CounterNode> {
    fs.mkdirSync(config.dataDir, { recursive: true })
    const lockFile = takeLock(config.dataDir)
    try {
      if (!isClusterStorage(config)) checkPartitions(config.dataDir, config.partitions)
    } catch (err) {
      fs.rmSync(lockFile, { force: true })
      throw err
    }
    let auth: ApiKeyTable | null
    try {
      checkTls(config)
      auth = loadApiKeys(config, logger, keySlots)
    } catch (err) {
      fs.rmSync(lockFile, { force: true })
      throw err
    }
    const epoch = bumpEpoch(config.dataDir)
    const n = config.workers
    logger.info({ uws: uwsImplementation, dataDir: config.dataDir, epoch, partitions: config.partitions, workers: n, ackMode: config.ackMode }, 'starting')
    if (uwsImplementation === 'fallback') {
      logger.warn('uWebSockets.js native binary did NOT load: running on its slow JavaScript fallback. Throughput will be a fraction of normal. Use Node 20 on linux-x64 with glibc ≥ 2.36.')
    }
    // rings[s][t]: the ring shard s writes and shard t reads.
    const rings = Array.from({ length: n }, (_, s) => Array.from({ length: n }, (_, t) => s === t ? null : SpscRing.allocate(config.shardRingBytes)))
    const bells = Array.from({ length: n }, () => Doorbell.allocate())
    const boardMemory = StatusBoard.allocate(n)
    const inflight = InflightGauge.allocate()
    const board = new StatusBoard(boardMemory, n)
    const keyRates = config.keyOpsPerSecond > 0 ? KeyRateLimiter.allocate() : null
    let node: CounterNode | null = null
    let failing = false
    const failed = (err: Error, exitCode?: number): void => {
      if (node?.stopped === true || failing) return
      failing = true
      // Every shard closes its sockets first: a thread ending with open uWS sockets aborts the process.
      abortShards(shards).finally(() => onFatal(err, exitCode))
    }
    const shards = Array.from({ length: n }, (_, s) => {
      const init: ShardInit = {
        index: s,
        shards: n,
        config,
        epoch,
        rings: { out: rings[s], in: rings.map((row) => row[s]) },
        bells,
        board: boardMemory,
        inflight,
        auth,
        keyRates
      }
      const worker = new Worker(path.join(__dirname, 'shard-thread.js'), { workerData: init })
      // A shard thread that dies takes partition state with it: the node cannot go on serving.
      worker.on('error', (err) => failed(err))
      worker.on('exit', (code) => failed(new Error(`shard ${s} stopped (exit code ${code})`)))
      return new ShardHandle(s, worker, failed)
    })
    node = new CounterNode(config, logger, shards, board, lockFile, epoch)
    await node.listen()
    await node.recover()
    return node
  }

  /** Reads AUTH_FILE again (SIGHUP); a file that does not parse leaves the keys as they were. */
  reloadApiKeys (): void {
    let table: ApiKeyTable | null
    try {
      table = loadApiKeys(this.config, this.logger, keySlots)
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'AUTH_FILE not reloaded; the keys in use stay')
      return
    }
    for (const s of this.shards) s.worker.postMessage({ t: 'auth', table } satisfies ToShard)
    this.logger.info({ keys: table?.keys.length ?? 0 }, 'AUTH_FILE reloaded')
  }

  /**
   * Every shard listens on the same port (uWS sets SO_REUSEPORT; the kernel spreads connections).
   * uWS does not share an ephemeral port, so for PORT=0 the supervisor picks a free port first.
   * The Redis protocol (RESP_PORT) has one listener, on shard 0: Node 20's net module cannot set
   * SO_REUSEPORT and uWS has no raw TCP server, so shard 0 takes every RESP connection and reaches
   * the other shards' counters through its router, like any request for another shard.
   */
  private async listen (): Promise<void> {
    const { host, respPort } = this.config
    for (let attempt = 1; ; attempt++) {
      const port = this.config.port !== 0 ? this.config.port : await freePort(host)
      const first = await this.shards[0].ask({ t: 'listen', port, respPort }, 'listening')
      if (first.port === port) {
        if (respPort >= 0 && first.respPort < 0) throw new Error(`cannot listen for the Redis protocol on ${host}:${respPort} (RESP_PORT)`)
        this.port = port
        this.respPort = first.respPort
        break
      }
      // A free port may be taken between the probe and the listen: try another.
      if (this.config.port !== 0 || attempt === 10) throw new Error(`cannot listen on ${host}:${port}`)
    }
    const others = await Promise.all(this.shards.slice(1).map(async (s) => await s.ask({ t: 'listen', port: this.port, respPort: -1 }, 'listening')))
    if (others.some((m) => m.port !== this.port)) throw new Error(`cannot listen on ${host}:${this.port} from every shard`)
    this.logger.info({ host, ...(this.respPort >= 0 ? { respPort: this.respPort } : {}), port: this.port }, 'listening')
  }

  private async recover (): Promise<void> {
    const started = Date.now()
    const recovered = await Promise.all(this.shards.map(async (s) => await s.ask({ t: 'recover' }, 'recovered')))
    const stats = recovered.map((r) => r.stats)
    this.peerPorts = recovered.map((r) => r.peerPort)
    // Ring mode: ready once the ring has given this node its partitions (joinRing).
    if (isClusterStorage(this.config)) await this.joinRing()
    else this.board.setPhase(PHASE_READY)
    this.logger.info({
      ms: Date.now() - started,
      counters: stats.reduce((n, r) => n + r.counters, 0),
      recordsReplayed: stats.reduce((n, r) => n + r.records, 0)
    }, isClusterStorage(this.config) ? 'storage open; ready once the ring view is adopted' : 'ready')
    // Once every shard has checkpointed what it recovered, the log of earlier epochs is not needed.
    Promise.all(this.shards.map(async (s) => await s.ask({ t: 'serve' }, 'checkpointed'))).then(() => {
      if (this.closing !== null || isClusterStorage(this.config)) return
      for (const seg of listSegments(walDir(this.config))) {
        if (seg.epoch < this.epoch) fs.rmSync(path.join(walDir(this.config), seg.file), { force: true })
      }
    }, (err: Error) => this.logger.error({ err }, 'checkpoint after recovery failed'))
  }

  /** This node's id in the ring, and the URL it advertises. */
  get nodeUrl (): string {
    const { config } = this
    return config.advertiseUrl !== '' ? config.advertiseUrl : `${config.tlsCertFile === '' ? 'http' : 'https'}://${config.host}:${this.port}`
  }

  get nodeId (): string {
    return this.config.nodeId !== '' ? this.config.nodeId : this.nodeUrl
  }

  /**
   * Joins the ring (the Kafka group of CLUSTER_NAME) and adopts every view it hands out: each
   * shard routes by it and takes or releases its partitions. Resolves once the node has joined;
   * it is ready when the first view has been adopted.
   */
  private async joinRing (): Promise<void> {
    const { config, logger } = this
    const self = { id: this.nodeId, url: this.nodeUrl, peerHost: config.host, peerPorts: this.peerPorts }
    const membership = this.membership = await Membership.start({
      brokers: config.kafkaBrokers.split(','),
      redisUrl: config.redisUrl,
      cluster: config.clusterName,
      self,
      partitions: config.partitions,
      sessionTimeoutMs: config.clusterSessionMs,
      logger: logger.child({ part: 'membership' })
    })
    membership.on('ring', (view: RingView) => this.adopt(view))
    membership.on('lost', (reason: string) => {
      logger.warn({ reason }, 'this node is out of the ring: it owns nothing until it is back')
      if (this.closing === null) this.board.setPhase(PHASE_RECOVERING)
      this.adopt(null)
    })
    logger.info({ cluster: config.clusterName, id: self.id, peerPorts: self.peerPorts }, 'joining the ring')
  }

  /** Every shard adopts `view` (null: owns nothing); views are adopted one at a time, in order. */
  private adopt (view: RingView | null): void {
    this.adopting = this.adopting.then(async () => {
      if (this.stopped) return
      const waitMs = this.config.clusterSessionMs
      const answers = await Promise.all(this.shards.map(async (s) => await s.ask({ t: 'ring', view, self: this.nodeId, waitMs }, 'owned')))
      const failed = answers.find((a) => a.error !== undefined)
      if (failed?.error !== undefined) {
        this.logger.error({ generation: view?.generation, error: failed.error }, 'a shard could not adopt the ring view')
        return
      }
      if (view === null) return
      const mine = view.owners.filter((o) => o === this.nodeId).length
      this.logger.info({ generation: view.generation, members: view.members.map((m) => m.id), partitions: mine }, 'ring view adopted')
      if (this.closing === null) this.board.setPhase(PHASE_READY)
    })
  }

  /** Graceful stop: no new work, in-flight work finished and acked, final checkpoint, threads stopped. */
  async close (): Promise<void> {
    this.closing ??= this.drain()
    return await this.closing
  }

  private async drain (): Promise<void> {
    this.board.setPhase(PHASE_DRAINING)
    // Ring mode: leave the group first, so the others rebalance at once. With the view they adopt
    // without this node, every shard routes this node's partitions to their new owners and
    // releases them (final checkpoint) while still serving: what arrives meanwhile is forwarded,
    // so clients see latency, not errors.
    if (this.membership !== null) {
      const successor = await this.membership.stop(this.config.clusterSessionMs).catch((err: unknown) => {
        this.logger.warn({ err }, 'leaving the ring failed; the others notice after CLUSTER_SESSION_MS')
        return null
      })
      if (successor !== null) this.adopt(successor)
      await this.adopting
    }
    // Every shard answers what it accepted; a shard's requests may wait on another's ring, so all
    // keep running until every one is drained.
    await Promise.all(this.shards.map(async (s) => await s.ask({ t: 'drain' }, 'drained')))
    // A final checkpoint that cannot complete (the log or the checkpoint store down) must not hold
    // the process forever: past the deadline the stop fails, and the process exits non-zero.
    await withDeadline(CLOSE_DEADLINE_MS, 'shards did not close', async () => {
      await Promise.all(this.shards.map(async (s) => await s.ask({ t: 'close' }, 'closed')))
    })
    this.stopped = true
    await Promise.all(this.shards.map(async (s) => await s.worker.terminate()))
    fs.rmSync(this.lockFile, { force: true })
    this.logger.info('stopped')
  }
}

/** Asks every shard to close its sockets, for at most a second (a shard may be stuck or gone). */
async function abortShards (shards: ShardHandle[]): Promise<void> {
  const timeout = new Promise<void>((resolve) => setTimeout(resolve, 1000).unref())
  await Promise.race([Promise.all(shards.map(async (s) => await s.ask({ t: 'abort' }, 'aborted'))), timeout])
}

/** PARTITIONS is fixed for a data dir's life: stored at first start, checked at every start. */
function checkPartitions (dataDir: string, partitions: number): void {
  const file = path.join(dataDir, 'PARTITIONS')
  if (fs.existsSync(file)) {
    const stored = Number(fs.readFileSync(file, 'utf8').trim())
    if (stored !== partitions) {
      throw new StartError(`PARTITIONS is ${partitions} but ${dataDir} was written with PARTITIONS=${stored}; a data dir keeps its partition count for life (start with PARTITIONS=${stored})`)
    }
    return
  }
  writeDurably(dataDir, 'PARTITIONS', String(partitions))
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
    if (Date.now() > deadline) throw new StartError(`DATA_DIR ${dataDir} is in use by process ${holder}`)
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
  writeDurably(dataDir, 'EPOCH', String(epoch))
  return epoch
}

/** Replaces dataDir/name with `text` atomically and durably (temp file, fsync, rename, dir fsync). */
function writeDurably (dataDir: string, name: string, text: string): void {
  const file = path.join(dataDir, name)
  const tmp = file + '.tmp'
  const fd = fs.openSync(tmp, 'w')
  fs.writeSync(fd, text)
  fs.fdatasyncSync(fd)
  fs.closeSync(fd)
  fs.renameSync(tmp, file)
  const dir = fs.openSync(dataDir, 'r')
  fs.fsyncSync(dir)
  fs.closeSync(dir)
}

/** AUTH_FILE's keys, checked whole (a bad file stops the start with exit 2); null: no AUTH_FILE. */
/** Each API key's rate-limit slot, by digest, over the process's life (reloads keep a key's slot). */
const keySlots = new Map<string, number>()

function loadApiKeys (config: Config, logger: Logger, slots: Map<string, number>): ApiKeyTable | null {
  if (config.authFile === '') {
    logger.warn('AUTH_FILE is not set: every client may read and write every counter')
    return null
  }
  let table: ApiKeyTable
  try {
    table = parseApiKeyFile(fs.readFileSync(config.authFile, 'utf8'))
    assignSlots(table, slots, KEY_RATE_SLOTS)
  } catch (err) {
    throw new StartError(`AUTH_FILE ${config.authFile}: ${(err as Error).message}`)
  }
  if (table.plain > 0) logger.warn({ plainKeys: table.plain }, 'AUTH_FILE holds keys in plain text; store "sha256:<hex>" instead')
  return table
}

/** The certificate and key must load and belong together, or the node does not start (exit 2). */
function checkTls (config: Config): void {
  if (config.tlsCertFile === '') return
  try {
    tls.createSecureContext({ cert: fs.readFileSync(config.tlsCertFile), key: fs.readFileSync(config.tlsKeyFile) })
  } catch (err) {
    throw new StartError(`TLS_CERT_FILE ${config.tlsCertFile} and TLS_KEY_FILE ${config.tlsKeyFile} cannot serve TLS: ${(err as Error).message}`)
  }
}
