// A shard thread: its own uWS app on the node's port (the kernel spreads connections over the
// shards' listening sockets: SO_REUSEPORT), its own storage and partitions, and a router that
// reaches the other shards through shared-memory rings. Composition only: the parts live in
// src/front, src/routing, actors and src/storage.
import fs from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'
import pino from 'pino'
import { Shard } from '../../actors/shard'
import { isClusterStorage } from '../../config/loader'
import { RingRouting } from '../../cluster/ring-routing'
import { ApiKeyVerifier } from '../core/api-keys'
import { KeyRateLimiter } from '../core/key-rate'
import { withDeadline } from '../core/deadline'
import { asCounterdError } from '../core/errors'
import { guardRoutes } from '../front/auth'
import type { DeltaRecord } from '../core/records'
import type { FrontContext } from '../front/context'
import { installCounterRoutes } from '../front/counter-routes'
import { installFeatureRoutes } from '../front/feature-routes'
import { HOT_POLL_MS, HotCounters } from '../front/hot-counters'
import { Ingestor } from '../front/ingest'
import { ThreadMetrics, timeRoutes } from '../front/metrics'
import { installNodeRoutes } from '../front/node-routes'
import { F_COUNTERS, F_INGEST_PARTITIONS, StatusBoard } from '../front/status-board'
import { RespFront } from '../front/resp'
import { closeStreams, installStream, type StreamConn } from '../front/stream'
import { closeApp, uws, type WebSocket } from '../front/uws'
import { InflightGauge } from '../routing/inflight'
import { Router } from '../routing/router'
import { Doorbell, SpscRing } from '../routing/spsc-ring'
import { openStorage } from '../storage/open-storage'
import type { FromShard, ShardInit, ToShard } from './shard-protocol'
import type { RingView } from '../../cluster/ring-view'

// Ring mode: how long a request for a moving partition may wait at least. A handoff takes the old
// owner's final commit and checkpoint plus the new owner's replay, whose Kafka consumer alone needs
// a group join (group.initial.rebalance.delay.ms, 3 s by default); a partition can move twice in a
// row (a node leaves and comes back), and the second move waits for the first to finish.
const PARK_MIN_MS = 30_000

const init = workerData as ShardInit
const { config, index } = init
const port = parentPort as NonNullable<typeof parentPort>
const logger = pino({ level: config.logLevel, base: { shard: index } })
const board = new StatusBoard(init.board, init.shards)
const row = board.row(index)
row.setLog(undefined)
row.set(F_INGEST_PARTITIONS, -1) // no consumer here (yet)
const sockets = new Set<WebSocket<StreamConn>>()
// The router exists once storage is open; routes reach it only after admit() saw the node ready.
const inflight = new InflightGauge(init.inflight, config.maxInflightOps)
const cluster = config.kafkaBrokers !== ''
const threadMetrics = new ThreadMetrics({ shard: index, board, row, inflight, log: cluster ? 'kafka' : 'wal', checkpoints: cluster ? 'redis' : 'snapshot', ingestTopic: config.ingestTopic })
// METRICS_HISTOGRAMS=false: nothing is timed or observed per request, frame, commit or hop.
const observer = config.metricsHistograms ? threadMetrics : undefined
const ctx: FrontContext = { config, router: null as unknown as Router, ring: null, selfUrl: '', metrics: row, threadMetrics, auth: init.auth === null ? null : new ApiKeyVerifier(init.auth), keyLimit: init.keyRates === null ? null : new KeyRateLimiter(init.keyRates, config.keyOpsPerSecond), board, inflight, logger }
let shard: Shard | null = null
let listenSocket: unknown = null
let listenPort = -1
let resp: RespFront | null = null
let healthTimer: NodeJS.Timeout | null = null
let ingestor: Ingestor | null = null
let hot: HotCounters | null = null
// Cluster storage means a ring of nodes (a single node is a ring of one): partitions come from the ring.
const ringMode = isClusterStorage(config)
let ring: RingRouting | null = null

