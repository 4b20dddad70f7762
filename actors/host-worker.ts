// Entry of one actor host thread (run by piscina, one thread per pool, so a partition's state
// never lives in two threads). Holds the partition actors of its partitions, applies batches in
// arrival order, and group-commits: everything applied since the last commit becomes one log
// append (one record per touched partition); acks of ack=durable tasks are released when it is durable.
import Piscina from 'piscina'
import pino from 'pino'
import { CounterdError, asCounterdError } from '../src/core/errors'
import { fnv1a32 } from '../src/core/keys'
import { openStorage, type Storage } from '../src/storage/open-storage'
import type { Checkpoint, DeltaRecord } from '../src/core/records'
import type { ReplayStart } from '../src/storage/types'
import { PartitionState } from './partition-state'
import {
  OP_GET, OP_HAS_LIKED, OP_HEADER_BYTES, OP_INCR, OP_INCR_ACTOR, OP_LIKE, OP_LIKE_COUNT, OP_RATE, OP_RESET, OP_UNIQUE, OP_UNLIKE, opSize
} from '../src/core/op-codec'
import type { HostInit, HostStats, HostTask, PartBatch, PartResult, RecoverStats } from './host-protocol'

const init = Piscina.workerData as HostInit
const { config } = init
const logger = pino({ level: config.logLevel, base: { host: init.hostIndex } })
const durable = config.ackMode === 'durable'
// Opened by the 'recover' task, the first task every host gets.
let storage: Storage
const states = new Map<number, PartitionState>()

// ---- group commit -------------------------------------------------------------------------------

interface CommitBatch {
  ops: number
  records: DeltaRecord[]
  waiters: Array<() => void> // durable acks released when these records are durable
  after: Array<() => void> // checkpoint barriers
}

let next: CommitBatch = { ops: 0, records: [], waiters: [], after: [] }
let inFlight: CommitBatch | null = null
let windowOps = 0
// Ops applied but not yet durable. With ack=applied their acks are already out, so while the log is
// down nothing else bounds them: past maxInflightOps, write tasks wait for the log like durable ones,
// and the front's in-flight limit turns that into 503/overloaded instead of unbounded memory.
let unlogged = 0
let flushTimer: NodeJS.Timeout | null = null
let retryDelayMs = 0
let logError: string | undefined
let durableRecords = 0

function seal (): void {
  const now = Date.now()
  for (const s of states.values()) s.seal(now, next.records)
  next.ops += windowOps
  windowOps = 0
}

// Group commit: while an append is in flight, ops gather and go out together when it completes
// (pump's callback). When the log is idle, the commit starts after FLUSH_INTERVAL_MS, or with the
// default 0 at the end of this event-loop turn, so every task already queued joins it.
let flushImmediate: NodeJS.Immediate | null = null
function flushSoon (): void {
  if (windowOps >= config.maxBatchOps) { flushNow(); return }
  if (inFlight !== null || flushTimer !== null || flushImmediate !== null) return
  if (config.flushIntervalMs > 0) flushTimer = setTimeout(flushNow, config.flushIntervalMs)
  else flushImmediate = setImmediate(flushNow)
}

function flushNow (): void {
  if (flushTimer !== null) { clearTimeout(flushTimer); flushTimer = null }
  if (flushImmediate !== null) { clearImmediate(flushImmediate); flushImmediate = null }
  seal()
  pump()
}

