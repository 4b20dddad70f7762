// Collects the ops of one event-loop tick into one part per partition, and sends each actor host
// one write task and one read task per tick (never a message per op). Answers flow back to the
// unit owners (an HTTP request, a WebSocket frame) as each host replies.
import type { ActorHosts } from '../../actors/host'
import { OP_HAS_ARG, OP_HAS_DELTA, OP_HEADER_BYTES, OP_INCR, OP_INCR_ACTOR } from '../core/op-codec'
import type { HostTask, PartBatch, PartResult } from '../../actors/host-protocol'
import type { DeltaRecord } from '../core/records'
import { CounterdError, asCounterdError } from '../core/errors'

/** Whoever submitted a unit of ops; told once per partition part the unit was split into. */
export interface UnitOwner {
  /** res is null when the host failed (err set). first..end are op indexes inside res. */
  onPart: (res: PartResult | null, first: number, end: number, dup: boolean, err: CounterdError | null) => void
}

// Scratch for writing a float64's little-endian bytes without a Buffer call (x86 and ARM are LE).
const F64 = new Float64Array(1)
const F64_BYTES = new Uint8Array(F64.buffer)

class PartBuilder {
  buf: Buffer = Buffer.allocUnsafeSlow(4096)
  len = 0
  n = 0
  unitFirst = -1 // first op of the open unit in this part, -1 when the unit has none here
  ends: number[] = []
  tags: Array<string | null> = []
  seqs: number[] = []
  owners: UnitOwner[] = []
  wantValues = false

  constructor (readonly p: number) {}

  reserve (bytes: number): void {
    if (this.len + bytes <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.len + bytes) size *= 2
    const bigger = Buffer.allocUnsafeSlow(size)
    this.buf.copy(bigger, 0, 0, this.len)
    this.buf = bigger
  }
}

interface SentPart { ends: number[], owners: UnitOwner[] }
interface Outgoing { parts: PartBatch[], sent: SentPart[] } // one task's worth for one host

function take (out: Outgoing, b: PartBuilder): void {
  out.parts.push(toBatch(b))
  out.sent.push({ ends: b.ends, owners: b.owners })
}

export class Router {
  inflightOps = 0 // writes sent and not yet answered (acknowledged)
  inflightReads = 0 // reads, counted apart: a log outage holds writes, never reads
  private writes: Array<PartBuilder | null>
  private reads: Array<PartBuilder | null>
  private readonly touched: number[] = [] // partitions with a write or read builder this tick
  private readonly unitParts: number[] = [] // partitions the open unit has ops in
  private unitOwner: UnitOwner | null = null
  private unitTag: string | null = null
  private unitSeq = -1
  private unitWantValues = false
  private scheduled = false
  private readonly flushBound = (): void => this.flush()

  constructor (private readonly hosts: ActorHosts, readonly partitions: number) {
    this.writes = new Array(partitions).fill(null)
    this.reads = new Array(partitions).fill(null)
  }

  // ---- writes: beginUnit, then ops, then endUnit ----

  /** tag: stream clientId (with seq ≥ 0) or key + '\n' + Idempotency-Key (seq −1), or null. */
  beginUnit (owner: UnitOwner, tag: string | null, seq: number, wantValues: boolean): void {
    this.unitOwner = owner
    this.unitTag = tag
    this.unitSeq = seq
    this.unitWantValues = wantValues
    this.unitParts.length = 0
  }

  /** Starts an op in partition hash mod P; returns its builder with room for `bytes` more. */
  private writeOp (kind: number, hash: number, keyLen: number, bytes: number): PartBuilder {
    const b = this.writePart(hash % this.partitions)
    b.reserve(bytes)
    const buf = b.buf
    buf[b.len] = kind
    buf[b.len + 1] = keyLen
    buf.writeUInt32LE(hash, b.len + 2)
    b.len += OP_HEADER_BYTES
    b.n++
    return b
  }

  private writePart (p: number): PartBuilder {
    let b = this.writes[p]
    if (b === null) {
      b = this.writes[p] = new PartBuilder(p)
      this.touch(p)
    }
    if (b.unitFirst < 0) {
      b.unitFirst = b.n
      this.unitParts.push(p)
    }
    return b
  }

  /**
   * A write op (actors/protocol.ts) on the key "type:id" whose FNV-1a hash is `hash` (src/keys.ts);
   * `delta` for increments, `arg` (an actor or user id, ASCII) for the ops that take one.
   */
  write (kind: number, hash: number, key: string, delta = 0, arg: string | null = null): void {
    const b = this.writeOp(kind, hash, key.length, opBytes(kind, key, arg))
    b.len = writeOpBody(b.buf, b.len, kind, key, delta, arg)
  }

