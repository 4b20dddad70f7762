// One shard: the partitions a thread owns (p mod shards = index), their state, and what changes
// it. Ops arrive as encoded units (src/core/op-codec.ts) — straight from this thread's front or
// from another shard's ring, the shard cannot tell — and are applied in arrival order. The shard
// group-commits what it applied to its own log and checkpoints its partitions; everything here is
// synchronous but storage I/O.
import { performance } from 'node:perf_hooks'
import type { Logger } from 'pino'
import type { Config } from '../config/loader'
import { CounterdError } from '../src/core/errors'
import { MAX_HISTORY_POINTS, STEP_SECONDS, type HistoryPoint, type HistoryStep } from '../src/core/history'
import { baseOfWaysKey, hotNames, mergingKeyOf, waysKeyOf } from '../src/core/hot-keys'
import { fnv1a32 } from '../src/core/keys'
import { streamSeen } from '../src/core/stream-dedup'
import {
  OP_ADD_ACTOR, OP_GET, OP_GET_PART, OP_HAS_LIKED, OP_HEADER_BYTES, OP_INCR, OP_INCR_ACTOR, OP_LIKE, OP_LIKE_COUNT, OP_QUOTA_PEEK, OP_QUOTA_TAKE,
  OP_RATE, OP_RESET, OP_UNIQUE, OP_UNLIKE, opSize
} from '../src/core/op-codec'
import type { Checkpoint, DeltaRecord } from '../src/core/records'
import type { HistoryStatus } from '../src/storage/clickhouse-history'
import type { Storage } from '../src/storage/open-storage'
import type { ReplayStart } from '../src/storage/types'
import { GroupCommit, type CommitObserver, type DurableWaiter } from './group-commit'
import { PartitionState } from './partition-state'
import { RateLimiter } from './rate-limit'

/** What applying a unit gave: a value per op (when asked), how many ops were refused, resends. */
export class UnitResult {
  values = new Float64Array(1024)
  refused = 0
  dup = false // at least one partition had already applied this unit (a resend): nothing applied there

  prepare (nOps: number): void {
    if (this.values.length < nOps) this.values = new Float64Array(Math.max(nOps, this.values.length * 2))
    this.refused = 0
    this.dup = false
  }
}

export interface RecoverStats {
  partitions: number
  counters: number
  records: number
  ms: number
}

export interface ShardStats {
  counters: number
  likes: number
  pendingOps: number
  durableRecords: number
  commits: number
  /** ops applied or answered, by op kind (index = kind, names in OP_NAMES) */
  opsByKind: Float64Array
  /** when the last checkpoint was saved (ms since the epoch), 0 before the first */
  lastCheckpointAt: number
  logError?: string
  history?: HistoryStatus
}

/** Told of what the node's metrics record from the shard: commits and checkpoints. */
export interface ShardObserver extends CommitObserver {
  checkpointed: (seconds: number, ok: boolean) => void
}

export interface ShardOptions {
  index: number
  shards: number
  config: Config
  storage: Storage
  logger: Logger
  observer?: ShardObserver
  /**
   * Ring mode: the shard starts with no partition and is told which to own (own()); ops for a
   * partition it does not serve are refused with `partition_moving`. Else it owns p mod shards.
   */
  dynamic?: boolean
  /** The log refused an append: a newer owner claimed one of this shard's partitions (GroupCommitOptions.onFenced). */
  onFenced?: (err: CounterdError) => void
}

/** A split counter homed on a shard (src/core/hot-keys.ts). */
export interface HotSplit {
  key: string
  ways: number
  merging: boolean
}

/** What one change of ownership did (own()). */
export interface OwnershipChange {
  acquired: number[]
  released: number[]
  records: number
  ms: number
}