// With TLS_CERT_FILE (checked by the supervisor before any shard starts) the same routes speak HTTPS and WSS.
const app = config.tlsCertFile === '' ? uws.App() : uws.SSLApp({ cert_file_name: config.tlsCertFile, key_file_name: config.tlsKeyFile })
installStream(app, ctx, sockets)
// Timing outermost, so refused requests are timed too; then the key check; then the route.
const timed = guardRoutes(config.metricsHistograms ? timeRoutes(app, threadMetrics) : app, ctx)
installFeatureRoutes(timed, ctx)
installCounterRoutes(timed, ctx)
installNodeRoutes(timed, ctx)

function send (msg: FromShard): void {
  port.postMessage(msg)
}

/** Copies this shard's health and figures into its row of the board (what /ready and /metrics read). */
function publishHealth (): void {
  if (shard === null) return
  const s = shard.stats()
  row.setLog(s.logError)
  row.setHistory(s.history === undefined ? undefined : { ok: s.history.ok, error: s.history.error, pendingRows: s.history.pendingRows + s.history.unconfirmedRows })
  row.set(F_COUNTERS, s.counters)
}

function listen (p: number, respPort: number): void {
  app.listen(config.host, p, (socket) => {
    if (socket === false) { send({ t: 'listening', port: -1, respPort: -1 }); return }
    listenSocket = socket
    listenPort = uws.us_socket_local_port(socket)
    ctx.selfUrl = config.advertiseUrl !== '' ? config.advertiseUrl : `${config.tlsCertFile === '' ? 'http' : 'https'}://${config.host}:${listenPort}`
    if (respPort < 0) { send({ t: 'listening', port: listenPort, respPort: -1 }); return }
    const front = new RespFront(ctx, () => listenPort)
    front.listen(config.host, respPort).then(
      (port) => { resp = front; send({ t: 'listening', port: listenPort, respPort: port }) },
      (err) => { logger.error({ err }, 'cannot listen for the Redis protocol'); send({ t: 'listening', port: listenPort, respPort: -1 }) })
  })
}

