// The router of one shard thread: sends each op to the shard that owns its partition
// (p mod shards). An op of this thread's own shard is applied inline; another shard's ops are
// staged in the outbox to that shard and cross through the shared-memory ring between the two
// threads at the end of the event-loop turn, in one message for the whole turn. The owner
// answers through the ring the other way: at once for reads, after its group commit for durable
// writes. Requests that are not plain ops (top-K, samples, history, merges…) travel the same
// rings as small JSON control records.
//
// A request is a unit: its ops (one per HTTP request, many per stream frame) are split into one
// part per shard touched; the unit's owner (the front's pending request) hears from each part.
//
// In a ring of nodes a partition may live on another node: the route table maps each partition
// to a target, which is a shard of this node or a peer link (peer-link.ts) to the owning shard of
// another node. A peer link carries the same records as a ring, so units, replies and control
// requests work the same whichever kind of target they go to.
import { performance } from 'node:perf_hooks'
import type { Logger } from 'pino'
import type { DurableWaiter } from '../../actors/group-commit'
import { UnitResult, type Shard } from '../../actors/shard'
import { CounterdError, asCounterdError, fromWire, type WireError } from '../core/errors'
import { ByteSink, OP_INCR, opSize } from '../core/op-codec'
import { bytesEqual, frameKeyEquals, type HotEntry, type HotRoutes } from './hot-routes'
import type { InflightGauge } from './inflight'
import { Outbox } from './outbox'
import type { RecordSender } from './peer-link'
import {
  REC_CTRL, REC_CTRL_REPLY, REC_REPLY, REC_UNIT, REPLY_DUP, REPLY_ERROR, REPLY_VALUES, UNIT_READ, UNIT_STREAM, UNIT_TAG, UNIT_VALUES,
  writeControl, writeControlReply, writeReply, writeUnitHeader
} from './ring-records'
import type { Doorbell, SpscRing } from './spsc-ring'

/** Whoever submitted a unit: hears once per part (per shard the unit touched). */
export interface UnitOwner {
  /** Set by the router before any part completes: how many parts the unit has. */
  parts: number
  /**
   * A part was applied at `shard`: a value per op (in the order they were added for that shard)
   * when the unit asked for values, how many ops were refused, whether it was a resend. `values`
   * is only valid during the call.
   */
  onApplied: (shard: number, values: Float64Array | null, n: number, refused: number, dup: boolean) => void
  /** A part is complete: durable (or applied, per the ack mode), or failed with `err`. */
  onPartDone: (err: CounterdError | null) => void
}

/** Told how long each part sent to another shard took to be answered (metrics). */
export interface ForwardObserver {
  forwarded: (seconds: number, read: boolean) => void
}

export type ControlHandler = (args: any) => unknown

export interface Links {
  /** out[t]: the ring this shard writes to shard t (null for itself); in[t]: the ring from shard t. */
  out: Array<SpscRing | null>
  in: Array<SpscRing | null>
  /** Every shard's doorbell; this shard's is bells[index]. */
  bells: Doorbell[]
}

export interface RouterOptions {
  index: number
  shards: number
  partitions: number
  shard: Shard
  links: Links
  /** Ops the node has accepted and not yet answered (all shards), writes and reads counted apart. */
  inflight: InflightGauge
  /** Staged bytes per outbox beyond which new units are refused (overloaded). */
  outboxLimit: number
  /** Ring mode: how long a part for a partition moving to this shard waits for it (then partition_moving); 0 = never waits. */
  parkMs?: number
  logger: Logger
  observer?: ForwardObserver
}

/** A local part waiting for the shard's group commit. */
class LocalPart implements DurableWaiter {
  constructor (private readonly router: Router, private readonly owner: UnitOwner, private readonly ops: number) {}
  onDurable (): void {
    this.router.answered(false, this.ops)
    this.owner.onPartDone(null)
  }
}

/** Replies to one shard's units, held until the group commit that made them durable completes. */
class HeldReplies implements DurableWaiter {
  readonly sink = new ByteSink(4096)
  constructor (private readonly router: Router, readonly to: number, readonly window: number, readonly lossesSeen: number) {}
  onDurable (): void {
    this.router.release(this)
  }
}

/** Stands for the shard or node that sent a part this shard forwarded (it moved on): relays the answer. */
class ProxyPart implements UnitOwner {
  parts = 1
  values: Float64Array | null = null
  n = 0
  refused = 0
  dup = false
  constructor (private readonly router: Router, readonly from: number, readonly unitId: number, readonly wantValues: boolean, readonly lossesSeen: number) {}
  onApplied (_shard: number, values: Float64Array | null, n: number, refused: number, dup: boolean): void {
    this.values = values === null ? null : values.slice(0, n)
    this.n = n
    this.refused = refused
    this.dup = dup
  }