  increment (hash: number, key: string, delta: number, actor: string | null = null): void {
    this.write(actor === null ? OP_INCR : OP_INCR_ACTOR, hash, key, delta, actor)
  }

  /** An increment whose key is copied straight from a binary frame: type bytes, ':', id bytes. */
  // The stream's hot path: plain byte stores only (Buffer's write helpers cost more than the copy).
  incrementBytes (hash: number, src: Uint8Array, typeStart: number, typeLen: number, idStart: number, idLen: number, delta: number, actorStart = -1, actorLen = 0): void {
    const keyLen = typeLen + 1 + idLen
    const b = this.writePart(hash % this.partitions)
    b.reserve(OP_HEADER_BYTES + keyLen + 9 + actorLen)
    const buf = b.buf
    let o = b.len
    buf[o] = actorStart < 0 ? OP_INCR : OP_INCR_ACTOR
    buf[o + 1] = keyLen
    buf[o + 2] = hash
    buf[o + 3] = hash >>> 8
    buf[o + 4] = hash >>> 16
    buf[o + 5] = hash >>> 24
    o += OP_HEADER_BYTES
    for (let k = typeStart, end = typeStart + typeLen; k < end; k++) buf[o++] = src[k]
    buf[o++] = 0x3a // ':'
    for (let k = idStart, end = idStart + idLen; k < end; k++) buf[o++] = src[k]
    F64[0] = delta
    buf[o] = F64_BYTES[0]; buf[o + 1] = F64_BYTES[1]; buf[o + 2] = F64_BYTES[2]; buf[o + 3] = F64_BYTES[3]
    buf[o + 4] = F64_BYTES[4]; buf[o + 5] = F64_BYTES[5]; buf[o + 6] = F64_BYTES[6]; buf[o + 7] = F64_BYTES[7]
    o += 8
    if (actorStart >= 0) {
      buf[o++] = actorLen
      for (let k = actorStart, end = actorStart + actorLen; k < end; k++) buf[o++] = src[k]
    }
    b.len = o
    b.n++
  }

  /** Closes the unit; returns in how many parts its owner will be answered. */
  endUnit (): number {
    const owner = this.unitOwner as UnitOwner
    let ops = 0
    for (const p of this.unitParts) {
      const b = this.writes[p] as PartBuilder
      ops += b.n - b.unitFirst
      b.ends.push(b.n)
      b.tags.push(this.unitTag)
      b.seqs.push(this.unitSeq)
      b.owners.push(owner)
      b.wantValues ||= this.unitWantValues
      b.unitFirst = -1
    }
    this.inflightOps += ops
    this.unitOwner = null
    return this.unitParts.length
  }

  /** A counter's history series, asked of the host that owns it (not batched: rare and slow). */
  async history (hash: number, key: string, from: number, to: number, step: 'minute' | 'hour' | 'day'): Promise<Array<{ ts: number, value: number }>> {
    const host = this.hosts.hostOf(hash % this.partitions)
    try {
      return await this.hosts.run(host, { t: 'history', key, from, to, step }) as Array<{ ts: number, value: number }>
    } catch (err) {
      throw asCounterdError(err)
    }
  }

  /** Every replica's totals of a counter (GET …?replicas=true). */
  async replicas (hash: number, key: string): Promise<Array<{ replica: string, p: number, n: number }>> {
    const p = hash % this.partitions
    return await this.direct(p, { t: 'replicas', p, key }) as Array<{ replica: string, p: number, n: number }>
  }

  async sample (hash: number, key: string, n: number): Promise<string[]> {
    const p = hash % this.partitions
    return await this.direct(p, { t: 'sample', p, key, n }) as string[]
  }

  /** Top-k rising counters of every host, merged. */
  async top (type: string | null, k: number): Promise<Array<{ key: string, rate: number }>> {
    const all = await Promise.all(Array.from({ length: this.hosts.count }, async (_, h) => await this.hosts.run(h, { t: 'top', type, k }) as Array<{ key: string, rate: number }>))
    return all.flat().sort((a, b) => b.rate - a.rate).slice(0, k)
  }

  /** This replica's totals of every counter, as records another region can merge. */
  async exportTotals (): Promise<DeltaRecord[]> {
    const all = await Promise.all(Array.from({ length: this.hosts.count }, async (_, h) => await this.hosts.run(h, { t: 'export' }) as DeltaRecord[]))
    return all.flat()
  }

  /** Merges other replicas' records (grouped by host); resolves with counters changed, once durable. */
  async merge (records: DeltaRecord[]): Promise<number> {
    const byHost: DeltaRecord[][] = Array.from({ length: this.hosts.count }, () => [])
    for (const r of records) byHost[this.hosts.hostOf(r.partition)].push(r)
    const changed = await Promise.all(byHost.map(async (rs, h) => rs.length === 0 ? 0 : await this.hosts.run(h, { t: 'merge', records: rs }) as number))
    return changed.reduce((a, b) => a + b, 0)
  }