export class Shard {
  readonly index: number
  readonly partitions: number[] = [] // owned, ascending
  readonly commit: GroupCommit
  readonly limiter: RateLimiter
  private readonly states: Array<PartitionState | undefined>
  private readonly config: Config
  private readonly observer: ShardObserver | undefined
  private readonly opsByKind = new Float64Array(16)
  private lastCheckpointAt = 0
  private readonly storage: Storage
  private readonly logger: Logger
  // Per partition, for the unit being applied: whether it was seen in this unit, was a resend,
  // and the value to answer a resend with (or the last value applied, for Idempotency-Keys).
  private readonly unitMark: Int32Array
  private readonly unitDup: Uint8Array
  private readonly unitValue: Float64Array
  private readonly unitParts: number[] = []
  private unitSerial = 0
  private checkpointing: Promise<void> | null = null
  private checkpointTimer: NodeJS.Timeout | null = null
  readonly dynamic: boolean
  /** Ring mode: called when partitions start being served (acquired) or stop (released). */
  onOwnership: (() => void) | null = null
  private readonly serving: Uint8Array // ring mode: 1 = partition loaded and taking ops
  private owning: Promise<unknown> = Promise.resolve() // ownership changes, one at a time
  private ownSerial = 0 // own() calls so far: a retrying change gives up once a newer one is queued
  private readonly historyMinutes: number
  private readonly homedSplits = new Map<string, HotSplit>() // split counters whose home partition is here
  private readonly hotHomes: Uint16Array // per partition: how many of them it homes

  constructor (o: ShardOptions) {
    const { config } = o
    // Without ClickHouse each partition keeps its own minutes, in its checkpoints (snapshot files or
    // Redis) and rebuilt from the log records replayed after them, so they survive a crash and move
    // with the partition in a ring.
    const historyMinutes = o.storage.history === null ? config.historyRetentionMinutes : 0
    this.index = o.index
    this.config = config
    this.storage = o.storage
    this.logger = o.logger
    this.states = new Array(config.partitions).fill(undefined)
    this.historyMinutes = historyMinutes
    this.dynamic = o.dynamic === true
    this.serving = new Uint8Array(config.partitions)
    this.hotHomes = new Uint16Array(config.partitions)
    if (!this.dynamic) {
      for (let p = o.index; p < config.partitions; p += o.shards) {
        this.partitions.push(p)
        this.states[p] = this.newState(p, o.storage.epoch)
      }
    }
    this.unitMark = new Int32Array(config.partitions)
    this.unitDup = new Uint8Array(config.partitions)
    this.unitValue = new Float64Array(config.partitions)
    this.limiter = new RateLimiter(config.likesPerMinute, config.dedupWindowMs, config.dedupMaxEntries)
    const history = o.storage.history
    this.commit = new GroupCommit({
      log: o.storage.log,
      seal: (now, out) => { for (const p of this.partitions) (this.states[p] as PartitionState).seal(now, out) },
      onDurable: history === null ? undefined : (records) => { for (const r of records) history.add(r) },
      maxBatchOps: config.maxBatchOps,
      flushIntervalMs: config.flushIntervalMs,
      logger: o.logger,
      observer: o.observer,
      onFenced: o.onFenced
    })
    this.observer = o.observer
  }

  private newState (p: number, epoch: number): PartitionState {
    const { config } = this
    return new PartitionState({
      partition: p,
      epoch,
      replica: config.replicaId,
      dedupWindowMs: config.dedupWindowMs,
      dedupMaxEntries: config.dedupMaxEntries,
      trackDirty: this.storage.checkpoints.incremental,
      sampleSize: config.sampleSize,
      historyMinutes: this.historyMinutes
    })
  }

  /**
   * Ring mode: refuses the whole unit (before anything is applied) when one of its ops is for a
   * partition this shard does not serve now: it is still loading here, or has moved away.
   */
  private checkServing (src: Buffer, o: number, nOps: number, shardLevel: boolean): void {
    for (let i = 0; i < nOps; i++) {
      const kind = src[o]
      if (!(shardLevel && (kind === OP_QUOTA_TAKE || kind === OP_QUOTA_PEEK))) {
        const p = src.readUInt32LE(o + 2) % this.config.partitions
        if (this.serving[p] !== 1) throw new CounterdError('partition_moving', `partition ${p} is not served by this node now (it is moving); retry shortly`)
      }
      o += opSize(src, o)
    }
  }

