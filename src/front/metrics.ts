// The node's metrics, with prom-client. Every shard thread keeps its own registry: histograms it
// observes on its hot paths (HTTP requests, stream acks, commits, cross-shard hops, checkpoints)
// and figures read at scrape time from its row of the status board and its shard's stats.
// The hot-path histograms are counted in typed arrays (HotHistogram: a bucket index, three adds)
// and handed to prom-client only at scrape time: prom-client's own observe() builds a label hash
// string and allocates per call (about 0.4 µs against a few ns; docs/benchmarks.md).
// GET /metrics, on whichever shard gets it, asks every shard for its registry's values and
// merges them into one exposition (counters and histograms summed, node-wide gauges taken once).
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks'
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricValue, type MetricValueWithName } from 'prom-client'
import type { ShardObserver, ShardStats } from '../../actors/shard'
import { OP_NAMES } from '../core/op-codec'
import type { InflightGauge } from '../routing/inflight'
import type { ForwardObserver } from '../routing/router'
import {
  F_HTTP_REQUESTS, F_INCREMENTS_ACKED, F_INGEST_DUPLICATES, F_INGEST_EVENTS, F_INGEST_PARTITIONS, F_RESP_COMMANDS, F_RESP_CONNECTIONS, F_WS_CONNECTIONS,
  F_WS_FRAMES, F_WS_OPS, PHASE_READY, type ShardRow, type StatusBoard
} from './status-board'
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws'

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
const OPS_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 65_536]
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx']

/**
 * One histogram series counted in typed arrays: counts per bucket (not cumulative; the last is
 * +Inf), sum and count. Same bucket rule as prom-client (the first bound ≥ the value).
 */
export class HotHistogram {
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor (readonly bounds: Float64Array) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe (v: number): void {
    const b = this.bounds
    let i = 0
    while (i < b.length && v > b[i]) i++
    this.counts[i]++
    this.sum += v
    this.count++
  }
}

/**
 * A histogram family whose series are HotHistograms: registered with prom-client (name, HELP,
 * TYPE, its place in the exposition) but never observed there; its values are written into the
 * registry's JSON at scrape time, in prom-client's own shape, so the merge across shards and the
 * text exposition treat it like any prom-client histogram.
 */
class HotFamily {
  readonly bounds: Float64Array
  private readonly series: Array<{ labels: Record<string, string>, h: HotHistogram }> = []

  constructor (readonly name: string, help: string, readonly labelNames: string[], buckets: number[], registers: Registry[]) {
    this.bounds = Float64Array.from(buckets)
    // Registered for its HELP and TYPE; a family without labels shows its zero series from the start, as prom-client's does.
    void new Histogram({ name, help, labelNames, buckets, registers })
    if (labelNames.length === 0) this.series.push({ labels: {}, h: new HotHistogram(this.bounds) })
  }

  /** The series of these label values (made once, at install time; not for the hot path). */
  labels (...values: string[]): HotHistogram {
    const labels: Record<string, string> = {}
    this.labelNames.forEach((n, i) => { labels[n] = values[i] })
    const key = JSON.stringify(values)
    const found = this.series.find((s) => JSON.stringify(this.labelNames.map((n) => s.labels[n])) === key)
    if (found !== undefined) return found.h
    const h = new HotHistogram(this.bounds)
    this.series.push({ labels, h })
    return h
  }

  /** prom-client's JSON values of this histogram: series observed at least once (any series without labels). */
  values (): Array<MetricValueWithName<string>> {
    const out: Array<MetricValueWithName<string>> = []
    const bucket = `${this.name}_bucket`
    for (const { labels, h } of this.series) {
      if (h.count === 0 && this.labelNames.length > 0) continue
      let acc = 0
      for (let i = 0; i < this.bounds.length; i++) {
        acc += h.counts[i]
        out.push({ labels: { le: this.bounds[i], ...labels }, value: acc, metricName: bucket })
      }
      out.push({ labels: { le: '+Inf', ...labels }, value: h.count, metricName: bucket })
      out.push({ labels: { ...labels }, value: h.sum, metricName: `${this.name}_sum` })
      out.push({ labels: { ...labels }, value: h.count, metricName: `${this.name}_count` })
    }
    return out
  }
}