  onPartDone (err: CounterdError | null): void {
    this.router.proxied(this, err)
  }
}

/** A part waiting for its partition to be served here (from −1: submitted on this shard, by owner). */
interface ParkedPart {
  from: number
  owner: UnitOwner | null
  unitId: number
  flags: number
  seq: number
  tag: string | null
  ops: Buffer
  n: number
  until: number
}

interface PendingControl { target: number, resolve: (v: unknown) => void, reject: (e: Error) => void }

export class Router {
  readonly index: number
  readonly shards: number
  readonly partitions: number
  inflightOps = 0 // writes this shard accepted and has not yet answered
  inflightReads = 0 // reads, counted apart: a log outage holds writes, never reads
  readonly handlers = new Map<string, ControlHandler>()
  /** Split (hot) counters: set by the front when splitting is on; plain increments spread over their sub-counters. */
  hot: HotRoutes | null = null

  private readonly shard: Shard
  // Targets: 0…shards-1 are this node's shards (null for this one), then peer links as added.
  private readonly outboxes: Array<RecordSender | null>
  private readonly inboxes: Array<SpscRing | null>
  private route: Int32Array // partition → target
  private readonly bell: Doorbell
  private readonly o: RouterOptions

  // The unit being built.
  private owner: UnitOwner | null = null
  private flags = 0
  private tag: string | null = null
  private seq = -1
  private readonly local = new ByteSink(64 * 1024)
  private localN = 0
  private partAt: Int32Array // sink offset of the unit's record in each outbox, -1 none
  private partN: Int32Array
  private partOps: Int32Array // offset where the part's ops start
  private readonly touched: number[] = []
  private readonly result = new UnitResult()

  // Remote parts waiting for their reply, by unit id (slot).
  private slotOwner: Array<UnitOwner | null> = []
  private slotOps = new Int32Array(64)
  private slotRead = new Uint8Array(64)
  private slotSent = new Float64Array(64) // performance.now() when the part left
  private slotTarget = new Int32Array(64)
  private readonly freeSlots: number[] = []

  private readonly held: Array<HeldReplies | null>
  private readonly losses: number[] // per target: how many times its peer link was lost (held replies of an earlier connection are dropped)
  private readonly partial: Array<ByteSink | null> // reassembly of records that came in chunks
  private readonly controls = new Map<number, PendingControl>()
  private nextControlId = 1
  private replyValues = new Float64Array(1024)
  private flushScheduled = false
  private proxying = 0 // parts forwarded for another shard or node, not yet answered
  private parked: ParkedPart[] = []
  private parkedBytes = 0
  // Stream clients (clientId → parts) with a frame's part parked here: their later frames wait
  // behind it, since a partition's dedup takes a frame seq at or below the newest applied as a resend.
  private readonly parkedStreams = new Map<string, number>()
  private parkTimer: NodeJS.Timeout | null = null
  private readonly unparkBound = (): void => { this.parkTimer = null; this.unpark() }
  private retryTimer: NodeJS.Timeout | null = null
  private readonly flushBound = (): void => this.flush()
  private readonly pumpBound = (): void => this.pump()
  private readonly hasWorkBound = (): boolean => this.hasWork()
  private readonly drainers: Array<(data: Buffer, off: number, len: number, more: boolean) => void>

  constructor (o: RouterOptions) {
    this.o = o
    this.index = o.index
    this.shards = o.shards
    this.partitions = o.partitions
    this.shard = o.shard
    this.bell = o.links.bells[o.index]
    this.outboxes = o.links.out.map((ring, t) => ring === null ? null : new Outbox(ring, o.links.bells[t], o.outboxLimit))
    this.inboxes = o.links.in
    this.partAt = new Int32Array(o.shards).fill(-1)
    this.partN = new Int32Array(o.shards)
    this.partOps = new Int32Array(o.shards)
    this.held = new Array(o.shards).fill(null)
    this.losses = new Array(o.shards).fill(0)
    this.partial = new Array(o.shards).fill(null)
    this.route = new Int32Array(o.partitions)
    for (let p = 0; p < o.partitions; p++) this.route[p] = p % o.shards
    this.drainers = Array.from({ length: o.shards }, (_, from) => (data: Buffer, off: number, len: number, more: boolean) => this.onMessage(from, data, off, len, more))
  }

  /** The target (a shard of this node, or a peer link) that owns partition p. */
  shardOf (p: number): number {
    return this.route[p]
  }