  private stateOf (p: number): PartitionState {
    const s = this.states[p]
    if (s === undefined) {
      if (this.dynamic) throw new CounterdError('partition_moving', `partition ${p} is not served by this node now (it is moving); retry shortly`)
      throw new CounterdError('internal', `partition ${p} is not owned by shard ${this.index}`)
    }
    return s
  }

  /**
   * Whether an ack must wait for the log: always with ack=durable; with ack=applied once more ops
   * than the in-flight bound are applied but not logged (a log outage), so that the fronts shed
   * new work instead of memory growing without bound.
   */
  get holdsAcks (): boolean {
    return this.config.ackMode === 'durable' || this.commit.unlogged > this.config.maxInflightOps
  }

  /** Releases `w` once everything applied so far is durable. */
  whenDurable (w: DurableWaiter): void {
    this.commit.waitDurable(w)
  }

  /**
   * Applies a unit of `nOps` write ops encoded at src[o…]; returns the offset after them. `tag`:
   * a stream clientId (with `seq` ≥ 0) or key + '\n' + Idempotency-Key (seq −1): a partition that
   * has already applied the tag (a resend) applies nothing and answers the value it recorded.
   */
  applyWrites (src: Buffer, o: number, nOps: number, tag: string | null, seq: number, wantValues: boolean, out: UnitResult): number {
    if (this.dynamic) this.checkServing(src, o, nOps, false)
    out.prepare(nOps)
    const values = out.values
    const now = Date.now()
    const serial = ++this.unitSerial
    const parts = this.unitParts
    parts.length = 0
    let applied = 0
    for (let i = 0; i < nOps; i++) {
      const len = src[o + 1]
      const h = src.readUInt32LE(o + 2)
      const p = h % this.config.partitions
      const s = this.stateOf(p)
      if (tag !== null && this.unitMark[p] !== serial) {
        this.unitMark[p] = serial
        const seen = seq >= 0 ? s.streams.get(tag, now) : s.idempotency.get(tag, now)
        const dup = seq >= 0 ? streamSeen(seen, seq) : seen !== undefined
        this.unitDup[p] = dup ? 1 : 0
        this.unitValue[p] = seen ?? NaN
        if (dup) out.dup = true
        else parts.push(p)
      }
      if (tag !== null && this.unitDup[p] === 1) {
        if (wantValues) values[i] = this.unitValue[p]
        o += opSize(src, o)
        continue
      }
      const kind = src[o]
      this.opsByKind[kind]++
      const keyOff = o + OP_HEADER_BYTES
      o = keyOff + len
      let v: number
      if (kind === OP_INCR) {
        v = s.increment(src, keyOff, len, h, src.readDoubleLE(o), this.commit.sealedInto)
        // A split counter's home answers value + 0.5: the reader adds the other parts (src/core/hot-keys.ts).
        if (wantValues && this.hotHomes[p] !== 0 && Math.abs(v) < 2 ** 52 && this.isSplitHome(src, keyOff, len)) v += 0.5
        o += 8
      } else if (kind === OP_RESET) {
        v = s.reset(src, keyOff, len, h, this.commit.sealedInto)
      } else if (kind === OP_INCR_ACTOR) {
        const argLen = src[o + 8]
        v = s.incrementWithActor(src, keyOff, len, h, src.readDoubleLE(o), src.toString('latin1', o + 9, o + 9 + argLen), this.commit.sealedInto)
        o += 9 + argLen
      } else if (kind === OP_ADD_ACTOR) {
        const argLen = src[o]
        v = s.addActor(src.toString('latin1', keyOff, keyOff + len), src.toString('latin1', o + 1, o + 1 + argLen))
        o += 1 + argLen
      } else if (kind === OP_LIKE || kind === OP_UNLIKE) {
        const item = src.toString('latin1', keyOff, keyOff + len)
        const user = src.toString('latin1', o + 1, o + 1 + src[o])
        v = kind === OP_LIKE ? s.like(item, user) : s.unlike(item, user)
        o += 1 + src[o]
      } else {
        throw new CounterdError('internal', `op kind ${kind} is not a write`)
      }
      if (Number.isNaN(v)) out.refused++
      if (wantValues) values[i] = v
      if (tag !== null) this.unitValue[p] = v
      applied++
    }
    if (tag !== null) {
      for (const p of parts) {
        const s = this.stateOf(p)
        if (seq >= 0) s.recordStream(tag, seq, now)
        else if (!Number.isNaN(this.unitValue[p])) s.recordIdempotent(tag, this.unitValue[p], now)
      }
    }
    if (applied > 0) this.commit.applied(applied)
    return o
  }