/** A response being timed: set when its route handler starts, read when it is answered. */
interface TimedResponse { t0?: number, timer?: RouteTimer }

/** The histogram children of one route, one per status class, made once at install. */
export class RouteTimer {
  constructor (private readonly byClass: HotHistogram[]) {}

  start (res: HttpResponse): void {
    const r = res as unknown as TimedResponse
    r.t0 = performance.now()
    r.timer = this
  }

  done (res: HttpResponse, status: number): void {
    const r = res as unknown as TimedResponse
    if (r.t0 === undefined) return
    this.byClass[Math.min(4, Math.max(0, Math.floor(status / 100) - 1))].observe((performance.now() - r.t0) / 1000)
    r.t0 = undefined
  }
}

/** Observes the answer of a response whose route is timed (replies.ts calls it once per answer). */
export function observeAnswer (res: HttpResponse, status: number): void {
  (res as unknown as TimedResponse).timer?.done(res, status)
}

/** One shard thread's view of the ring, read at scrape time. */
export interface RingStats {
  generation: number
  members: number
  /** partitions this shard serves */
  owned: number
  /** parts waiting here for a moving partition */
  parked: number
  links: number
  linksUp: number
}

export interface ThreadMetricsOptions {
  shard: number
  board: StatusBoard
  row: ShardRow
  inflight: InflightGauge
  /** 'wal' or 'kafka': the log commits go to */
  log: string
  /** 'snapshot' or 'redis': where checkpoints go */
  checkpoints: string
  /** The topic events are ingested from ('' or absent: no ingestion, no ingest metrics). */
  ingestTopic?: string
}

export class ThreadMetrics implements ShardObserver, ForwardObserver {
  readonly registry = new Registry()
  private readonly hot: HotFamily[] = []
  private readonly http: HotFamily
  private readonly streamAck: HotHistogram
  private readonly commitFailures: Counter<'log'>
  private readonly forwardRead: HotHistogram
  private readonly forwardWrite: HotHistogram
  private readonly checkpointSeconds: Histogram<'store'>
  private readonly checkpointFailures: Counter<'store'>
  private readonly commitChild: HotHistogram
  private readonly commitOpsChild: HotHistogram
  private readonly loopDelay: IntervalHistogram
  private readonly commits: Counter
  private readonly durableRecords: Counter
  private stats: ShardStats | null = null
  private statsSource: (() => ShardStats) | null = null
  private ring: (() => RingStats) | null = null