async function recover (): Promise<void> {
  const opening = Date.now()
  const partitions: number[] = []
  if (!ringMode) for (let p = index; p < config.partitions; p += init.shards) partitions.push(p)
  const storage = await openStorage(config, index, init.shards, partitions, init.epoch, { logger })
  const s = shard = new Shard({
    index,
    shards: init.shards,
    config,
    storage,
    logger,
    observer,
    dynamic: ringMode,
    // Fenced: a successor owns a partition this shard still wrote. Nothing since is acknowledged;
    // the node stops (its supervisor restarts it, and it rejoins the ring under a new epoch).
    onFenced: (err) => {
      closeSockets()
      send({ t: 'failed', stage: 'commit', error: err.toWire() })
    }
  })
  const router = new Router({
    index,
    shards: init.shards,
    partitions: config.partitions,
    shard: s,
    links: {
      out: init.rings.out.map((sab) => sab === null ? null : new SpscRing(sab)),
      in: init.rings.in.map((sab) => sab === null ? null : new SpscRing(sab)),
      bells: init.bells.map((sab) => new Doorbell(sab))
    },
    inflight,
    outboxLimit: config.shardRingBytes,
    parkMs: ringMode ? Math.max(config.clusterSessionMs, PARK_MIN_MS) : 0,
    logger,
    observer
  })
  router.handlers.set('sample', (a: { key: string, n: number }) => s.sample(a.key, a.n))
  router.handlers.set('replicas', (a: { key: string }) => s.replicas(a.key))
  router.handlers.set('top', (a: { ns?: string, type: string | null, k: number }) => s.top(a.type, a.k, a.ns ?? ''))
  router.handlers.set('export', () => s.exportTotals())
  router.handlers.set('metrics', async () => await threadMetrics.snapshot())
  threadMetrics.readStatsFrom(() => s.stats())
  threadMetrics.readRingFrom(() => {
    const view = ring?.current ?? null
    const links = ring?.links() ?? { links: 0, up: 0 }
    return { generation: view?.generation ?? 0, members: view?.members.length ?? 1, owned: s.partitions.length, parked: router.parkedParts, links: links.links, linksUp: links.up }
  })
  router.handlers.set('merge', async (a: { records: DeltaRecord[] }) => await s.merge(a.records))
  // Resolves once everything this shard applied so far is durable (ingestion with ack=applied).
  router.handlers.set('barrier', async () => { await s.commit.barrier() })
  router.handlers.set('history', async (a: { key: string, from: number, to: number, step: 'minute' | 'hour' | 'day' }) => await s.history(a.key, a.from, a.to, a.step))
  router.handlers.set('hot-splits', () => s.hotSplits())
  router.handlers.set('hot-drain', async (a: { key: string, ways: number, j: number }) => await s.hotDrain(a.key, a.ways, a.j))
  // Another node asks this one a node-wide question (top-K, export): every shard of this node answers.
  router.handlers.set('node', async (a: { name: string, args: unknown }) => await router.controlAll(a.name, a.args))
  ctx.router = router
  s.onOwnership = () => router.unpark() // parts that waited for a moving partition go first (applied here, or forwarded)
  router.start()
  let peerPort = -1
  if (ringMode) {
    ring = ctx.ring = new RingRouting({
      router,
      index,
      shards: init.shards,
      partitions: config.partitions,
      linkLimit: config.shardRingBytes,
      logger,
      secret: config.clusterSecret,
      tls: config.tlsCertFile === '' ? null : { cert: fs.readFileSync(config.tlsCertFile), key: fs.readFileSync(config.tlsKeyFile) }
    })
    peerPort = await ring.listen(config.host, config.peerPort === 0 ? 0 : config.peerPort + index)
  }
  const stats = await s.recover()
  logger.info({ ...stats, openMs: Date.now() - opening - stats.ms }, 'shard recovered')
  publishHealth()
  healthTimer = setInterval(publishHealth, 100)
  send({ t: 'recovered', stats, peerPort })
}

/** Ring mode: routes by the new view, then owns this shard's partitions of it (null: none). */
async function adoptRing (view: RingView | null, self: string, waitMs: number): Promise<void> {
  const s = shard as Shard
  const routing = ring as RingRouting
  const generation = view?.generation ?? -1
  try {
    const want = view === null ? [] : routing.apply(view, self)
    // A member that left with SIGTERM still holds its partitions until it released them.
    const holders = view === null ? [] : [...view.members.map((m) => m.id), ...(view.leaving ?? [])]
    const change = await s.own(want, self, holders, waitMs)
    if (change.acquired.length > 0 || change.released.length > 0) logger.info({ generation, ...change }, 'partitions moved')
    send({ t: 'owned', generation, change })
  } catch (err) {
    logger.error({ err, generation }, 'adopting the ring view failed')
    send({ t: 'owned', generation, change: null, error: asCounterdError(err).toWire() })
  }
}

async function serve (): Promise<void> {
  const s = shard as Shard
  s.startCheckpoints()
  if (config.hotSplitRate > 0) {
    // A merge waits until no front sends to the sub-counters: polls, plus a part parked for a moving partition.
    const parkMs = ringMode ? Math.max(config.clusterSessionMs, PARK_MIN_MS) : 0
    hot = new HotCounters(ctx, s, {
      splitRate: config.hotSplitRate,
      ways: config.hotSplitWays,
      mergeRate: config.hotMergeRate,
      mergeAfterMs: config.hotMergeAfterMs,
      graceMs: parkMs + 6 * HOT_POLL_MS
    })
    hot.start()
  }
  // Event ingestion runs in the first INGEST_CONSUMERS shard threads (default one): each is a
  // member of the group, and its router reaches every shard (README, "Event ingestion").
  if (config.ingestTopic !== '' && index < config.ingestConsumers) {
    ingestor = new Ingestor(ctx, {
      clientId: `counterd-ingest-${process.pid}-${index}`,
      brokers: config.ingestBrokers.split(','),
      topic: config.ingestTopic,
      group: config.ingestGroup,
      deadLetterTopic: config.ingestDeadLetterTopic,
      sessionTimeoutMs: config.ingestSessionTimeoutMs
    })
    ingestor.start()
  }
  // A checkpoint of everything recovered lets the node drop the log it replayed.
  await s.checkpoint(true)
  send({ t: 'checkpointed' })
}

