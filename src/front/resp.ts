// The Redis-protocol front (RESP2 and RESP3): a TCP listener whose connections speak to the same
// router as HTTP and the stream. A Redis key is the counter key "type:id".
//
// Per connection, commands are parsed in place from each chunk the socket delivers. Consecutive
// commands of the same kind (writes, or reads) in one chunk go to the router as one unit, so a
// pipeline of INCRs costs one unit, not one per command; a command of the other kind starts the
// next unit, which keeps every connection's commands applied in the order they were sent. Each
// unit (with the replies that need no router, such as PING, in between) is a Batch in the
// connection's queue; replies are written strictly in queue order, so a read whose shard answered
// at once still waits for the durable write sent before it (ack=durable: a write's reply is sent
// after its owner's commit).
import type { ApiKey, Scope } from '../core/api-keys'
import { valueParts } from '../core/hot-keys'
import { prefixHash, prefixOf } from '../core/namespaces'
import { chargeKey } from './auth'
import fs from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import os from 'node:os'
import { asCounterdError, CounterdError } from '../core/errors'
import { FNV_OFFSET, fnv1a32, fnv1a32Bytes, isIdByte, isTypeByte, MAX_ID_LEN, MAX_TYPE_LEN } from '../core/keys'
import { OP_ADD_ACTOR, OP_GET, OP_INCR, OP_RESET, OP_UNIQUE, ByteSink } from '../core/op-codec'
import {
  argIs, arrayHeader, bulkBytes, bulkInteger, bulkString, errorReply, INCOMPLETE, integer, mapHeader, nullReply, parseCommand,
  parseInteger, RespCommand, simpleString, verbatimText, writeValue, type RespValue
} from '../core/resp-codec'
import type { UnitOwner } from '../routing/router'
import { admit, overloaded, type FrontContext } from './context'
import { SumRead } from './pending'
import { arityOk, Cmd, COMMANDS, commandDocs, commandInfo, findCommand, lookupCommand, type CommandSpec } from './resp-commands'
import { redisError } from './resp-errors'
import { F_COUNTERS, F_INCREMENTS_ACKED, F_RESP_COMMANDS, F_RESP_CONNECTIONS, PHASE_READY } from './status-board'

// A connection stops being read while this many batches wait for their replies, or while this
// many reply bytes wait for the client to read them; pipelining of any depth then waits in the
// kernel's buffers instead of the node's memory.
const MAX_QUEUED_BATCHES = 256
const MAX_UNSENT_BYTES = 4 * 1024 * 1024
// A unit is sent once it holds this many ops (the next command starts another): the busy check
// before each unit then bounds how far a pipeline can push the node past half its limits.
const MAX_UNIT_OPS = 256

const VERSION = '7.0.0' // the Redis version whose commands and replies this front follows
const COUNTERD_VERSION = '0.1.0'

// How a command's reply is made from its ops' values (or stored bytes).
const R_STATIC = 0 // bytes in the batch's statics
const R_INCR = 1 // one op: the new value as an integer; NaN = refused (overflow)
const R_GET = 2 // one op: bulk string, nil for 0
const R_MGET = 3 // n ops: array of R_GET
const R_NONZERO = 4 // n ops: how many are not 0 (EXISTS, DEL)
const R_ANY_ONE = 5 // n ops: 1 if any is 1 (PFADD)
const R_NUMBER = 6 // one op: the value as an integer (PFCOUNT)

class RespConn {
  /** With AUTH_FILE: the scopes of the key given to AUTH; null until then */
  scopes: readonly Scope[] | null = null
  /** With AUTH_FILE: the key given to AUTH (its rate is charged per command) */
  apiKey: ApiKey | null = null
  /** The key's namespace prefix (src/core/namespaces.ts); null: none */
  prefix: Buffer | null = null
  seed = FNV_OFFSET // FNV-1a state after the prefix: the keys' hashes continue from it
  proto = 2
  name = ''
  libName = ''
  libVer = ''
  readonly queue: Batch[] = []
  head = 0
  cur: Batch | null = null // the batch commands of the chunk being parsed are added to
  pending: Buffer[] = [] // bytes received and not parsed yet (the start of a command)
  pendingBytes = 0
  need = 0 // parse again once this many bytes are pending
  parsing = false
  dirty = false
  closing = false // nothing more is read; the socket ends once the queue is written
  closed = false
  paused = false // not read: too many replies waiting
  stalled = false // not read: the router is too busy (retried on a timer)
  lastCommand = ''
  readonly createdAt = Date.now()

  constructor (readonly id: number, readonly socket: net.Socket) {}

  get queued (): number { return this.queue.length - this.head }
}

/** Commands of one connection answered together: at most one router unit, plus replies made at once. */
class Batch implements UnitOwner {
  parts = 0
  conn!: RespConn
  unit = false
  read = false
  done = false
  error: CounterdError | null = null
  n = 0
  kind = new Uint8Array(16)
  a = new Int32Array(16) // R_STATIC: start in statics; others: first op
  b = new Int32Array(16) // R_STATIC: end in statics; others: number of ops
  ops = 0
  values = new Float64Array(16)
  readonly shardOps: Int32Array[]
  shardN: Int32Array // grows when a target beyond this node's shards (a peer link) appears
  readonly statics = new ByteSink(256)

  constructor (readonly front: RespFront, shards: number) {
    this.shardOps = Array.from({ length: shards }, () => new Int32Array(16))
    this.shardN = new Int32Array(shards)
  }