  /** Answers `nOps` read ops encoded at src[o…] into out.values; returns the offset after them. */
  applyReads (src: Buffer, o: number, nOps: number, out: UnitResult): number {
    if (this.dynamic) this.checkServing(src, o, nOps, true)
    out.prepare(nOps)
    const values = out.values
    const now = Date.now()
    for (let i = 0; i < nOps; i++) {
      const kind = src[o]
      this.opsByKind[kind]++
      const len = src[o + 1]
      const h = src.readUInt32LE(o + 2)
      const keyOff = o + OP_HEADER_BYTES
      if (kind === OP_QUOTA_TAKE || kind === OP_QUOTA_PEEK) {
        // Shard-level state: buckets live with the shard that owns the user's hash.
        const user = src.toString('latin1', keyOff, keyOff + len)
        if (kind === OP_QUOTA_PEEK) values[i] = this.limiter.quota(user, now).remaining
        else values[i] = this.limiter.take(user, src.toString('latin1', keyOff + len + 1, keyOff + len + 1 + src[keyOff + len]), now)
      } else {
        const s = this.stateOf(h % this.config.partitions)
        if (kind === OP_GET) {
          const v = s.get(src, keyOff, len, h)
          values[i] = this.hotHomes[h % this.config.partitions] === 0 ? v : this.readAnswer(src, keyOff, len, v)
        } else if (kind === OP_GET_PART) values[i] = s.get(src, keyOff, len, h)
        else if (kind === OP_RATE) values[i] = s.rate(src, keyOff, len, h, now)
        else {
          const key = src.toString('latin1', keyOff, keyOff + len)
          if (kind === OP_LIKE_COUNT) values[i] = s.features.likes.count(key)
          else if (kind === OP_UNIQUE) values[i] = s.features.unique(key)
          else if (kind === OP_HAS_LIKED) values[i] = s.features.likes.hasLiked(key, src.toString('latin1', keyOff + len + 1, keyOff + len + 1 + src[keyOff + len])) ? 1 : 0
          else throw new CounterdError('internal', `op kind ${kind} is not a read`)
        }
      }
      o += opSize(src, o)
    }
    return o
  }

  // ---- requests that are not plain ops (rare: answered as objects) ----

  sample (key: string, n: number): string[] {
    return this.stateOf(fnv1a32(key) % this.config.partitions).features.sample(key, n)
  }

  replicas (key: string): Array<{ replica: string, p: number, n: number }> {
    const buf = Buffer.from(key, 'latin1')
    const h = fnv1a32(key)
    return this.stateOf(h % this.config.partitions).replicas(buf, 0, buf.length, h)
  }

  /** The k counters (of `type`, or any) of namespace `ns` ('' none) of this shard rising fastest; keys as stored. */
  top (type: string | null, k: number, ns = ''): Array<{ key: string, rate: number }> {
    const now = Date.now()
    const all: Array<{ key: string, rate: number }> = []
    for (const p of this.partitions) all.push(...this.stateOf(p).top(type, k, now, ns))
    return all.sort((a, b) => b.rate - a.rate).slice(0, k)
  }