async function drain (): Promise<void> {
  // Ingestion stops first: its batches taken are finished and committed while every shard serves.
  // Bounded: a Kafka that does not answer must not hold the drain (what is not committed is read
  // again by the next consumer and recognised).
  if (ingestor !== null) {
    const stopping = ingestor
    await withDeadline(15_000, 'ingestion did not stop', async () => await stopping.stop())
      .catch((err) => logger.error({ err }, 'stopping ingestion failed'))
  }
  if (listenSocket !== null) uws.us_listen_socket_close(listenSocket as never)
  listenSocket = null
  resp?.stopListening()
  hot?.stop()
  const deadline = Date.now() + 30_000
  while (shard !== null && !ctx.router.idle && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
  send({ t: 'drained' })
}

async function close (): Promise<void> {
  closeStreams(sockets)
  // Ring mode: release every partition (final checkpoint, holder cleared) so the new owners take them at once.
  if (ring !== null && shard !== null) {
    await shard.own([], ring.self, [], 0).catch((err) => logger.error({ err }, 'releasing partitions at close failed'))
    // Nodes that have not adopted the view without this one yet still send here: what arrives is
    // forwarded to the new owners, and their answers come back this way (a new owner may still be
    // loading). Linger until nothing is in flight and the peer links have been quiet for a moment.
    const deadline = Date.now() + Math.max(config.clusterSessionMs, PARK_MIN_MS) + 1000
    while (Date.now() < deadline && (!ctx.router.idle || Date.now() - ctx.router.lastReceivedAt < 300)) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  ring?.close()
  if (healthTimer !== null) clearInterval(healthTimer)
  threadMetrics.close()
  await shard?.close()
  closeSockets()
  send({ t: 'closed' })
}

/**
 * Closes the listen socket and every connection. A worker thread whose loop still has uWS
 * sockets when it ends makes Node abort the whole process, so every way out passes here.
 */
function closeSockets (): void {
  listenSocket = null
  resp?.closeAll()
  closeApp(app)
}

// An error nothing caught: say so, close the sockets, and let the supervisor stop the node.
process.on('uncaughtException', (err) => {
  logger.fatal({ err }, 'uncaught error in a shard thread')
  closeSockets()
  send({ t: 'failed', stage: 'close', error: asCounterdError(err).toWire() })
})

port.on('message', (msg: ToShard) => {
  const failed = (stage: 'recover' | 'close') => (err: unknown) => {
    const e = asCounterdError(err)
    logger.error({ err }, `shard ${stage} failed`)
    // A stored partition count that differs is the operator's to fix, like a bad setting: exit 2.
    send({ t: 'failed', stage, error: e.toWire(), ...(e.code === 'partitions_mismatch' ? { exitCode: 2 } : {}) })
  }
  switch (msg.t) {
    case 'listen': listen(msg.port, msg.respPort); break
    case 'recover': recover().catch(failed('recover')); break
    case 'serve': serve().catch((err) => logger.error({ err }, 'checkpoint after recovery failed; will retry at the next interval')); break
    case 'drain': void drain(); break
    case 'close': close().catch(failed('close')); break
    case 'abort': closeSockets(); send({ t: 'aborted' }); break
    case 'auth': ctx.auth = msg.table === null ? null : new ApiKeyVerifier(msg.table); break
    case 'ring': void adoptRing(msg.view, msg.self, msg.waitMs); break
  }
})