  /** Routes from now on: partition → target (setRoutes copies). */
  setRoutes (route: Int32Array): void {
    if (route.length !== this.partitions) throw new CounterdError('internal', 'a route table must have one entry per partition')
    this.route = Int32Array.from(route)
    this.hot?.reroute(this.route)
    if (this.parked.length > 0) this.unpark() // parts waiting here may now belong elsewhere
  }

  /** Adds a target (a peer link) and returns its index; records that arrive on it go to receive(). */
  addLink (link: RecordSender): number {
    const t = this.outboxes.length
    this.outboxes.push(link)
    this.held.push(null)
    this.partial.push(null)
    this.losses.push(0)
    if (t >= this.partAt.length) {
      const grow = (a: Int32Array, fill: number): Int32Array => { const b = new Int32Array(a.length * 2).fill(fill); b.set(a); return b }
      this.partAt = grow(this.partAt, -1)
      this.partN = grow(this.partN, 0)
      this.partOps = grow(this.partOps, 0)
    }
    return t
  }

  /** When records last arrived on a peer link (Date.now()), 0 never. */
  lastReceivedAt = 0

  /** Records that arrived on peer link t: buf[off…end). */
  receive (t: number, buf: Buffer, off: number, end: number): void {
    this.lastReceivedAt = Date.now()
    this.records(t, buf, off, end)
    this.scheduleFlush()
  }

  /** Parts waiting here for a moving partition (metrics). */
  get parkedParts (): number { return this.parked.length }

  /** Whether a part or control request sent to target t still waits for its answer. */
  awaitsAnswerFrom (t: number): boolean {
    for (let s = 0; s < this.slotOwner.length; s++) if (this.slotOwner[s] !== null && this.slotTarget[s] === t) return true
    for (const c of this.controls.values()) if (c.target === t) return true
    return false
  }

  /**
   * Peer link t lost its connection: every part and control request it carried that was not
   * answered fails with `err` (its owner may or may not have applied it); replies this shard still
   * owed on it are dropped (the requester saw the same loss).
   */
  linkLost (t: number, err: CounterdError): void {
    this.held[t] = null
    this.partial[t] = null
    this.losses[t]++
    for (let s = 0; s < this.slotOwner.length; s++) {
      const owner = this.slotOwner[s]
      if (owner === null || this.slotTarget[s] !== t) continue
      this.slotOwner[s] = null
      this.freeSlots.push(s)
      this.answered(this.slotRead[s] === 1, this.slotOps[s])
      owner.onPartDone(err)
    }
    for (const [id, c] of this.controls) {
      if (c.target !== t) continue
      this.controls.delete(id)
      c.reject(err)
    }
  }

  /** Whether nothing this shard accepted is still unanswered. */
  get idle (): boolean {
    return this.inflightOps === 0 && this.inflightReads === 0 && this.controls.size === 0 && this.proxying === 0 && this.parked.length === 0
  }

  /**
   * Whether some outbox holds more than half its limit. A front that can wait (a Redis pipeline:
   * stop reading the connection) should, rather than send units that may be refused.
   */
  get congested (): boolean {
    for (const box of this.outboxes) if (box !== null && box.staged > box.limit / 2) return true
    return false
  }

  /** Starts taking records from the other shards. */
  start (): void {
    this.pump()
  }

  // ---- building units: beginUnit, ops, endUnit ----

  /**
   * Starts a unit. tag: a stream clientId (with seq ≥ 0) or key + '\n' + Idempotency-Key (seq −1),
   * or null; read: answered at once with a value per op (never logged).
   */
  beginUnit (owner: UnitOwner, tag: string | null, seq: number, wantValues: boolean, read = false): void {
    this.owner = owner
    this.tag = tag
    this.seq = seq
    this.flags = (read ? UNIT_READ | UNIT_VALUES : 0) | (wantValues ? UNIT_VALUES : 0) | (tag === null ? 0 : UNIT_TAG) | (tag !== null && seq >= 0 ? UNIT_STREAM : 0)
    this.local.len = 0
    this.localN = 0
  }

  /** The sink an op of partition `p` goes to (the local one, or the unit's record in the outbox). */
  private sinkFor (p: number): ByteSink {
    const t = this.route[p]
    if (t === this.index) {
      this.localN++
      return this.local
    }
    const box = this.outboxes[t] as RecordSender
    if (this.partAt[t] < 0) {
      this.partAt[t] = box.sink.len
      writeUnitHeader(box.sink, this.flags, 0, this.seq, this.tag)
      this.partOps[t] = box.sink.len
      this.partN[t] = 0
      this.touched.push(t)
    }
    this.partN[t]++
    return box.sink
  }