  /** This replica's totals of every counter of the shard, as records another region can merge. */
  exportTotals (): DeltaRecord[] {
    const now = Date.now()
    return this.partitions.map((p) => this.stateOf(p).exportTotals(now))
  }

  /** Merges other replicas' records (of this shard's partitions); resolves with counters changed, once durable. */
  async merge (records: DeltaRecord[]): Promise<number> {
    let changed = 0
    for (const r of records) {
      if (r.replica === undefined || r.ps === undefined || r.ns === undefined) continue
      changed += this.stateOf(r.partition).mergeReplica(r.replica, r.keys, r.ps, r.ns)
    }
    await this.commit.barrier()
    return changed
  }

  /** ClickHouse answers when configured; else the partition's own minutes (the last HISTORY_RETENTION_MINUTES). */
  async history (key: string, from: number, to: number, step: HistoryStep): Promise<HistoryPoint[]> {
    if (this.storage.history !== null) return await this.storage.history.query(key, from, to, step)
    const h = fnv1a32(key)
    const s = this.stateOf(h % this.config.partitions)
    if (s.historyMinutes === 0) {
      throw new CounterdError('not_found', 'history is off on this node (HISTORY_RETENTION_MINUTES=0); set it, or CLICKHOUSE_URL')
    }
    if (!Object.prototype.hasOwnProperty.call(STEP_SECONDS, step)) throw new CounterdError('invalid_argument', 'step must be one of minute, hour, day')
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to <= from) {
      throw new CounterdError('invalid_argument', 'from and to must be integers (ms since the Unix epoch) with 0 <= from < to')
    }
    if ((to - from) / 1000 / STEP_SECONDS[step] > MAX_HISTORY_POINTS) throw new CounterdError('invalid_argument', `the range holds more than ${MAX_HISTORY_POINTS} ${step}s`)
    const buf = Buffer.from(key, 'latin1')
    return s.history(buf, 0, buf.length, h, from, to, step, Date.now())
  }

  // ---- hot counters: split state and the steps of a merge (src/core/hot-keys.ts) ----
  // Each step changes counters of one partition only, in one synchronous turn (so in one log
  // record), and answers once it is durable: a crash between steps loses nothing (see hot-keys.ts).

  /** The split counters homed on this shard. */
  hotSplits (): HotSplit[] {
    return [...this.homedSplits.values()]
  }

  /** The counters rising fastest in this shard's partitions (no parts of split ones), with their values. */
  hotCandidates (k: number): Array<{ key: string, value: number }> {
    const now = Date.now()
    const out: Array<{ key: string, value: number }> = []
    for (const p of this.partitions) {
      if (this.dynamic && this.serving[p] !== 1) continue
      const s = this.stateOf(p)
      for (const t of s.top(null, k, now)) {
        if (!t.key.includes('~') && !this.homedSplits.has(t.key)) out.push({ key: t.key, value: s.valueOf(t.key) })
      }
    }
    return out
  }

  /** Sets a counter's split state at its home partition: `ways` 0 = not split. */
  async hotSet (key: string, ways: number, merging: boolean): Promise<void> {
    const p = fnv1a32(key) % this.config.partitions
    const s = this.servedState(p)
    const changed = this.setCounter(s, waysKeyOf(key, this.config.partitions), ways) + this.setCounter(s, mergingKeyOf(key, this.config.partitions), merging ? 1 : 0)
    if (changed > 0) this.commit.applied(changed)
    this.setSplit(key, ways === 0 ? null : { key, ways, merging })
    await this.commit.barrier()
  }

  /** Merge step at a sub-counter's partition: moves its value into its drained marker. */
  async hotDrain (key: string, ways: number, j: number): Promise<{ drained: number, moved: number }> {
    const n = hotNames(key, ways, this.config.partitions)
    const s = this.servedState(n.subPartitions[j])
    const v = s.valueOf(n.subs[j])
    if (v !== 0) {
      this.addCounter(s, n.subs[j], -v)
      this.addCounter(s, n.drained[j], v)
      this.commit.applied(2)
    }
    await this.commit.barrier()
    return { drained: s.valueOf(n.drained[j]), moved: v }
  }

  /** Merge step at home: adds what sub j drained since the last absorb to the home counter. */
  async hotAbsorb (key: string, ways: number, j: number, drained: number): Promise<void> {
    const n = hotNames(key, ways, this.config.partitions)
    const s = this.servedState(n.partition)
    const diff = drained - s.valueOf(n.absorbed[j])
    if (diff !== 0) {
      this.addCounter(s, key, diff)
      this.addCounter(s, n.absorbed[j], diff)
      this.commit.applied(2)
    }
    await this.commit.barrier()
  }

  /**
   * OP_GET of a counter homed in a partition with split counters: a split one answers its ways +
   * 0.5 (no counter value is fractional), telling the reader to sum its parts instead.
   */
  private readAnswer (src: Buffer, keyOff: number, len: number, v: number): number {
    const split = this.homedSplits.get(src.toString('latin1', keyOff, keyOff + len))
    return split === undefined ? v : split.ways + 0.5
  }

  private isSplitHome (src: Buffer, keyOff: number, len: number): boolean {
    return this.homedSplits.has(src.toString('latin1', keyOff, keyOff + len))
  }

  private setSplit (key: string, split: HotSplit | null): void {
    const p = fnv1a32(key) % this.config.partitions
    const had = this.homedSplits.has(key)
    if (split === null) {
      if (had) this.hotHomes[p]--
      this.homedSplits.delete(key)
    } else {
      if (!had) this.hotHomes[p]++
      this.homedSplits.set(key, split)
    }
  }

  private servedState (p: number): PartitionState {
    if (this.dynamic && this.serving[p] !== 1) throw new CounterdError('partition_moving', `partition ${p} is not served by this node now (it is moving); retry shortly`)
    return this.stateOf(p)
  }

  private addCounter (s: PartitionState, key: string, delta: number): void {
    const buf = Buffer.from(key, 'latin1')
    if (Number.isNaN(s.increment(buf, 0, buf.length, fnv1a32(key), delta, this.commit.sealedInto))) {
      throw new CounterdError('value_out_of_range', `${key} would leave ±(2^53−1)`)
    }
  }

  /** Sets a counter to `value` (logged as the delta); returns 1 if it changed. */
  private setCounter (s: PartitionState, key: string, value: number): number {
    const cur = s.valueOf(key)
    if (cur === value) return 0
    this.addCounter(s, key, value - cur)
    return 1
  }

  /** Finds the split counters homed in `ps` (after a load: their state is in their markers). */
  private findSplits (ps: readonly number[]): void {
    for (const p of ps) {
      const s = this.stateOf(p)
      for (const [marker, ways] of s.keysWith('~w~')) {
        const key = baseOfWaysKey(marker)
        if (key === null || ways <= 0) continue
        this.setSplit(key, { key, ways, merging: s.valueOf(mergingKeyOf(key, this.config.partitions)) === 1 })
      }
    }
  }

  stats (): ShardStats {
    let counters = 0
    let likes = 0
    for (const p of this.partitions) {
      const s = this.stateOf(p)
      counters += s.nonZero
      likes += s.features.likes.size
    }
    const logError = this.commit.logError ?? this.storage.failing()
    const out: ShardStats = {
      counters, likes, pendingOps: this.commit.pendingOps, durableRecords: this.commit.durableRecords, commits: this.commit.commits, opsByKind: this.opsByKind, lastCheckpointAt: this.lastCheckpointAt
    }
    if (logError !== undefined) out.logError = logError
    const history = this.storage.history?.status()
    if (history !== undefined) out.history = history
    return out
  }

  // ---- recovery and checkpoints ----

  /** Loads every partition's checkpoint and replays the log after it. */
  async recover (): Promise<RecoverStats> {
    const started = Date.now()
    const records = await this.load(this.partitions)
    let counters = 0
    for (const p of this.partitions) counters += this.stateOf(p).nonZero
    return { partitions: this.partitions.length, counters, records, ms: Date.now() - started }
  }

  /** Loads the checkpoints of `ps` (states already made) and replays the log after them; returns records replayed. */
  private async load (ps: readonly number[]): Promise<number> {
    const { checkpoints, log, history } = this.storage
    const from = new Map<number, ReplayStart>()
    for (const p of ps) {
      const cp = await checkpoints.load(p)
      if (cp === null) continue
      this.stateOf(p).load(cp)
      from.set(p, { seq: cp.seq, logOffset: cp.logOffset })
    }
    let records = 0
    if (ps.length === 0) return 0
    await log.replay(ps, (r) => {
      history?.add(r)
      if (this.stateOf(r.partition).replay(r)) records++
    }, from)
    this.findSplits(ps)
    return records
  }

  /**
   * Ring mode: from now on this shard owns exactly `want`. Partitions it has and is no longer
   * given are released first (no new ops; what was applied is committed; a full checkpoint; the
   * holder mark cleared), then new ones are acquired: once their previous holder released them
   * (or is not in `members`, the ids that may still hold partitions: a crash), a higher epoch is
   * claimed (fencing the previous owner), then
   * the checkpoint is loaded and the log after it replayed. Changes run one at a time.
   */
  async own (want: readonly number[], self: string, members: readonly string[], waitMs: number): Promise<OwnershipChange> {
    const serial = ++this.ownSerial
    const run = this.owning.catch(() => {}).then(async () => await this.changeOwnership(want, self, members, waitMs, serial))
    this.owning = run
    return await run
  }

  private async changeOwnership (want: readonly number[], self: string, members: readonly string[], waitMs: number, serial: number): Promise<OwnershipChange> {
    const started = Date.now()
    const wanted = new Set(want)
    const released = this.partitions.filter((p) => !wanted.has(p))
    const acquired = want.filter((p) => this.states[p] === undefined)
    if (released.length > 0) await this.release(released)
    let records = 0
    // Acquiring needs Redis and Kafka: a failure that may pass (an outage) is retried until it
    // works or a newer change of ownership supersedes this one; meanwhile their ops wait (parked).
    for (let delay = 250; acquired.length > 0; delay = Math.min(delay * 2, 5000)) {
      try {
        records = await this.acquire(acquired, self, members, waitMs)
        break
      } catch (err) {
        const e = err instanceof CounterdError ? err : null
        if (e === null || !e.retriable || serial !== this.ownSerial) throw err
        this.logger.warn({ err, partitions: acquired }, 'acquiring partitions failed; retrying')
        await new Promise((resolve) => setTimeout(resolve, delay))
        if (serial !== this.ownSerial) throw err
      }
    }
    return { acquired, released, records, ms: Date.now() - started }
  }

  private async release (ps: readonly number[]): Promise<void> {
    for (const p of ps) this.serving[p] = 0
    try {
      await this.checkpoint(true, ps)
    } catch (err) {
      // Fenced (a new owner already claimed them) or the store is down: the new owner replays the
      // log, which holds everything this shard acknowledged.
      this.logger.warn({ err, partitions: ps }, 'final checkpoint of released partitions failed; the new owner replays the log')
    }
    for (const p of ps) {
      this.states[p] = undefined
      this.partitions.splice(this.partitions.indexOf(p), 1)
    }
    for (const k of [...this.homedSplits.keys()]) if (ps.includes(fnv1a32(k) % this.config.partitions)) this.setSplit(k, null)
    await this.storage.checkpoints.setHolder?.(ps, null).catch((err: unknown) => this.logger.warn({ err }, 'clearing the holder of released partitions failed'))
    this.onOwnership?.() // what arrived during the release goes on to the new owner
  }

  private async acquire (ps: readonly number[], self: string, members: readonly string[], waitMs: number): Promise<number> {
    const cps = this.storage.checkpoints
    if (cps.claimEpoch === undefined || cps.holders === undefined || cps.setHolder === undefined) {
      throw new CounterdError('internal', 'ring mode needs a checkpoint store with epochs and holders (Redis)')
    }
    // A planned move: the previous holder is still a member and releases soon. A crash: it left
    // the ring, and its partitions are taken at once. Past waitMs the move goes ahead anyway (a
    // holder that neither releases nor leaves is fenced by the higher epoch).
    const deadline = Date.now() + waitMs
    for (;;) {
      const holders = await cps.holders(ps)
      const busy = ps.filter((_, i) => holders[i] !== null && holders[i] !== self && members.includes(holders[i] as string))
      if (busy.length === 0) break
      if (Date.now() > deadline) {
        this.logger.warn({ partitions: busy }, 'previous holders did not release in time; taking the partitions over (they are fenced)')
        break
      }
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    const epoch = await cps.claimEpoch(ps, Math.max(1, this.storage.epoch))
    await cps.setHolder(ps, self)
    for (const p of ps) this.states[p] = this.newState(p, epoch)
    let records: number
    try {
      records = await this.load(ps)
    } catch (err) {
      for (const p of ps) this.states[p] = undefined
      throw err
    }
    for (const p of ps) {
      this.partitions.push(p)
      this.serving[p] = 1
    }
    this.partitions.sort((a, b) => a - b)
    this.onOwnership?.() // at once, before any newer op: what waited for these partitions keeps its order
    return records
  }

  /** Saves a checkpoint of every partition, or of `only` (`full`: all counters, not only those changed). */
  async checkpoint (full: boolean, only?: readonly number[]): Promise<void> {
    while (this.checkpointing !== null) await this.checkpointing.catch(() => {})
    // Seal first: then each partition's in-memory state is exactly its state after record `seq`.
    this.commit.seal()
    const now = Date.now()
    const incremental = this.storage.checkpoints.incremental
    const captured: Checkpoint[] = []
    const upTo = new Map<number, number>()
    for (const p of only ?? this.partitions) {
      const s = this.stateOf(p)
      captured.push(s.capture(full || !incremental, now))
      upTo.set(p, s.seq)
    }
    const started = performance.now()
    this.checkpointing = (async () => {
      await this.commit.barrier() // a checkpoint may be saved only once the log holds all it includes
      // The replay start a checkpoint records also covers what ClickHouse history has not stored yet.
      const { history, log } = this.storage
      for (const cp of captured) {
        const replayFrom = history === null ? cp.seq : Math.min(cp.seq, history.storedSeq(cp.partition) ?? 0)
        cp.logOffset = log.positionOf?.(cp.partition, replayFrom)
      }
      await this.storage.checkpoints.save(captured)
      await log.checkpointed(upTo)
      this.lastCheckpointAt = Date.now()
      this.observer?.checkpointed((performance.now() - started) / 1000, true)
    })().catch((err: unknown) => {
      this.observer?.checkpointed((performance.now() - started) / 1000, false)
      throw err
    }).finally(() => { this.checkpointing = null })
    await this.checkpointing
  }

  startCheckpoints (): void {
    this.checkpointTimer = setInterval(() => {
      this.checkpoint(false).catch((err) => this.logger.error({ err }, 'checkpoint failed; will retry at the next interval'))
    }, this.config.checkpointIntervalMs)
  }

  /** Final commit and checkpoint, then storage is closed. */
  async close (): Promise<void> {
    if (this.checkpointTimer !== null) clearInterval(this.checkpointTimer)
    await this.checkpoint(true)
    await this.storage.log.close()
    await this.storage.checkpoints.close()
    await this.storage.history?.close()
  }
}