  reset (conn: RespConn): void {
    this.conn = conn
    this.parts = 0
    this.unit = false
    this.read = false
    this.done = false
    this.error = null
    this.n = 0
    this.ops = 0
    this.shardN.fill(0)
    this.statics.len = 0
    this.keyed = false
    this.src = null
    this.prefix = conn.prefix
    if (this.folds.length > 0) this.folds = []
  }

  /** DEL of a split counter: pairs (part op, key op); the key was non-zero if any part was. */
  folds: number[] = []

  command (kind: number, a: number, b: number): void {
    if (this.n === this.kind.length) {
      const k = new Uint8Array(this.n * 2); k.set(this.kind); this.kind = k
      const a2 = new Int32Array(this.n * 2); a2.set(this.a); this.a = a2
      const b2 = new Int32Array(this.n * 2); b2.set(this.b); this.b = b2
    }
    this.kind[this.n] = kind
    this.a[this.n] = a
    this.b[this.n] = b
    this.n++
  }

  /** Registers an op on `shard`: its value will arrive in that shard's order. */
  op (shard: number): void {
    const i = this.ops++
    if (i === this.values.length) {
      const v = new Float64Array(i * 2); v.set(this.values); this.values = v
      const ks = new Int32Array(i * 2); ks.set(this.keyStart); this.keyStart = ks
      const kl = new Int32Array(i * 2); kl.set(this.keyLen); this.keyLen = kl
    }
    this.keyLen[i] = 0
    if (shard >= this.shardN.length) {
      const n = new Int32Array(shard + 1); n.set(this.shardN); this.shardN = n
      while (this.shardOps.length <= shard) this.shardOps.push(new Int32Array(16))
    }
    let list = this.shardOps[shard]
    const j = this.shardN[shard]++
    if (j === list.length) {
      const l = new Int32Array(j * 2); l.set(list); list = this.shardOps[shard] = l
    }
    list[j] = i
  }

  onApplied (shard: number, values: Float64Array | null, n: number): void {
    if (values === null) return
    const list = this.shardOps[shard]
    for (let j = 0; j < n; j++) this.values[list[j]] = values[j]
  }

  onPartDone (err: CounterdError | null): void {
    if (err !== null) this.error ??= err
    if (--this.parts > 0) return
    for (let f = 0; f < this.folds.length; f += 2) {
      if (this.values[this.folds[f]] !== 0) this.values[this.folds[f + 1]] = 1
      this.values[this.folds[f]] = 0
    }
    if (this.error === null && this.keyed) {
      // A split counter's home answers a read or an increment with its ways + 0.5
      // (src/core/hot-keys.ts): its value is the sum of its parts.
      const splits: Array<Promise<void>> = []
      for (let c = 0; c < this.n; c++) {
        const kind = this.kind[c]
        if (kind === R_STATIC) continue
        for (let i = this.a[c]; i < this.a[c] + this.b[c]; i++) {
          if (Number.isInteger(this.values[i]) || this.keyLen[i] === 0) continue
          const key = this.keyOf(i)
          // An increment answered its home's value + 0.5, a read its ways + 0.5.
          const home = kind === R_INCR ? Math.floor(this.values[i]) : null
          splits.push(this.front.readSplit(key, home).then((v) => { this.values[i] = v }))
        }
      }
      if (splits.length > 0) {
        Promise.all(splits).catch((e: CounterdError) => { this.error = e }).finally(() => this.complete())
        return
      }
    }
    this.complete()
  }

  private complete (): void {
    this.done = true
    this.front.completed(this.conn)
  }

  // Where the keys of reads and increments lie in the request bytes, when counters may be split
  // (HOT_SPLIT_RATE > 0): a key string is built only for the rare value that needs it, not per op.
  // Every op of a batch comes from one parse of one buffer, under one namespace prefix.
  keyed = false
  src: Buffer | null = null
  prefix: Buffer | null = null
  keyStart = new Int32Array(16)
  keyLen = new Int32Array(16) // 0: no key kept (the op cannot be a split counter's)

  /** Keeps where op i's key is (the op registered last). */
  keepKey (i: number, src: Buffer, start: number, len: number): void {
    this.keyed = true
    this.src = src
    this.keyStart[i] = start
    this.keyLen[i] = len
  }

  /** Op i's key as stored (with the namespace prefix). */
  private keyOf (i: number): string {
    const start = this.keyStart[i]
    const key = (this.src as Buffer).toString('latin1', start, start + this.keyLen[i])
    return this.prefix === null ? key : this.prefix.toString('latin1') + key
  }
}

export interface RespStats {
  connectionsReceived: number
  commandsProcessed: number
}

/** The RESP listener of a node (on one shard thread) and its connections. */
export class RespFront {
  private server: net.Server | null = null
  private readonly conns = new Set<RespConn>()
  private readonly cmd = new RespCommand()
  private readonly out = new ByteSink(64 * 1024) // replies of the connection being served
  private readonly scratch = Buffer.alloc(512) // a namespaced key (≤ 226 bytes) and its argument (≤ 128)
  private readonly spare: Batch[] = []
  private readonly dirty: RespConn[] = []
  private readonly stalled: RespConn[] = []
  private retryTimer: NodeJS.Timeout | null = null
  private readonly retryBound = (): void => this.retryStalled()
  private flushScheduled = false
  private nextId = 1
  private staticBatch: Batch | null = null
  private readonly startedAt = Date.now()
  readonly stats: RespStats = { connectionsReceived: 0, commandsProcessed: 0 }
  port = -1
  private readonly flushBound = (): void => this.flushDirty()

  constructor (private readonly ctx: FrontContext, private readonly httpPort: () => number) {}