  /** An op on "type:id" (`key`, FNV-1a hash `hash`), with a delta and an argument as its kind wants. */
  op (kind: number, hash: number, key: string, delta = 0, arg: string | null = null): void {
    const p = hash % this.partitions
    if (this.hot !== null && this.hot.homes[p] !== 0 && kind === OP_INCR && this.spreads) {
      const e = this.hot.routable(hash)
      if (e !== null && e.names.key === key) { this.toSub(e, delta); return }
    }
    this.sinkFor(p).op(kind, hash, key, delta, arg)
  }

  /** An op whose key and argument are copied straight from request bytes (the Redis-protocol front). */
  opFromBytes (kind: number, hash: number, src: Uint8Array, keyStart: number, keyLen: number, delta: number, argStart: number, argLen: number): void {
    const p = hash % this.partitions
    if (this.hot !== null && this.hot.homes[p] !== 0 && kind === OP_INCR && this.spreads) {
      const e = this.hot.routable(hash)
      if (e !== null && bytesEqual(src, keyStart, keyLen, e.names.key)) { this.toSub(e, delta); return }
    }
    this.sinkFor(p).opFromBytes(kind, hash, src, keyStart, keyLen, delta, argStart, argLen)
  }

  /** An increment whose key is copied straight from a binary stream frame (the stream's hot path); prefix: a namespace's. */
  incrementFromFrame (hash: number, src: Uint8Array, typeStart: number, typeLen: number, idStart: number, idLen: number,
    delta: number, actorStart: number, actorLen: number, prefix: Uint8Array | null = null): void {
    const p = hash % this.partitions
    if (this.hot !== null && this.hot.homes[p] !== 0 && actorStart < 0 && this.spreads) {
      const e = this.hot.routable(hash)
      if (e !== null && frameKeyEquals(prefix, src, typeStart, typeLen, idStart, idLen, e.names.key)) { this.toSub(e, delta); return }
    }
    this.sinkFor(p).incrementFromFrame(hash, src, typeStart, typeLen, idStart, idLen, delta, actorStart, actorLen, prefix)
  }

  /**
   * Whether the unit's plain increments of a split counter may go to its sub-counters: only without
   * a dedup tag (a resend must reach the partition whose dedup saw the first send) and without
   * values to answer (the counter's value needs every part).
   */
  private get spreads (): boolean {
    return this.tag === null && (this.flags & UNIT_VALUES) === 0
  }

  /** A plain increment of a split counter, to one of its sub-counters near this shard (hot-routes.ts). */
  private toSub (e: HotEntry, delta: number): void {
    const j = (this.hot as HotRoutes).next(e)
    const n = e.names
    this.sinkFor(n.subPartitions[j]).op(OP_INCR, n.subHashes[j], n.subs[j], delta, null)
  }

  /** The route table (hot counters pick near sub-counters by it). */
  get routes (): Int32Array { return this.route }

  /**
   * Ends the unit and sends it: remote parts are staged for their shards, the local part is
   * applied now. False when it was refused for overload (too much in flight, or an outbox full):
   * then nothing of it was applied or sent.
   */
  endUnit (): boolean {
    const owner = this.owner as UnitOwner
    const read = (this.flags & UNIT_READ) !== 0
    let ops = this.localN
    for (const t of this.touched) ops += this.partN[t]
    let admitted = true
    for (const t of this.touched) admitted &&= (this.outboxes[t] as RecordSender).admits(this.partAt[t])
    if (!admitted || !this.o.inflight.tryAdd(read, ops)) {
      for (const t of this.touched) { (this.outboxes[t] as RecordSender).truncate(this.partAt[t]); this.partAt[t] = -1 }
      this.touched.length = 0
      this.owner = null
      return false
    }
    owner.parts = this.touched.length + (this.localN > 0 ? 1 : 0)
    if (read) this.inflightReads += ops
    else this.inflightOps += ops
    for (const t of this.touched) {
      const box = this.outboxes[t] as RecordSender
      const buf = box.sink.buf
      const at = this.partAt[t]
      buf.writeUInt32LE(this.allocSlot(owner, this.partN[t], read, t), at + 2)
      const nOpsAt = this.partOps[t] - 8
      buf.writeUInt32LE(this.partN[t], nOpsAt)
      buf.writeUInt32LE(box.sink.len - this.partOps[t], nOpsAt + 4)
      box.endRecord()
      this.partAt[t] = -1
    }
    if (this.touched.length > 0) this.scheduleFlush()
    this.touched.length = 0
    this.owner = null
    if (this.localN > 0) this.applyLocal(owner, read)
    return true
  }