  private async direct (p: number, task: HostTask): Promise<unknown> {
    try {
      return await this.hosts.run(this.hosts.hostOf(p), task)
    } catch (err) {
      throw asCounterdError(err)
    }
  }

  // ---- reads: one op per unit ----

  /** A read op (OP_GET, OP_UNIQUE, …); its one value goes to `owner`. */
  read (kind: number, hash: number, key: string, owner: UnitOwner, arg: string | null = null): void {
    const p = hash % this.partitions
    let b = this.reads[p]
    if (b === null) {
      b = this.reads[p] = new PartBuilder(p)
      this.touch(p)
    }
    b.reserve(opBytes(kind, key, arg))
    b.buf[b.len] = kind
    b.buf[b.len + 1] = key.length
    b.buf.writeUInt32LE(hash, b.len + 2)
    b.len = writeOpBody(b.buf, b.len + OP_HEADER_BYTES, kind, key, 0, arg)
    b.n++
    b.ends.push(b.n)
    b.tags.push(null)
    b.seqs.push(-1)
    b.owners.push(owner)
    this.inflightReads++
  }

  private touch (p: number): void {
    this.touched.push(p)
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.flushBound)
    }
  }

  /** Sends this tick's parts: per host, writes first, then reads (a read sees the writes before it). */
  flush (): void {
    this.scheduled = false
    const hosts = this.hosts.count
    const writes: Outgoing[] = Array.from({ length: hosts }, () => ({ parts: [], sent: [] }))
    const reads: Outgoing[] = Array.from({ length: hosts }, () => ({ parts: [], sent: [] }))
    for (const p of this.touched) {
      const h = this.hosts.hostOf(p)
      const w = this.writes[p]
      if (w !== null) {
        this.writes[p] = null
        take(writes[h], w)
      }
      const r = this.reads[p]
      if (r !== null) {
        this.reads[p] = null
        take(reads[h], r)
      }
    }
    this.touched.length = 0
    for (let h = 0; h < hosts; h++) {
      if (writes[h].parts.length > 0) this.send(h, 'write', writes[h])
      if (reads[h].parts.length > 0) this.send(h, 'read', reads[h])
    }
  }

  private send (h: number, t: 'write' | 'read', out: Outgoing): void {
    // Each part's op buffer is transferred, not copied: the builder lets go of it at flush.
    const transferList = out.parts.map((pb) => pb.ops.buffer as ArrayBuffer)
    this.hosts.run(h, { t, parts: out.parts }, transferList).then(
      (results) => this.deliver(t, out.parts, out.sent, results as PartResult[] | null, null),
      (err) => this.deliver(t, out.parts, out.sent, null, asCounterdError(err))
    )
  }

  private deliver (t: 'write' | 'read', parts: PartBatch[], sent: SentPart[], results: PartResult[] | null, err: CounterdError | null): void {
    for (let i = 0; i < sent.length; i++) {
      const { ends, owners } = sent[i]
      // A write task with nothing to report (no values wanted, nothing refused, no resend) answers null.
      const res = results === null ? (err === null ? NO_NEWS : null) : results[i]
      const dups = res?.dups ?? []
      let first = 0
      let d = 0
      for (let u = 0; u < ends.length; u++) {
        const dup = d < dups.length && dups[d] === u
        if (dup) d++
        owners[u].onPart(res, first, ends[u], dup, err)
        first = ends[u]
      }
      if (t === 'write') this.inflightOps -= parts[i].n
      else this.inflightReads -= parts[i].n
    }
  }
}

function opBytes (kind: number, key: string, arg: string | null): number {
  return OP_HEADER_BYTES + key.length + (OP_HAS_DELTA[kind] ? 8 : 0) + (OP_HAS_ARG[kind] ? 1 + (arg?.length ?? 0) : 0)
}

/** Key, then delta and argument as the kind wants; returns the offset after the op. */
function writeOpBody (buf: Buffer, o: number, kind: number, key: string, delta: number, arg: string | null): number {
  o += buf.write(key, o, 'latin1')
  if (OP_HAS_DELTA[kind]) o = buf.writeDoubleLE(delta, o)
  if (OP_HAS_ARG[kind]) {
    const a = arg ?? ''
    buf[o] = a.length
    o += 1 + buf.write(a, o + 1, 'latin1')
  }
  return o
}

const NO_NEWS: PartResult = { values: null, refused: [], dups: [] }

function toBatch (b: PartBuilder): PartBatch {
  return { p: b.p, ops: new Uint8Array(b.buf.buffer, 0, b.len), n: b.n, ends: b.ends, tags: b.tags, seqs: b.seqs, wantValues: b.wantValues }
}

export { CounterdError }