function pump (): void {
  if (inFlight !== null) return
  const batch = next
  if (batch.records.length === 0 && batch.waiters.length === 0 && batch.after.length === 0) return
  next = { ops: 0, records: [], waiters: [], after: [] }
  inFlight = batch
  storage.log.append(batch.records).then(() => {
    inFlight = null
    retryDelayMs = 0
    if (logError !== undefined) logger.info('log writes succeed again')
    logError = undefined
    durableRecords += batch.records.length
    unlogged -= batch.ops
    if (storage.history !== null) for (const r of batch.records) storage.history.add(r)
    for (const w of batch.waiters) w()
    for (const a of batch.after) a()
    // Group commit: whatever arrived during this append goes out at once.
    if (windowOps > 0) flushNow()
    else pump()
  }, (err: Error) => {
    // Nothing applied is dropped: the same records are retried, in order, until the log takes them.
    // Acks stay held, so the front sheds new work once too much is in flight.
    retryDelayMs = Math.min(Math.max(retryDelayMs * 2, 10), 1000)
    logError = err.message
    logger.error({ err, retryInMs: retryDelayMs }, 'log append failed; retrying')
    setTimeout(() => { inFlight = null; next = merge(batch, next); pump() }, retryDelayMs)
  })
}

function merge (a: CommitBatch, b: CommitBatch): CommitBatch {
  return { ops: a.ops + b.ops, records: a.records.concat(b.records), waiters: a.waiters.concat(b.waiters), after: a.after.concat(b.after) }
}

/** Resolves once everything applied so far is durable. */
function commitBarrier (): Promise<void> {
  return new Promise((resolve) => {
    seal()
    next.after.push(resolve)
    if (flushTimer !== null) { clearTimeout(flushTimer); flushTimer = null }
    pump()
  })
}

// ---- checkpoints ------------------------------------------------------------------------------

let checkpointing: Promise<void> | null = null

function checkpoint (full: boolean): Promise<void> {
  if (checkpointing !== null) return checkpointing.then(() => checkpoint(full))
  // Seal first: then each partition's in-memory state is exactly its state after record `seq`.
  seal()
  const now = Date.now()
  const captured: Checkpoint[] = []
  const upTo = new Map<number, number>()
  for (const s of states.values()) {
    captured.push(s.capture(full || !storage.checkpoints.incremental, now))
    upTo.set(s.partition, s.seq)
  }
  checkpointing = (async () => {
    await commitBarrier() // a checkpoint may only be saved once the log holds everything it includes
    // The replay start a checkpoint records also covers what ClickHouse history has not stored yet.
    const history = storage.history
    for (const cp of captured) {
      const from = history === null ? cp.seq : Math.min(cp.seq, history.storedSeq(cp.partition) ?? 0)
      cp.logOffset = storage.log.positionOf?.(cp.partition, from)
    }
    await storage.checkpoints.save(captured)
    await storage.log.checkpointed(upTo)
  })().finally(() => { checkpointing = null })
  return checkpointing
}

let checkpointTimer: NodeJS.Timeout | null = null
function startCheckpointTimer (): void {
  checkpointTimer = setInterval(() => {
    checkpoint(false).catch((err) => logger.error({ err }, 'checkpoint failed; will retry at the next interval'))
  }, config.checkpointIntervalMs)
}

// ---- tasks ------------------------------------------------------------------------------------

function stateOf (p: number): PartitionState {
  const s = states.get(p)
  if (s === undefined) throw new Error(`partition ${p} is not held by host ${init.hostIndex}`)
  return s
}