  private applyLocal (owner: UnitOwner, read: boolean): void {
    this.applyLocalPart(owner, this.flags, this.tag, this.seq, this.local.buf, 0, this.localN, read)
  }

  /** Applies a part submitted on this shard; a part for a partition still moving here waits (park). */
  private applyLocalPart (owner: UnitOwner, flags: number, tag: string | null, seq: number, buf: Buffer, off: number, n: number, read: boolean, until = 0): void {
    const r = this.result
    try {
      if (this.waitsBehind(flags, tag)) throw WAIT_BEHIND
      if (read) this.shard.applyReads(buf, off, n, r)
      else this.shard.applyWrites(buf, off, n, tag, seq, (flags & UNIT_VALUES) !== 0, r)
    } catch (err) {
      if (isMoving(err) && this.park(-1, owner, 0, flags, seq, tag, buf, off, n, until)) return
      if (!isMoving(err)) this.o.logger.error({ err }, 'applying a unit failed')
      this.answered(read, n)
      owner.onPartDone(asCounterdError(err))
      return
    }
    owner.onApplied(this.index, (flags & UNIT_VALUES) !== 0 ? r.values : null, n, r.refused, r.dup)
    if (!read && this.shard.holdsAcks) {
      this.shard.whenDurable(new LocalPart(this, owner, n))
    } else {
      this.answered(read, n)
      owner.onPartDone(null)
    }
  }

  // ---- parts that wait for their partition (ring mode) ----

  /** Whether a part must wait behind an earlier frame of the same stream client parked here. */
  private waitsBehind (flags: number, tag: string | null): boolean {
    return this.parkedStreams.size > 0 && (flags & UNIT_STREAM) !== 0 && this.parkedStreams.has(tag as string)
  }

  /**
   * Keeps a part whose partition is moving to this shard (loading here, or not handed over yet)
   * until the shard serves it, in arrival order, at most PARK_MS; false when it cannot wait (the
   * deadline passed, or too much is parked). Clients see latency during a move, not errors.
   */
  private park (from: number, owner: UnitOwner | null, unitId: number, flags: number, seq: number, tag: string | null, buf: Buffer, off: number, n: number, until: number): boolean {
    const now = Date.now()
    if (until === 0) until = now + (this.o.parkMs ?? 0)
    if (now >= until || this.parkedBytes > this.o.outboxLimit * 4) return false
    const ops = Buffer.from(buf.subarray(off, opsEnd(buf, off, n)))
    this.parkedBytes += ops.length
    this.parked.push({ from, owner, unitId, flags, seq, tag, ops, n, until })
    if ((flags & UNIT_STREAM) !== 0) this.parkedStreams.set(tag as string, (this.parkedStreams.get(tag as string) ?? 0) + 1)
    this.parkTimer ??= setTimeout(this.unparkBound, 50)
    return true
  }

  /**
   * Goes over the parked parts, oldest first: a part whose partitions are served here now is
   * applied; one whose partitions the ring has moved elsewhere meanwhile is forwarded to their
   * owner (a part that came from another shard or node is answered to it once the owner answers);
   * the others wait on. Called when partitions start being served, when routes change, and on a timer.
   */
  unpark (): void {
    if (this.parkTimer !== null) { clearTimeout(this.parkTimer); this.parkTimer = null }
    const list = this.parked
    this.parked = []
    this.parkedBytes = 0
    this.parkedStreams.clear()
    for (const u of list) {
      const read = (u.flags & UNIT_READ) !== 0
      const t = this.targetOfOps(u.ops, u.n)
      if (t >= 0 && t !== this.index) {
        // A stream frame's part is not forwarded: its later frames may already have reached the
        // new owner directly, and the owner's dedup takes a frame seq at or below the newest it
        // applied for a resend. The frame gets a retriable error instead (clients resend it).
        if ((u.flags & UNIT_STREAM) !== 0) { this.failParked(u, read); continue }
        if (this.forward(u, t, read)) continue
      }
      if (u.from < 0) this.applyLocalPart(u.owner as UnitOwner, u.flags, u.tag, u.seq, u.ops, 0, u.n, read, u.until)
      else this.applyRemotePart(u.from, u.unitId, u.flags, u.seq, u.tag, u.ops, 0, u.n, u.until)
    }
    this.scheduleFlush()
  }