  /** Listens on host:port (0: a free port); resolves with the port. */
  async listen (host: string, port: number): Promise<number> {
    // With TLS_CERT_FILE + TLS_KEY_FILE the Redis port speaks TLS only (as redis-server's tls-port).
    const { tlsCertFile, tlsKeyFile } = this.ctx.config
    const server = tlsCertFile === ''
      ? net.createServer({ noDelay: true }, (socket) => this.accept(socket))
      : tls.createServer({ noDelay: true, cert: fs.readFileSync(tlsCertFile), key: fs.readFileSync(tlsKeyFile) }, (socket) => this.accept(socket))
    server.on('tlsClientError', () => {}) // a client that fails the TLS handshake is simply disconnected
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host, port }, () => { server.off('error', reject); resolve() })
    })
    server.on('error', (err) => this.ctx.logger.error({ err }, 'RESP listener error'))
    this.server = server
    this.port = (server.address() as net.AddressInfo).port
    return this.port
  }

  /** Stops accepting connections (open ones keep being served while the node drains). */
  stopListening (): void {
    this.server?.close()
    this.server = null
  }

  /** Closes every connection now. */
  closeAll (): void {
    this.stopListening()
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.retryTimer = null
    for (const c of this.conns) c.socket.destroy()
  }

  private accept (socket: net.Socket): void {
    const conn = new RespConn(this.nextId++, socket)
    this.conns.add(conn)
    this.stats.connectionsReceived++
    this.ctx.metrics.add(F_RESP_CONNECTIONS)
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk))
    socket.on('drain', () => this.maybeResume(conn))
    socket.on('error', () => {}) // a reset by the client: 'close' follows
    socket.on('close', () => {
      conn.closed = true
      this.conns.delete(conn)
      this.ctx.metrics.add(F_RESP_CONNECTIONS, -1)
    })
  }

  // ---- reading ----

  private onData (conn: RespConn, chunk: Buffer): void {
    if (conn.closing || conn.closed) return
    conn.pending.push(chunk)
    conn.pendingBytes += chunk.length
    if (conn.stalled || conn.pendingBytes < conn.need) return
    this.parse(conn)
  }

  /** Executes every whole command pending on `conn`, unless the router is too busy to take more. */
  private parse (conn: RespConn): void {
    const buf = conn.pending.length === 1 ? conn.pending[0] : Buffer.concat(conn.pending, conn.pendingBytes)
    conn.pending.length = 0
    conn.pendingBytes = 0
    conn.need = 0
    const end = buf.length
    const cmd = this.cmd
    conn.parsing = true
    let o = 0
    let stalled = false
    try {
      while (o < end) {
        // Before a command that may begin a unit: a deep pipeline waits here while the rings or
        // the in-flight bound are half full, instead of having its units refused.
        const b = conn.cur
        if ((b === null || !b.unit || b.ops >= MAX_UNIT_OPS) && this.busy()) { stalled = true; break }
        const next = parseCommand(buf, o, end, cmd)
        if (next === INCOMPLETE) break
        o = next
        if (cmd.argc === 0) continue
        this.execute(conn, buf, cmd)
        if (conn.closing) break
      }
    } catch (err) {
      // Not RESP: the stream cannot be resynchronised. What came before is answered, then this
      // error, then the connection closes.
      this.replyError(conn, asCounterdError(err))
      conn.closing = true
    }
    this.endBatch(conn)
    if (!conn.closing && o < end) {
      conn.pending.push(Buffer.from(buf.subarray(o))) // a copy: the chunk is not kept alive for a few bytes
      conn.pendingBytes = end - o
      conn.need = stalled ? 0 : cmd.need
    }
    conn.parsing = false
    if (stalled) this.stall(conn)
    this.write(conn)
  }

  private busy (): boolean {
    const g = this.ctx.inflight
    return this.ctx.router.congested || g.writes > g.max / 2 || g.reads > g.max / 2
  }

  private stall (conn: RespConn): void {
    conn.stalled = true
    conn.socket.pause()
    this.stalled.push(conn)
    this.retryTimer ??= setTimeout(this.retryBound, 1)
  }

  /** Parses the stalled connections again once the router has room. */
  private retryStalled (): void {
    this.retryTimer = null
    if (this.busy()) { this.retryTimer = setTimeout(this.retryBound, 1); return }
    const list = this.stalled.splice(0)
    for (const conn of list) {
      conn.stalled = false
      if (conn.closed || conn.closing) continue
      this.parse(conn)
      if (!conn.stalled) this.maybeResume(conn)
    }
  }

  // ---- replies ----

  /** A batch of `conn` is complete (from a router callback): written at the end of this task. */
  completed (conn: RespConn): void {
    if (conn.parsing || conn.dirty) return
    conn.dirty = true
    this.dirty.push(conn)
    if (!this.flushScheduled) {
      this.flushScheduled = true
      queueMicrotask(this.flushBound)
    }
  }

  private flushDirty (): void {
    this.flushScheduled = false
    for (let i = 0; i < this.dirty.length; i++) {
      const conn = this.dirty[i]
      conn.dirty = false
      this.write(conn)
    }
    this.dirty.length = 0
  }

  /** Writes every reply that is ready, in order: the direct ones, then complete batches up to the first incomplete. */
  private write (conn: RespConn): void {
    const out = this.out
    const q = conn.queue
    while (conn.head < q.length && q[conn.head].done) {
      const b = q[conn.head++]
      if (!conn.closed) this.encode(b, out)
      b.src = null // the request bytes are not kept alive by a spare batch
      this.spare.push(b)
    }
    if (conn.head === q.length) { q.length = 0; conn.head = 0 }
    if (out.len > 0) {
      if (!conn.closed) {
        const bytes = Buffer.allocUnsafe(out.len)
        out.buf.copy(bytes, 0, 0, out.len)
        conn.socket.write(bytes)
      }
      out.len = 0
    }
    if (conn.closed) return
    if (conn.closing) {
      if (conn.queued === 0) conn.socket.end()
      return
    }
    if (!conn.paused && (conn.queued >= MAX_QUEUED_BATCHES || conn.socket.writableLength > MAX_UNSENT_BYTES)) {
      conn.paused = true
      conn.socket.pause()
    } else {
      this.maybeResume(conn)
    }
  }

  private maybeResume (conn: RespConn): void {
    if (conn.paused && !conn.closing && conn.queued < MAX_QUEUED_BATCHES / 2 && conn.socket.writableLength <= MAX_UNSENT_BYTES) {
      conn.paused = false
    }
    if (!conn.paused && !conn.stalled && !conn.closing && conn.socket.isPaused()) conn.socket.resume()
  }

  private encode (b: Batch, out: ByteSink): void {
    const proto = b.conn.proto
    const v = b.values
    let incrs = 0
    for (let i = 0; i < b.n; i++) {
      const kind = b.kind[i]
      if (kind === R_STATIC) { out.bytes(b.statics.buf, b.a[i], b.b[i]); continue }
      if (b.error !== null) { errorReply(out, redisError(b.error)); continue }
      const first = b.a[i]
      const n = b.b[i]
      switch (kind) {
        case R_INCR:
          if (Number.isNaN(v[first])) errorReply(out, redisError(new CounterdError('value_out_of_range')))
          else { integer(out, v[first]); incrs++ }
          break
        case R_GET:
          if (v[first] === 0) nullReply(out, proto)
          else bulkInteger(out, v[first])
          break
        case R_MGET:
          arrayHeader(out, n)
          for (let j = first; j < first + n; j++) {
            if (v[j] === 0) nullReply(out, proto)
            else bulkInteger(out, v[j])
          }
          break
        case R_NONZERO: {
          let c = 0
          for (let j = first; j < first + n; j++) if (v[j] !== 0) c++
          integer(out, c)
          break
        }
        case R_ANY_ONE: {
          let any = 0
          for (let j = first; j < first + n; j++) if (v[j] === 1) any = 1
          integer(out, any)
          break
        }
        default:
          integer(out, v[first])
      }
    }
    if (incrs > 0) this.ctx.metrics.add(F_INCREMENTS_ACKED, incrs)
  }

  // ---- batches ----

  private newBatch (conn: RespConn): Batch {
    const b = this.spare.pop() ?? new Batch(this, this.ctx.router.shards)
    b.reset(conn)
    conn.queue.push(b)
    conn.cur = b
    return b
  }

  /** Sends the current batch's unit (if any); a batch without one is complete at once. */
  private endBatch (conn: RespConn): void {
    const b = conn.cur
    if (b === null) return
    conn.cur = null
    if (!b.unit) { b.done = true; return }
    if (!this.ctx.router.endUnit()) {
      b.error = overloaded()
      b.done = true
    }
  }

  /**
   * The batch the next router command goes to, its unit begun, or null when the node refuses
   * new work (the error is then the command's reply).
   */
  private unitBatch (conn: RespConn, read: boolean): Batch | CounterdError {
    let b = conn.cur
    if (b !== null && b.unit && (b.read !== read || b.ops >= MAX_UNIT_OPS)) { this.endBatch(conn); b = null }
    if (b === null || !b.unit) {
      const refused = admit(this.ctx)
      if (refused !== null) return refused
      b ??= this.newBatch(conn)
      b.unit = true
      b.read = read
      this.ctx.router.beginUnit(b, null, -1, true, read)
    }
    return b
  }

  /** The sink a reply made at once goes to: straight out when nothing is waiting, else a batch. */
  private staticSink (conn: RespConn): ByteSink {
    if (conn.cur === null && conn.queued === 0) { this.staticBatch = null; return this.out }
    const b = conn.cur ?? this.newBatch(conn)
    this.staticBatch = b
    b.command(R_STATIC, b.statics.len, 0)
    return b.statics
  }

  private staticDone (): void {
    const b = this.staticBatch
    if (b !== null) b.b[b.n - 1] = b.statics.len
    this.staticBatch = null
  }

  private replyError (conn: RespConn, err: CounterdError): void {
    errorReply(this.staticSink(conn), redisError(err))
    this.staticDone()
  }

  private replyOk (conn: RespConn, text = 'OK'): void {
    simpleString(this.staticSink(conn), text)
    this.staticDone()
  }

  private replyInt (conn: RespConn, v: number): void {
    integer(this.staticSink(conn), v)
    this.staticDone()
  }

  private replyValue (conn: RespConn, v: RespValue): void {
    writeValue(this.staticSink(conn), v, conn.proto)
    this.staticDone()
  }

  // ---- commands ----

  private execute (conn: RespConn, buf: Buffer, cmd: RespCommand): void {
    this.ctx.metrics.add(F_RESP_COMMANDS)
    this.stats.commandsProcessed++
    const spec = lookupCommand(buf, cmd.start[0], cmd.len[0])
    if (spec === undefined) { this.replyError(conn, unknownCommand(buf, cmd)); return }
    if (!arityOk(spec, cmd.argc)) {
      this.replyError(conn, new CounterdError('wrong_arity', `wrong number of arguments for '${spec.name.toLowerCase()}' command`))
      return
    }
    const verifier = this.ctx.auth
    if (verifier !== null && spec.id !== Cmd.AUTH && spec.id !== Cmd.HELLO && spec.id !== Cmd.QUIT && spec.id !== Cmd.RESET) {
      if (conn.scopes === null) { this.replyError(conn, new CounterdError('unauthorized')); return }
      const need = spec.flags.includes('write') ? 'write' : spec.flags.includes('readonly') ? 'read' : null
      if (need !== null && !conn.scopes.includes(need)) { this.replyError(conn, new CounterdError('forbidden', `this key lacks the ${need} scope`)); return }
      if (need !== null && conn.apiKey !== null) {
        const limited = chargeKey(this.ctx, conn.apiKey, 1)
        if (limited !== null) { this.replyError(conn, limited); return }
      }
    }
    switch (spec.id) {
      case Cmd.INCR: this.increment(conn, buf, cmd, 1); return
      case Cmd.DECR: this.increment(conn, buf, cmd, -1); return
      case Cmd.INCRBY: case Cmd.DECRBY: {
        const by = parseInteger(buf, cmd.start[2], cmd.len[2])
        if (Number.isNaN(by)) { this.replyError(conn, new CounterdError('invalid_delta')); return }
        this.increment(conn, buf, cmd, spec.id === Cmd.INCRBY ? by : -by)
        return
      }
      case Cmd.GET: this.keysOp(conn, buf, cmd, OP_GET, true, R_GET, 1, 2); return
      case Cmd.MGET: this.keysOp(conn, buf, cmd, OP_GET, true, R_MGET, 1, cmd.argc); return
      case Cmd.EXISTS: this.keysOp(conn, buf, cmd, OP_GET, true, R_NONZERO, 1, cmd.argc); return
      case Cmd.DEL: this.keysOp(conn, buf, cmd, OP_RESET, false, R_NONZERO, 1, cmd.argc); return
      case Cmd.PFCOUNT:
        if (cmd.argc > 2) { this.replyError(conn, new CounterdError('invalid_argument', 'PFCOUNT of several keys (a union) is not supported: count one key at a time')); return }
        this.keysOp(conn, buf, cmd, OP_UNIQUE, true, R_NUMBER, 1, 2)
        return
      case Cmd.PFADD: this.pfadd(conn, buf, cmd); return
      case Cmd.OTHER_TYPE: {
        const bad = checkKey(buf, cmd.start[1], cmd.len[1])
        this.replyError(conn, bad < 0 ? invalidKey(buf, cmd.start[1], cmd.len[1]) : new CounterdError('wrong_type'))
        return
      }
      default: this.connectionCommand(conn, buf, cmd, spec)
    }
  }

  private increment (conn: RespConn, buf: Buffer, cmd: RespCommand, by: number): void {
    const ks = cmd.start[1]
    const kl = cmd.len[1]
    const hash = checkKey(buf, ks, kl, conn.seed)
    if (hash < 0) { this.replyError(conn, invalidKey(buf, ks, kl)); return }
    const b = this.unitBatch(conn, false)
    if (b instanceof CounterdError) { this.replyError(conn, b); return }
    b.command(R_INCR, b.ops, 1)
    b.op(this.shardOfHash(hash))
    if (this.ctx.router.hot !== null) b.keepKey(b.ops - 1, buf, ks, kl)
    this.opFromBytes(conn, OP_INCR, hash, buf, ks, kl, by, -1, 0)
  }

  /** One op of `kind` per key argument from..to−1 (all keys checked first: a bad one changes nothing). */
  private keysOp (conn: RespConn, buf: Buffer, cmd: RespCommand, kind: number, read: boolean, reply: number, from: number, to: number): void {
    for (let i = from; i < to; i++) {
      if (checkKey(buf, cmd.start[i], cmd.len[i]) < 0) { this.replyError(conn, invalidKey(buf, cmd.start[i], cmd.len[i])); return }
    }
    const b = this.unitBatch(conn, read)
    if (b instanceof CounterdError) { this.replyError(conn, b); return }
    b.command(reply, b.ops, to - from)
    const keyed = read && this.ctx.router.hot !== null
    for (let i = from; i < to; i++) {
      const hash = checkKey(buf, cmd.start[i], cmd.len[i], conn.seed)
      b.op(this.shardOfHash(hash))
      if (keyed) b.keepKey(b.ops - 1, buf, cmd.start[i], cmd.len[i])
      this.opFromBytes(conn, kind, hash, buf, cmd.start[i], cmd.len[i], 0, -1, 0)
    }
    if (kind === OP_RESET && this.ctx.router.hot !== null) this.resetSplitParts(conn, b, buf, cmd, from, to)
  }

  /**
   * DEL of a split counter this thread knows of resets every part too, as HTTP DELETE does (in the
   * same unit); the key's answer folds them in (Batch.folds). DEL is rare: key strings are fine here.
   */
  private resetSplitParts (conn: RespConn, b: Batch, buf: Buffer, cmd: RespCommand, from: number, to: number): void {
    const hot = this.ctx.router.hot
    if (hot === null) return
    const first = b.ops - (to - from)
    for (let i = from; i < to; i++) {
      const key = buf.toString('latin1', cmd.start[i], cmd.start[i] + cmd.len[i])
      const split = hot.get(conn.prefix === null ? key : conn.prefix.toString('latin1') + key)
      if (split === undefined) continue
      for (const part of valueParts(split.names)) {
        const hash = fnv1a32(part)
        b.op(this.shardOfHash(hash))
        this.ctx.router.op(OP_RESET, hash, part)
        b.folds.push(b.ops - 1, first + i - from)
      }
    }
    b.b[b.n - 1] = b.ops - first
  }

  /** The value of a split counter (every part read and summed; `home`: see SumRead). */
  async readSplit (key: string, home: number | null): Promise<number> {
    return await new Promise<number>((resolve, reject) => {
      new SumRead(key, resolve, reject, home).start(this.ctx.router)
    })
  }

  private pfadd (conn: RespConn, buf: Buffer, cmd: RespCommand): void {
    const ks = cmd.start[1]
    const kl = cmd.len[1]
    const hash = checkKey(buf, ks, kl, conn.seed)
    if (hash < 0) { this.replyError(conn, invalidKey(buf, ks, kl)); return }
    for (let i = 2; i < cmd.argc; i++) {
      if (!validActor(buf, cmd.start[i], cmd.len[i])) {
        this.replyError(conn, new CounterdError('invalid_actor', `invalid element '${buf.toString('latin1', cmd.start[i], cmd.start[i] + Math.min(cmd.len[i], 64))}': an actor must match [A-Za-z0-9_.:-]{1,128}`))
        return
      }
    }
    // No element: nothing to add (Redis would create an empty HyperLogLog; a counter has one already).
    if (cmd.argc === 2) { this.replyInt(conn, 0); return }
    const b = this.unitBatch(conn, false)
    if (b instanceof CounterdError) { this.replyError(conn, b); return }
    b.command(R_ANY_ONE, b.ops, cmd.argc - 2)
    const shard = this.shardOfHash(hash)
    for (let i = 2; i < cmd.argc; i++) {
      b.op(shard)
      this.opFromBytes(conn, OP_ADD_ACTOR, hash, buf, ks, kl, 0, cmd.start[i], cmd.len[i])
    }
  }

  /**
   * An op on a key (and argument) of the request's bytes. With a namespace the key goes behind its
   * prefix first (copied to a scratch buffer the router copies from at once); without, straight.
   */
  private opFromBytes (conn: RespConn, kind: number, hash: number, buf: Buffer, ks: number, kl: number, delta: number, as: number, al: number): void {
    const prefix = conn.prefix
    if (prefix === null) { this.ctx.router.opFromBytes(kind, hash, buf, ks, kl, delta, as, al); return }
    const s = this.scratch
    prefix.copy(s, 0)
    buf.copy(s, prefix.length, ks, ks + kl)
    const keyLen = prefix.length + kl
    if (as >= 0) buf.copy(s, keyLen, as, as + al)
    this.ctx.router.opFromBytes(kind, hash, s, 0, keyLen, delta, as < 0 ? -1 : keyLen, al)
  }

  private shardOfHash (hash: number): number {
    return this.ctx.router.shardOf(hash % this.ctx.config.partitions)
  }

  /** Commands about the connection or the server: answered at once. */
  private connectionCommand (conn: RespConn, buf: Buffer, cmd: RespCommand, spec: CommandSpec): void {
    const arg = (i: number): string => buf.toString('utf8', cmd.start[i], cmd.start[i] + cmd.len[i])
    const is = (i: number, word: string): boolean => argIs(buf, cmd.start[i], cmd.len[i], word)
    switch (spec.id) {
      case Cmd.PING:
        if (cmd.argc > 2) { this.replyError(conn, new CounterdError('wrong_arity', "wrong number of arguments for 'ping' command")); return }
        if (cmd.argc === 1) { this.replyOk(conn, 'PONG'); return }
        bulkBytes(this.staticSink(conn), buf, cmd.start[1], cmd.len[1])
        this.staticDone()
        return
      case Cmd.ECHO:
        bulkBytes(this.staticSink(conn), buf, cmd.start[1], cmd.len[1])
        this.staticDone()
        return
      case Cmd.QUIT:
        this.replyOk(conn)
        conn.closing = true
        return
      case Cmd.RESET:
        conn.proto = 2
        conn.name = ''
        conn.scopes = null
        conn.apiKey = null
        this.endBatch(conn) // a batch's keys are under one prefix
        conn.prefix = null
        conn.seed = FNV_OFFSET
        this.replyOk(conn, 'RESET')
        return
      case Cmd.SELECT: {
        const db = parseInteger(buf, cmd.start[1], cmd.len[1])
        if (Number.isNaN(db)) this.replyError(conn, new CounterdError('invalid_delta'))
        else if (db !== 0) this.replyError(conn, new CounterdError('invalid_argument', 'DB index is out of range'))
        else this.replyOk(conn)
        return
      }
      case Cmd.AUTH:
        if (this.ctx.auth !== null) {
          // With AUTH_FILE: AUTH <key>, or AUTH <user> <key> with the user ignored (keys have no users).
          if (cmd.argc !== 2 && cmd.argc !== 3) { this.replyError(conn, new CounterdError('syntax_error')); return }
          const key = this.ctx.auth.find(arg(cmd.argc - 1))
          if (key === null) { this.replyError(conn, new CounterdError('wrong_password')); return }
          conn.scopes = key.scopes
          conn.apiKey = key
          this.endBatch(conn) // a batch's keys are under one prefix
          conn.prefix = Buffer.from(prefixOf(key.namespace), 'latin1')
          conn.seed = prefixHash(key.namespace)
          this.replyOk(conn)
        } else if (cmd.argc === 2) this.replyError(conn, new CounterdError('auth_not_configured'))
        // With no password set, the default user takes any password; other users do not exist.
        else if (cmd.argc === 3 && arg(1) === 'default') this.replyOk(conn)
        else if (cmd.argc === 3) this.replyError(conn, new CounterdError('wrong_password'))
        else this.replyError(conn, new CounterdError('syntax_error'))
        return
      case Cmd.HELLO: this.hello(conn, buf, cmd, arg, is); return
      case Cmd.CLIENT: this.client(conn, cmd, arg, is); return
      case Cmd.COMMAND: this.command(conn, cmd, arg, is); return
      case Cmd.INFO: {
        const sections: string[] = []
        for (let i = 1; i < cmd.argc; i++) sections.push(arg(i).toLowerCase())
        verbatimText(this.staticSink(conn), this.info(sections), conn.proto)
        this.staticDone()
        return
      }
      case Cmd.CONFIG: this.config(conn, cmd, arg, is); return
      case Cmd.DBSIZE: this.replyInt(conn, this.ctx.board.sum(F_COUNTERS)); return
    }
  }

  private hello (conn: RespConn, buf: Buffer, cmd: RespCommand, arg: (i: number) => string, is: (i: number, w: string) => boolean): void {
    let proto = conn.proto
    if (cmd.argc >= 2) {
      const v = parseInteger(buf, cmd.start[1], cmd.len[1])
      if (Number.isNaN(v)) { this.replyError(conn, new CounterdError('invalid_argument', 'Protocol version is not an integer or out of range')); return }
      if (v !== 2 && v !== 3) { this.replyError(conn, new CounterdError('unsupported_protocol')); return }
      proto = v
    }
    let name: string | null = null
    for (let i = 2; i < cmd.argc; i++) {
      if (is(i, 'AUTH') && i + 2 < cmd.argc) {
        if (arg(i + 1) !== 'default') { this.replyError(conn, new CounterdError('wrong_password')); return }
        i += 2
      } else if (is(i, 'SETNAME') && i + 1 < cmd.argc) {
        name = arg(++i)
        if (!validClientName(name)) { this.replyError(conn, new CounterdError('invalid_argument', 'Client names cannot contain spaces, newlines or special characters.')); return }
      } else {
        this.replyError(conn, new CounterdError('syntax_error', `Syntax error in HELLO option '${arg(i)}'`))
        return
      }
    }
    conn.proto = proto
    if (name !== null) conn.name = name
    this.replyValue(conn, { server: 'redis', version: VERSION, proto, id: conn.id, mode: 'standalone', role: 'master', modules: [] })
  }

  private client (conn: RespConn, cmd: RespCommand, arg: (i: number) => string, is: (i: number, w: string) => boolean): void {
    const wrongArity = (): void => this.replyError(conn, new CounterdError('wrong_arity', `wrong number of arguments for 'client|${arg(1).toLowerCase()}' command`))
    if (is(1, 'SETNAME')) {
      if (cmd.argc !== 3) { wrongArity(); return }
      const name = arg(2)
      if (!validClientName(name)) { this.replyError(conn, new CounterdError('invalid_argument', 'Client names cannot contain spaces, newlines or special characters.')); return }
      conn.name = name
      this.replyOk(conn)
    } else if (is(1, 'GETNAME')) {
      if (conn.name === '') { nullReply(this.staticSink(conn), conn.proto); this.staticDone() } else this.replyValue(conn, conn.name)
    } else if (is(1, 'SETINFO')) {
      if (cmd.argc !== 4) { wrongArity(); return }
      if (is(2, 'LIB-NAME')) conn.libName = arg(3)
      else if (is(2, 'LIB-VER')) conn.libVer = arg(3)
      else { this.replyError(conn, new CounterdError('invalid_argument', `Unrecognized option '${arg(2)}'`)); return }
      this.replyOk(conn)
    } else if (is(1, 'ID')) {
      this.replyInt(conn, conn.id)
    } else if (is(1, 'INFO')) {
      this.replyValue(conn, this.clientLine(conn) + '\n')
    } else if (is(1, 'LIST')) {
      let text = ''
      for (const c of this.conns) text += this.clientLine(c) + '\n'
      this.replyValue(conn, text)
    } else {
      this.replyError(conn, new CounterdError('invalid_argument', `unknown subcommand '${arg(1)}'. Try CLIENT HELP.`))
    }
  }

  private clientLine (c: RespConn): string {
    const s = c.socket
    return `id=${c.id} addr=${s.remoteAddress ?? ''}:${s.remotePort ?? 0} laddr=${s.localAddress ?? ''}:${s.localPort ?? 0} ` +
      `name=${c.name} age=${Math.floor((Date.now() - c.createdAt) / 1000)} db=0 resp=${c.proto} lib-name=${c.libName} lib-ver=${c.libVer}`
  }

  private command (conn: RespConn, cmd: RespCommand, arg: (i: number) => string, is: (i: number, w: string) => boolean): void {
    if (cmd.argc === 1) { this.replyValue(conn, COMMANDS.map(commandInfo)); return }
    if (is(1, 'COUNT')) { this.replyInt(conn, COMMANDS.length); return }
    if (is(1, 'LIST')) { this.replyValue(conn, COMMANDS.map((c) => c.name.toLowerCase())); return }
    if (is(1, 'INFO')) {
      const out: RespValue[] = []
      for (let i = 2; i < cmd.argc; i++) { const c = findCommand(arg(i)); out.push(c === undefined ? null : commandInfo(c)) }
      this.replyValue(conn, cmd.argc === 2 ? COMMANDS.map(commandInfo) : out)
      return
    }
    if (is(1, 'DOCS')) {
      const docs: Record<string, RespValue> = {}
      const wanted = cmd.argc === 2 ? COMMANDS : Array.from({ length: cmd.argc - 2 }, (_, i) => findCommand(arg(i + 2)))
      for (const c of wanted) if (c !== undefined) docs[c.name.toLowerCase()] = commandDocs(c)
      this.replyValue(conn, docs)
      return
    }
    this.replyError(conn, new CounterdError('invalid_argument', `unknown subcommand '${arg(1)}'. Try COMMAND HELP.`))
  }

  private config (conn: RespConn, cmd: RespCommand, arg: (i: number) => string, is: (i: number, w: string) => boolean): void {
    if (!is(1, 'GET')) { this.replyError(conn, new CounterdError('invalid_argument', `unknown subcommand '${arg(1)}': counterd answers CONFIG GET only; its settings come from the environment`)); return }
    const durable = this.ctx.config.ackMode === 'durable'
    const known: Record<string, string> = { save: '', appendonly: durable ? 'yes' : 'no', appendfsync: durable ? 'always' : 'no', databases: '1' }
    const pairs: Record<string, RespValue> = {}
    for (let i = 2; i < cmd.argc; i++) {
      const name = arg(i).toLowerCase()
      if (known[name] !== undefined) pairs[name] = known[name]
    }
    const out = this.staticSink(conn)
    const keys = Object.keys(pairs)
    mapHeader(out, keys.length, conn.proto)
    for (const k of keys) { bulkString(out, k); bulkString(out, pairs[k] as string) }
    this.staticDone()
  }

  private info (sections: string[]): string {
    const all = sections.length === 0 || sections.some((s) => s === 'all' || s === 'everything' || s === 'default')
    const want = (s: string): boolean => all || sections.includes(s)
    const { board, config } = this.ctx
    const parts: string[] = []
    if (want('server')) {
      const uptime = Math.floor((Date.now() - this.startedAt) / 1000)
      parts.push(['# Server', `redis_version:${VERSION}`, `counterd_version:${COUNTERD_VERSION}`, 'redis_mode:standalone',
        `os:${os.type()} ${os.release()} ${os.arch()}`, 'arch_bits:64', `process_id:${process.pid}`, `tcp_port:${this.port}`,
        `http_port:${this.httpPort()}`, `uptime_in_seconds:${uptime}`, `uptime_in_days:${Math.floor(uptime / 86400)}`,
        `ack_mode:${config.ackMode}`, `partitions:${config.partitions}`, `shards:${board.shards}`].join('\r\n'))
    }
    if (want('clients')) {
      parts.push(['# Clients', `connected_clients:${this.conns.size}`, 'blocked_clients:0'].join('\r\n'))
    }
    if (want('persistence')) {
      parts.push(['# Persistence', `loading:${board.nodePhase === PHASE_READY ? 0 : 1}`,
        `aof_enabled:${config.ackMode === 'durable' ? 1 : 0}`].join('\r\n'))
    }
    if (want('stats')) {
      parts.push(['# Stats', `total_connections_received:${this.stats.connectionsReceived}`,
        `total_commands_processed:${this.stats.commandsProcessed}`, `increments_acked:${board.sum(F_INCREMENTS_ACKED)}`,
        'rejected_connections:0'].join('\r\n'))
    }
    if (want('keyspace')) {
      const keys = board.sum(F_COUNTERS)
      parts.push('# Keyspace' + (keys > 0 ? `\r\ndb0:keys=${keys},expires=0,avg_ttl=0` : ''))
    }
    return parts.join('\r\n\r\n') + '\r\n'
  }
}