function applyWrite (part: PartBatch): PartResult {
  const s = stateOf(part.p)
  const buf = Buffer.from(part.ops.buffer, part.ops.byteOffset, part.ops.byteLength)
  const values = part.wantValues ? new Float64Array(part.n) : null
  const refused: number[] = []
  const dups: number[] = []
  const now = Date.now()
  let o = 0
  let i = 0
  for (let u = 0; u < part.ends.length; u++) {
    const end = part.ends[u]
    const tag = part.tags[u]
    const streamSeq = part.seqs[u]
    if (tag !== null) {
      const seen = streamSeq >= 0 ? s.streams.get(tag, now) : s.idempotency.get(tag, now)
      if (seen !== undefined && (streamSeq < 0 || streamSeq <= seen)) {
        // A resend: nothing is applied again. HTTP retries get the value first returned.
        for (; i < end; i++) {
          if (values !== null) values[i] = seen
          o = skipOp(buf, o)
        }
        dups.push(u)
        continue
      }
    }
    let last = 0
    for (; i < end; i++) {
      const kind = buf[o]
      const len = buf[o + 1]
      const h = buf.readUInt32LE(o + 2)
      const keyOff = o + OP_HEADER_BYTES
      o = keyOff + len
      let v: number
      if (kind === OP_INCR) {
        v = s.increment(buf, keyOff, len, h, buf.readDoubleLE(o), next.records)
        o += 8
      } else if (kind === OP_RESET) {
        v = s.reset(buf, keyOff, len, h, next.records)
      } else if (kind === OP_INCR_ACTOR) {
        const argLen = buf[o + 8]
        v = s.incrementWithActor(buf, keyOff, len, h, buf.readDoubleLE(o), buf.toString('latin1', o + 9, o + 9 + argLen), next.records)
        o += 9 + argLen
      } else if (kind === OP_LIKE || kind === OP_UNLIKE) {
        const item = buf.toString('latin1', keyOff, keyOff + len)
        const user = buf.toString('latin1', o + 1, o + 1 + buf[o])
        v = kind === OP_LIKE ? s.like(item, user) : s.unlike(item, user)
        o += 1 + buf[o]
      } else {
        throw new Error(`op kind ${kind} is not a write`)
      }
      if (Number.isNaN(v)) refused.push(i)
      if (values !== null) values[i] = v
      last = v
      windowOps++
      unlogged++
    }
    if (tag !== null) {
      if (streamSeq >= 0) s.recordStream(tag, streamSeq, now)
      else if (!Number.isNaN(last)) s.recordIdempotent(tag, last, now)
    }
  }
  return { values, refused, dups }
}

function isNoNews (r: PartResult): boolean {
  return r.values === null && r.refused.length === 0 && r.dups.length === 0
}

function skipOp (buf: Buffer, o: number): number {
  return o + opSize(buf, o)
}

function applyRead (part: PartBatch): PartResult {
  const s = stateOf(part.p)
  const buf = Buffer.from(part.ops.buffer, part.ops.byteOffset, part.ops.byteLength)
  const values = new Float64Array(part.n)
  const now = Date.now()
  let o = 0
  for (let i = 0; i < part.n; i++) {
    const kind = buf[o]
    const len = buf[o + 1]
    const h = buf.readUInt32LE(o + 2)
    const keyOff = o + OP_HEADER_BYTES
    if (kind === OP_GET) {
      values[i] = s.get(buf, keyOff, len, h)
    } else if (kind === OP_RATE) {
      values[i] = s.rate(buf, keyOff, len, h, now)
    } else {
      const key = buf.toString('latin1', keyOff, keyOff + len)
      if (kind === OP_LIKE_COUNT) values[i] = s.features.likes.count(key)
      else if (kind === OP_UNIQUE) values[i] = s.features.unique(key)
      else if (kind === OP_HAS_LIKED) values[i] = s.features.likes.hasLiked(key, buf.toString('latin1', keyOff + len + 1, keyOff + len + 1 + buf[keyOff + len])) ? 1 : 0
      else throw new Error(`op kind ${kind} is not a read`)
    }
    o = skipOp(buf, o)
  }
  return { values, refused: [], dups: [] }
}

/** Merges other replicas' records; resolves with how many counters changed, once durable. */
function mergeReplicas (records: DeltaRecord[]): Promise<number> {
  let changed = 0
  for (const r of records) {
    if (r.replica === undefined || r.ps === undefined || r.ns === undefined) continue
    changed += stateOf(r.partition).mergeReplica(r.replica, r.keys, r.ps, r.ns)
  }
  return new Promise((resolve) => { next.waiters.push(() => resolve(changed)); flushSoon() })
}