  private failParked (u: ParkedPart, read: boolean): void {
    const err = new CounterdError('partition_moving', 'this counter\'s partition moved to another owner while the frame waited; send it again')
    if (u.from < 0) {
      const owner = u.owner as UnitOwner
      this.answered(read, u.n)
      owner.onPartDone(err)
      return
    }
    const box = this.outboxes[u.from] as RecordSender
    writeReply(box.sink, u.unitId, false, 0, null, u.n, JSON.stringify(err.toWire()))
    box.endRecord()
  }

  /** The target every op of buf[0…] routes to now, or −1 when they route to different targets. */
  private targetOfOps (buf: Buffer, n: number): number {
    let t = -1
    for (let i = 0, o = 0; i < n; i++, o += opSize(buf, o)) {
      const ti = this.route[buf.readUInt32LE(o + 2) % this.partitions]
      if (t >= 0 && ti !== t) return -1
      t = ti
    }
    return t
  }

  /** Sends a parked part on to target t as a part of its own; false when t admits nothing now. */
  private forward (u: ParkedPart, t: number, read: boolean): boolean {
    const box = this.outboxes[t] as RecordSender
    const at = box.sink.len
    if (!box.admits(at)) return false
    writeUnitHeader(box.sink, u.flags, 0, u.seq, u.tag)
    const nOpsAt = box.sink.len - 8
    box.sink.bytes(u.ops, 0, u.ops.length)
    box.sink.buf.writeUInt32LE(u.n, nOpsAt)
    box.sink.buf.writeUInt32LE(u.ops.length, nOpsAt + 4)
    // A part submitted here keeps its owner (its ops are in flight already); a part another shard
    // or node sent gets a proxy that answers it there. Proxies count no ops in flight (slot ops 0).
    const owner = u.from < 0 ? u.owner as UnitOwner : new ProxyPart(this, u.from, u.unitId, (u.flags & UNIT_VALUES) !== 0, this.losses[u.from])
    if (u.from >= 0) this.proxying++
    box.sink.buf.writeUInt32LE(this.allocSlot(owner, u.from < 0 ? u.n : 0, read, t), at + 2)
    box.endRecord()
    this.scheduleFlush()
    return true
  }

  /** A forwarded part's owner answered: the answer goes back to the shard or node that sent it here. */
  proxied (p: ProxyPart, err: CounterdError | null): void {
    this.proxying--
    if (p.lossesSeen !== this.losses[p.from]) return // the link it came on is gone
    const box = this.outboxes[p.from] as RecordSender
    writeReply(box.sink, p.unitId, p.dup, p.refused, err === null && p.wantValues ? p.values : null, p.n, err === null ? null : JSON.stringify(err.toWire()))
    box.endRecord()
    this.scheduleFlush()
  }

  /** `n` ops of a part are answered: they no longer count as in flight. */
  answered (read: boolean, n: number): void {
    if (read) this.inflightReads -= n
    else this.inflightOps -= n
    this.o.inflight.sub(read, n)
  }

  private allocSlot (owner: UnitOwner, ops: number, read: boolean, target: number): number {
    let s = this.freeSlots.pop()
    if (s === undefined) {
      s = this.slotOwner.length
      this.slotOwner.push(null)
      if (s >= this.slotOps.length) {
        const ops2 = new Int32Array(this.slotOps.length * 2); ops2.set(this.slotOps); this.slotOps = ops2
        const read2 = new Uint8Array(this.slotRead.length * 2); read2.set(this.slotRead); this.slotRead = read2
        const sent2 = new Float64Array(this.slotSent.length * 2); sent2.set(this.slotSent); this.slotSent = sent2
        const target2 = new Int32Array(this.slotTarget.length * 2); target2.set(this.slotTarget); this.slotTarget = target2
      }
    }
    this.slotOwner[s] = owner
    this.slotOps[s] = ops
    this.slotRead[s] = read ? 1 : 0
    this.slotTarget[s] = target
    if (this.o.observer !== undefined) this.slotSent[s] = performance.now()
    return s
  }

  // ---- control requests ----

  /** Runs a named control handler on `target`, a shard or a peer link's shard (JSON in, JSON out). */
  async control (target: number, name: string, args: unknown): Promise<unknown> {
    if (target === this.index) return await this.runHandler(name, args)
    const box = this.outboxes[target] as RecordSender
    if (target >= this.shards && !box.admits(0)) throw new CounterdError('peer_unavailable', 'the node that owns this counter cannot be reached; retry')
    const id = this.nextControlId++
    writeControl(box.sink, id, JSON.stringify({ name, args }))
    box.endRecord()
    this.scheduleFlush()
    return await new Promise((resolve, reject) => this.controls.set(id, { target, resolve, reject }))
  }