  constructor (private readonly o: ThreadMetricsOptions) {
    const registers = [this.registry]
    const shard = String(o.shard)
    const { board, row, inflight } = o
    const hot = (name: string, help: string, labelNames: string[], buckets: number[]): HotFamily => {
      const f = new HotFamily(name, help, labelNames, buckets, registers)
      this.hot.push(f)
      return f
    }
    this.http = hot('counterd_http_request_duration_seconds', 'HTTP requests from the first byte handled to the answer, by route and status class', ['route', 'status_class'], LATENCY_BUCKETS)
    this.streamAck = hot('counterd_stream_ack_duration_seconds', 'WebSocket stream frames from receipt to their ack (durable or applied per ACK_MODE)', [], LATENCY_BUCKETS).labels()
    const commitSeconds = hot('counterd_commit_duration_seconds', 'Group commits: one log append (write + sync for the WAL, a produce for Kafka)', ['log'], LATENCY_BUCKETS)
    const commitOps = hot('counterd_commit_ops', 'Ops carried by one group commit', ['log'], OPS_BUCKETS)
    this.commitFailures = new Counter({ name: 'counterd_commit_failures_total', help: 'Log appends that failed (retried with the same records)', labelNames: ['log'], registers })
    const forward = hot('counterd_forward_duration_seconds', 'Parts of requests sent to another shard, until its answer came back (writes wait for its commit)', ['kind'], LATENCY_BUCKETS)
    this.checkpointSeconds = new Histogram({ name: 'counterd_checkpoint_duration_seconds', help: 'Checkpoints of a shard\'s partitions, from capture to saved', labelNames: ['store'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers })
    this.checkpointFailures = new Counter({ name: 'counterd_checkpoint_failures_total', help: 'Checkpoints that failed (retried at the next interval)', labelNames: ['store'], registers })
    this.forwardRead = forward.labels('read')
    this.forwardWrite = forward.labels('write')
    this.commitChild = commitSeconds.labels(o.log)
    this.commitOpsChild = commitOps.labels(o.log)
    // Series that exist from the start at 0, so rate() and alerts see them before the first failure.
    this.commitFailures.labels(o.log).inc(0)
    this.checkpointFailures.labels(o.checkpoints).inc(0)

    // Read at scrape time: this shard's row of the board and its shard's stats.
    const counter = (name: string, help: string, read: () => number): void => {
      const c = new Counter({ name, help, registers, collect () { this.reset(); this.inc(read()) } })
      void c
    }
    const gauge = (name: string, help: string, read: () => number, aggregator: 'sum' | 'first' | 'max' = 'sum'): void => {
      const g = new Gauge({ name, help, registers, aggregator, collect () { this.set(read()) } })
      void g
    }
    counter('counterd_http_requests_total', 'HTTP requests handled', () => row.nums[F_HTTP_REQUESTS])
    counter('counterd_ws_frames_total', 'WebSocket stream frames received', () => row.nums[F_WS_FRAMES])
    counter('counterd_ws_ops_total', 'Increments received in stream frames', () => row.nums[F_WS_OPS])
    counter('counterd_increments_acked_total', 'Increments acknowledged (HTTP and stream)', () => row.nums[F_INCREMENTS_ACKED])
    this.commits = new Counter({ name: 'counterd_commits_total', help: 'Group commits (log appends) completed', registers })
    this.durableRecords = new Counter({ name: 'counterd_durable_records_total', help: 'Log records confirmed durable', registers })
    gauge('counterd_ws_connections', 'Open WebSocket stream connections', () => row.nums[F_WS_CONNECTIONS])
    gauge('counterd_resp_connections', 'Open Redis-protocol connections', () => row.nums[F_RESP_CONNECTIONS])
    counter('counterd_resp_commands_total', 'Redis-protocol commands handled', () => row.nums[F_RESP_COMMANDS])
    gauge('counterd_counters', 'Counters held (non-zero)', () => this.stats?.counters ?? 0)
    gauge('counterd_pending_ops', 'Ops applied and not yet handed to the log', () => this.stats?.pendingOps ?? 0)
    gauge('counterd_inflight_ops', 'Write ops accepted by the node and not yet answered', () => inflight.writes, 'first')
    gauge('counterd_inflight_reads', 'Read ops accepted by the node and not yet answered', () => inflight.reads, 'first')
    gauge('counterd_shards', 'Shard threads', () => board.shards, 'first')
    gauge('counterd_ready', '1 when the node serves, 0 while it recovers or drains', () => board.nodePhase === PHASE_READY ? 1 : 0, 'first')
    gauge('counterd_resident_memory_bytes', 'Resident memory of the whole process', () => process.memoryUsage.rss(), 'first')
    gauge('counterd_log_ok', '1 while the log takes appends', () => this.stats === null || this.stats.logError === undefined ? 1 : 0, 'first')
    gauge('counterd_history_pending_rows', 'History rows not yet confirmed by ClickHouse', () => (this.stats?.history?.pendingRows ?? 0) + (this.stats?.history?.unconfirmedRows ?? 0))
    gauge('counterd_history_lag_seconds', 'How long the oldest history row not yet in ClickHouse has waited', () => (this.stats?.history?.lagMs ?? 0) / 1000, 'max')
    counter('counterd_history_dropped_records_total', 'Log records left out of history because its buffer was full', () => this.stats?.history?.droppedRecords ?? 0)

    const byCode = (name: string, help: string, kind: 'http' | 'ws' | 'ingest'): void => {
      const c: Counter<'code'> = new Counter({
        name, help, labelNames: ['code'], registers,
        collect: () => {
          c.reset()
          for (const [code, n] of board.errorsOf(o.shard, kind)) c.labels(code).inc(n)
        }
      })
    }
    byCode('counterd_http_errors_total', 'HTTP requests answered with an error, by code', 'http')
    byCode('counterd_ws_errors_total', 'Stream frames answered with an error (or closed), by code', 'ws')
    const shed: Counter = new Counter({
      name: 'counterd_shed_total', help: 'Requests and frames refused because too much was in flight (overloaded)', registers,
      collect: () => { shed.reset(); shed.inc(board.errorCountOf(o.shard, 'http', 'overloaded') + board.errorCountOf(o.shard, 'ws', 'overloaded')) }
    })
    const ops: Counter<'kind'> = new Counter({
      name: 'counterd_ops_total', help: 'Ops applied or answered by the shards, by kind', labelNames: ['kind'], registers,
      collect: () => {
        ops.reset()
        const byKind = this.stats?.opsByKind
        if (byKind !== undefined) for (let k = 1; k < OP_NAMES.length; k++) if (byKind[k] > 0) ops.labels(OP_NAMES[k]).inc(byKind[k])
      }
    })
    const age: Gauge<'shard'> = new Gauge({
      name: 'counterd_checkpoint_age_seconds', help: 'Time since the shard last saved a checkpoint (since start before the first)', labelNames: ['shard'], registers,
      collect: () => { const at = this.stats?.lastCheckpointAt ?? 0; age.labels(shard).set(at === 0 ? process.uptime() : (Date.now() - at) / 1000) }
    })
    const topic = o.ingestTopic ?? ''
    if (topic !== '') {
      // Event ingestion (src/front/ingest.ts), from this shard's row: its consumer writes them.
      counter('counterd_ingest_events_total', 'Ingested events applied and durable (a redelivery is not counted again)', () => row.nums[F_INGEST_EVENTS])
      counter('counterd_ingest_duplicates_total', 'Ingested events recognised as already applied (redeliveries)', () => row.nums[F_INGEST_DUPLICATES])
      byCode('counterd_ingest_dead_letters_total', 'Ingested events sent to the dead-letter topic, by reason', 'ingest')
      gauge('counterd_ingest_consumers', 'Ingest consumers this node runs (group members)', () => row.nums[F_INGEST_PARTITIONS] >= 0 ? 1 : 0)
      gauge('counterd_ingest_consumers_assigned', 'Ingest consumers holding at least one partition', () => row.nums[F_INGEST_PARTITIONS] > 0 ? 1 : 0)
      // One series per partition; a partition is consumed by one shard, so summing shards is exact.
      const lagGauge: Gauge<'topic' | 'partition'> = new Gauge({
        name: 'counterd_ingest_lag_messages', help: 'Messages behind the high watermark, per partition of the ingest topic this node consumes', labelNames: ['topic', 'partition'], registers,
        collect: () => {
          lagGauge.reset()
          for (const [p, n] of board.ingestLagOf(o.shard)) lagGauge.labels(topic, String(p)).set(n)
        }
      })
    }
    // Event-loop delay per shard thread, over the time since the previous scrape.
    this.loopDelay = monitorEventLoopDelay({ resolution: 10 })
    this.loopDelay.enable()
    const lag: Gauge<'shard' | 'quantile'> = new Gauge({
      name: 'counterd_eventloop_delay_seconds', help: 'Event-loop delay of each shard thread since the previous scrape', labelNames: ['shard', 'quantile'], registers,
      collect: () => {
        const h = this.loopDelay
        lag.labels(shard, '0.5').set(h.count > 0 ? h.percentile(50) / 1e9 : 0)
        lag.labels(shard, '0.99').set(h.count > 0 ? h.percentile(99) / 1e9 : 0)
        lag.labels(shard, '1').set(h.count > 0 ? h.max / 1e9 : 0)
        h.reset()
      }
    })
    // The ring (cluster storage); an embedded node reports a ring of one at generation 0.
    const ring = (): RingStats => this.ring?.() ?? { generation: 0, members: 1, owned: 0, parked: 0, linksUp: 0, links: 0 }
    gauge('counterd_ring_generation', 'Generation of the ring view this node routes by', () => ring().generation, 'max')
    gauge('counterd_ring_members', 'Nodes in the ring view this node routes by', () => ring().members, 'max')
    gauge('counterd_partitions_owned', 'Partitions this node serves (loaded and taking ops)', () => ring().owned)
    gauge('counterd_parked_parts', 'Parts of requests waiting for a partition that is moving', () => ring().parked)
    gauge('counterd_peer_links', 'Peer links this node opened to other nodes\' shards', () => ring().links)
    gauge('counterd_peer_links_up', 'Of those, connected', () => ring().linksUp)
    const heap: Gauge<'shard'> = new Gauge({
      name: 'counterd_heap_used_bytes', help: 'V8 heap used by each shard thread', labelNames: ['shard'], registers,
      collect: () => { heap.labels(shard).set(process.memoryUsage().heapUsed) }
    })
  }

  /** Where the ring's figures come from (ring mode, or the shard's partitions when embedded). */
  readRingFrom (source: () => RingStats): void {
    this.ring = source
  }

  /** Where the shard's figures come from once it exists; read afresh at every scrape. */
  readStatsFrom (source: () => ShardStats): void {
    this.statsSource = source
  }

  /** The timer of one HTTP route: made once when the route is installed. */
  route (label: string): RouteTimer {
    return new RouteTimer(STATUS_CLASSES.map(c => this.http.labels(label, c)))
  }

  streamAcked (t0: number): void {
    this.streamAck.observe((performance.now() - t0) / 1000)
  }

  committed (seconds: number, ops: number, records: number): void {
    this.commits.inc()
    this.durableRecords.inc(records)
    this.commitChild.observe(seconds)
    this.commitOpsChild.observe(ops)
  }

  failed (): void {
    this.commitFailures.labels(this.o.log).inc()
  }

  checkpointed (seconds: number, ok: boolean): void {
    this.checkpointSeconds.labels(this.o.checkpoints).observe(seconds)
    if (!ok) this.checkpointFailures.labels(this.o.checkpoints).inc()
  }

  forwarded (seconds: number, read: boolean): void {
    (read ? this.forwardRead : this.forwardWrite).observe(seconds)
  }

  /** This thread's values, to be merged with the other shards' (they cross the rings as JSON). */
  async snapshot (): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    this.stats = this.statsSource?.() ?? null
    const all = await this.registry.getMetricsAsJSON() as MetricObjectWithValues<MetricValue<string>>[]
    for (const f of this.hot) {
      const m = all.find((x) => x.name === f.name)
      if (m !== undefined) m.values = f.values()
    }
    return all
  }