function top (type: string | null, k: number): Array<{ key: string, rate: number }> {
  const now = Date.now()
  const all: Array<{ key: string, rate: number }> = []
  for (const s of states.values()) all.push(...s.top(type, k, now))
  return all.sort((a, b) => b.rate - a.rate).slice(0, k)
}

/** A string key as the (bytes, offset, length, hash) the partition state takes. */
function keyArgs (key: string): [Buffer, number, number, number] {
  const buf = Buffer.from(key, 'latin1')
  return [buf, 0, buf.length, fnv1a32(key)]
}

async function recover (): Promise<RecoverStats> {
  const started = Date.now()
  storage = await openStorage(config, init.hostIndex, init.partitions, init.epoch, { logger })
  const { history } = storage
  const from = new Map<number, ReplayStart>()
  for (const p of init.partitions) {
    const s = new PartitionState({
      partition: p,
      epoch: storage.epoch,
      replica: config.replicaId,
      dedupWindowMs: config.dedupWindowMs,
      dedupMaxEntries: config.dedupMaxEntries,
      trackDirty: storage.checkpoints.incremental,
      sampleSize: config.sampleSize
    })
    states.set(p, s)
    const cp = await storage.checkpoints.load(p)
    if (cp === null) continue
    s.load(cp)
    // The checkpoint's log offset is at or before what history still needs (see checkpoint()).
    from.set(p, { seq: cp.seq, logOffset: cp.logOffset })
  }
  let records = 0
  await storage.log.replay(init.partitions, (r) => {
    history?.add(r)
    if (stateOf(r.partition).replay(r)) records++
  }, from)
  // A fresh checkpoint of everything recovered lets the node drop the log segments it replayed.
  await checkpoint(true)
  startCheckpointTimer()
  let counters = 0
  for (const s of states.values()) counters += s.nonZero
  return { partitions: states.size, counters, records, ms: Date.now() - started }
}

async function close (): Promise<void> {
  if (checkpointTimer !== null) clearInterval(checkpointTimer)
  await checkpoint(true)
  await storage.log.close()
  await storage.checkpoints.close()
  await storage.history?.close()
}

function stats (): HostStats {
  let counters = 0
  for (const s of states.values()) counters += s.nonZero
  const failing = logError ?? storage?.failing()
  let likes = 0
  for (const s of states.values()) likes += s.features.likes.size
  return { likes, counters, pendingOps: windowOps, durableRecords, logOk: failing === undefined, logError: failing, history: storage?.history?.status() }
}

export default async function handle (task: HostTask): Promise<unknown> {
  try {
    switch (task.t) {
      case 'write': {
        const applied = task.parts.map(applyWrite)
        // Most stream batches have nothing to report: answer null rather than cloning empty results.
        const results = applied.every(isNoNews) ? null : applied
        flushSoon()
        if (!durable && unlogged <= config.maxInflightOps) return results
        return await new Promise((resolve) => { next.waiters.push(() => resolve(results)) })
      }
      case 'read':
        return task.parts.map(applyRead)
      case 'recover':
        return await recover()
      case 'checkpoint':
        await checkpoint(true)
        return null
      case 'close':
        await close()
        return null
      case 'stats':
        return stats()
      case 'sample':
        return stateOf(task.p).features.sample(task.key, task.n)
      case 'replicas':
        return stateOf(task.p).replicas(...keyArgs(task.key))
      case 'top':
        return top(task.type, task.k)
      case 'export': {
        const now = Date.now()
        return [...states.values()].map((s) => s.exportTotals(now))
      }
      case 'merge':
        return await mergeReplicas(task.records)
      case 'history':
        if (storage.history === null) throw new CounterdError('not_found', 'history is not enabled on this node: set CLICKHOUSE_URL')
        return await storage.history.query(task.key, task.from, task.to, task.step)
    }
  } catch (err) {
    logger.error({ err }, 'actor host task failed')
    throw asCounterdError(err).toWire()
  }
}