  /** The same control request on every shard, answers in shard order. */
  async controlAll (name: string, args: unknown): Promise<unknown[]> {
    return await Promise.all(Array.from({ length: this.shards }, async (_, t) => await this.control(t, name, args)))
  }

  private async runHandler (name: string, args: unknown): Promise<unknown> {
    const h = this.handlers.get(name)
    if (h === undefined) throw new CounterdError('internal', `no control handler ${name}`)
    return await h(args)
  }

  // ---- the rings ----

  private scheduleFlush (): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    setImmediate(this.flushBound)
  }

  /** Pushes every outbox into its ring; a full ring is retried shortly (its consumer is draining). */
  flush (): void {
    this.flushScheduled = false
    let blocked = false
    for (const box of this.outboxes) {
      if (box !== null && box.staged > 0 && !box.flush()) blocked = true
    }
    if (blocked && this.retryTimer === null) {
      this.retryTimer = setTimeout(() => { this.retryTimer = null; this.flush() }, 1)
    }
  }

  private hasWork (): boolean {
    for (const ring of this.inboxes) if (ring !== null && !ring.isEmpty()) return true
    return false
  }

  /**
   * Drains every incoming ring and sends what that produced. When something came in, the shard
   * stays awake and looks again after its next event-loop turn, so a steady stream from the other
   * shards costs no wake-ups (producers ring only a sleeper); after a turn with nothing, it sleeps
   * until a producer rings.
   */
  private pump (): void {
    for (;;) {
      let n = 0
      for (let from = 0; from < this.shards; from++) n += this.inboxes[from]?.drain(this.drainers[from]) ?? 0
      this.flush()
      if (n > 0) { setImmediate(this.pumpBound); return }
      if (this.bell.sleep(this.hasWorkBound, this.pumpBound)) return
    }
  }

  private onMessage (from: number, data: Buffer, off: number, len: number, more: boolean): void {
    let partial = this.partial[from]
    if (more || partial !== null) {
      partial ??= this.partial[from] = new ByteSink(len * 2)
      partial.bytes(data, off, off + len)
      if (more) return
      this.partial[from] = null
      this.records(from, partial.buf, 0, partial.len)
      return
    }
    this.records(from, data, off, off + len)
  }

  private records (from: number, buf: Buffer, o: number, end: number): void {
    while (o < end) {
      const type = buf[o]
      if (type === REC_UNIT) o = this.onUnit(from, buf, o)
      else if (type === REC_REPLY) o = this.onReply(from, buf, o)
      else if (type === REC_CTRL) o = this.onControl(from, buf, o)
      else if (type === REC_CTRL_REPLY) o = this.onControlReply(buf, o)
      else {
        this.o.logger.error({ from, type, offset: o }, 'unknown record type on a shard ring; dropping the rest of the message')
        return
      }
    }
  }

  private onUnit (from: number, buf: Buffer, o: number): number {
    const flags = buf[o + 1]
    const unitId = buf.readUInt32LE(o + 2)
    const seq = (flags & UNIT_STREAM) !== 0 ? buf.readUInt32LE(o + 6) : -1
    const tagLen = buf.readUInt16LE(o + 10)
    const tag = (flags & UNIT_TAG) !== 0 ? buf.toString('latin1', o + 12, o + 12 + tagLen) : null
    o += 12 + tagLen
    const nOps = buf.readUInt32LE(o)
    const opsStart = o + 8
    this.applyRemotePart(from, unitId, flags, seq, tag, buf, opsStart, nOps, 0)
    return opsStart + buf.readUInt32LE(o + 4)
  }

  /** Applies a part another shard or node sent, and answers it (durable writes after the commit). */
  private applyRemotePart (from: number, unitId: number, flags: number, seq: number, tag: string | null, buf: Buffer, opsStart: number, nOps: number, until: number): void {
    const read = (flags & UNIT_READ) !== 0
    const wantValues = (flags & UNIT_VALUES) !== 0
    const r = this.result
    let error: string | null = null
    try {
      if (this.waitsBehind(flags, tag)) throw WAIT_BEHIND
      if (read) this.shard.applyReads(buf, opsStart, nOps, r)
      else this.shard.applyWrites(buf, opsStart, nOps, tag, seq, wantValues, r)
    } catch (err) {
      if (isMoving(err) && this.park(from, null, unitId, flags, seq, tag, buf, opsStart, nOps, until)) return
      if (!isMoving(err)) this.o.logger.error({ err, from }, 'applying a unit from another shard failed')
      error = JSON.stringify(asCounterdError(err).toWire())
    }
    const box = this.outboxes[from] as RecordSender
    if (error !== null || read || !this.shard.holdsAcks) {
      writeReply(box.sink, unitId, r.dup, r.refused, wantValues && error === null ? r.values : null, nOps, error)
      box.endRecord()
    } else {
      let h = this.held[from]
      if (h === null || h.window !== this.shard.commit.window) {
        h = this.held[from] = new HeldReplies(this, from, this.shard.commit.window, this.losses[from])
        this.shard.whenDurable(h)
      }
      writeReply(h.sink, unitId, r.dup, r.refused, wantValues ? r.values : null, nOps, null)
    }
  }

  /** Held replies whose commit is durable go out to their shard. */
  release (h: HeldReplies): void {
    if (h.lossesSeen !== this.losses[h.to]) return // its peer link was lost meanwhile
    if (this.held[h.to] === h) this.held[h.to] = null
    const box = this.outboxes[h.to] as RecordSender
    box.sink.bytes(h.sink.buf, 0, h.sink.len)
    box.endRecord()
    this.scheduleFlush()
  }

  private onReply (from: number, buf: Buffer, o: number): number {
    const flags = buf[o + 1]
    const slot = buf.readUInt32LE(o + 2)
    const refused = buf.readUInt32LE(o + 6)
    o += 10
    let values: Float64Array | null = null
    let n = 0
    if ((flags & REPLY_VALUES) !== 0) {
      n = buf.readUInt32LE(o)
      o += 4
      if (this.replyValues.length < n) this.replyValues = new Float64Array(Math.max(n, this.replyValues.length * 2))
      values = this.replyValues
      for (let i = 0; i < n; i++, o += 8) values[i] = buf.readDoubleLE(o)
    }
    let err: CounterdError | null = null
    if ((flags & REPLY_ERROR) !== 0) {
      const len = buf.readUInt16LE(o)
      err = fromWire(JSON.parse(buf.toString('utf8', o + 2, o + 2 + len)) as WireError)
      o += 2 + len
    }
    const owner = this.slotOwner[slot]
    if (owner === null || owner === undefined) {
      this.o.logger.error({ from, slot }, 'a reply for no pending unit; ignored')
      return o
    }
    this.slotOwner[slot] = null
    this.freeSlots.push(slot)
    this.answered(this.slotRead[slot] === 1, this.slotOps[slot])
    this.o.observer?.forwarded((performance.now() - this.slotSent[slot]) / 1000, this.slotRead[slot] === 1)
    if (err === null) owner.onApplied(from, values, n, refused, (flags & REPLY_DUP) !== 0)
    owner.onPartDone(err)
    return o
  }

  private onControl (from: number, buf: Buffer, o: number): number {
    const id = buf.readUInt32LE(o + 1)
    const len = buf.readUInt32LE(o + 5)
    const { name, args } = JSON.parse(buf.toString('utf8', o + 9, o + 9 + len)) as { name: string, args: unknown }
    const answer = (ok: boolean, json: string): void => {
      const box = this.outboxes[from] as RecordSender
      writeControlReply(box.sink, id, ok, json)
      box.endRecord()
      this.scheduleFlush()
    }
    this.runHandler(name, args).then(
      (value) => answer(true, JSON.stringify(value ?? null)),
      (err: unknown) => answer(false, JSON.stringify(asCounterdError(err).toWire())))
    return o + 9 + len
  }

  private onControlReply (buf: Buffer, o: number): number {
    const id = buf.readUInt32LE(o + 1)
    const ok = buf[o + 5] === 1
    const len = buf.readUInt32LE(o + 6)
    const value: unknown = JSON.parse(buf.toString('utf8', o + 10, o + 10 + len))
    const pending = this.controls.get(id)
    if (pending !== undefined) {
      this.controls.delete(id)
      if (ok) pending.resolve(value)
      else pending.reject(fromWire(value as WireError))
    }
    return o + 10 + len
  }
}

/** Thrown (and caught as moving: the part parks) when a stream frame's part must wait behind an earlier one. */
const WAIT_BEHIND = new CounterdError('partition_moving', 'an earlier frame of this stream waits for a moving partition; this one waits behind it')

/** A unit refused because its partition is moving between nodes (ring mode): expected, not logged. */
function isMoving (err: unknown): boolean {
  return err instanceof CounterdError && err.code === 'partition_moving'
}

/** The offset just after the `n` encoded ops that start at buf[off]. */
function opsEnd (buf: Buffer, off: number, n: number): number {
  for (let i = 0; i < n; i++) off += opSize(buf, off)
  return off
}