  close (): void {
    this.loopDelay.disable()
  }
}

/** Every shard's values merged into one Prometheus text exposition. */
export async function renderMetrics (perShard: Array<MetricObjectWithValues<MetricValue<string>>[]>): Promise<string> {
  return await AggregatorRegistry.aggregate(perShard).metrics()
}

/**
 * The app as the route installers see it: every get/post/del/any handler is timed from its start
 * to the answer replies.ts gives, labelled "METHOD pattern". WebSocket routes pass through.
 */
export function timeRoutes (app: TemplatedApp, metrics: ThreadMetrics): TemplatedApp {
  const methods: Record<string, string> = { get: 'GET', post: 'POST', del: 'DELETE', any: 'ANY' }
  const timed: TemplatedApp = new Proxy(app, {
    get (target, prop, receiver) {
      const method = typeof prop === 'string' ? methods[prop] : undefined
      if (method === undefined) {
        const v = Reflect.get(target, prop, receiver)
        return typeof v === 'function' ? v.bind(target) : v
      }
      return (pattern: string, handler: (res: HttpResponse, req: HttpRequest) => void) => {
        const timer = metrics.route(`${method} ${pattern}`)
        ;(target[prop as 'get'])(pattern, (res: HttpResponse, req: HttpRequest) => {
          timer.start(res)
          handler(res, req)
        })
        return timed
      }
    }
  })
  return timed
}