// ---- validation straight from request bytes ----

/**
 * The FNV-1a hash of a valid key "type:id" at buf[start…start+len) (continued from `seed`: a
 * namespace's prefix), or −1 when it breaks the key rules.
 */
function checkKey (buf: Uint8Array, start: number, len: number, seed = FNV_OFFSET): number {
  const end = start + len
  let i = start
  while (i < end && buf[i] !== 0x3a) {
    if (!isTypeByte(buf[i])) return -1
    i++
  }
  const typeLen = i - start
  const idLen = end - i - 1
  if (typeLen < 1 || typeLen > MAX_TYPE_LEN || idLen < 1 || idLen > MAX_ID_LEN) return -1
  for (let k = i + 1; k < end; k++) if (!isIdByte(buf[k])) return -1
  return fnv1a32Bytes(seed, buf, start, end) >>> 0
}

function validActor (buf: Uint8Array, start: number, len: number): boolean {
  if (len < 1 || len > MAX_ID_LEN) return false
  for (let k = start; k < start + len; k++) if (!isIdByte(buf[k])) return false
  return true
}

function validClientName (name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    if (c < 0x21 || c > 0x7e) return false
  }
  return true
}

function quoted (buf: Buffer, start: number, len: number): string {
  return `'${buf.toString('utf8', start, start + Math.min(len, 128))}'`
}

function invalidKey (buf: Buffer, start: number, len: number): CounterdError {
  return new CounterdError('invalid_key',
    `invalid key ${quoted(buf, start, len)}: a key must be "type:id" with type [a-z0-9_-]{1,32} and id [A-Za-z0-9_.:-]{1,128}`)
}

function unknownCommand (buf: Buffer, cmd: RespCommand): CounterdError {
  let args = ''
  for (let i = 1; i < cmd.argc && args.length < 128; i++) args += quoted(buf, cmd.start[i], cmd.len[i]) + ' '
  return new CounterdError('unknown_command', `unknown command ${quoted(buf, cmd.start[0], cmd.len[0])}, with args beginning with: ${args}`)
}
