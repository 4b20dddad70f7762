// WebSocket /v1/stream: many increments per frame, JSON or compact binary (docs/stream-protocol.md).
// Each frame is acked once, after every op in it is applied (ack=applied) or durable (ack=durable).
// A frame that fails validation is answered with an error ack and touches no state; a frame that
// cannot even be read (no seq to answer) closes the connection with 1007 and a reason.
import { performance } from 'node:perf_hooks'
import { CounterdError } from '../core/errors'
import { isValidId } from '../core/keys'
import { decodeBinaryFrame, encodeAckError, encodeAckOk } from '../core/binary-frame'
import { decodeJsonFrame } from '../core/json-frame'
import { FrameOps } from '../core/frame-ops'
import { OP_INCR, OP_INCR_ACTOR } from '../core/op-codec'
import type { UnitOwner } from '../routing/router'
import type { ApiKey } from '../core/api-keys'
import { prefixHash, prefixOf, qualify } from '../core/namespaces'
import { authenticate, bearerOf, chargeKey } from './auth'
import { admit, overloaded, type FrontContext } from './context'
import { F_INCREMENTS_ACKED, F_WS_CONNECTIONS, F_WS_FRAMES, F_WS_OPS } from './status-board'
import { uws, type HttpRequest, type HttpResponse, type TemplatedApp, type WebSocket } from './uws'

export interface StreamConn {
  clientId: string | null // set: resent frames (same clientId, same seq) count once; namespaced as the keys
  /** With AUTH_FILE: the key the upgrade gave (its rate is charged per op) */
  apiKey: ApiKey | null
  /** The namespace's key prefix ('' and null on an open node) and the FNV-1a state after it */
  prefix: string
  prefixBytes: Buffer | null
  seed: number
  inflight: number
  open: boolean
  done: FrameAck[] // frames answered and not yet acked: sent together (AckBatcher)
}

const CLOSE_INVALID_DATA = 1007
const CLOSE_POLICY = 1008
const CLOSE_TOO_BIG = 1009
const CLOSE_GOING_AWAY = 1001

/** One frame waiting for its parts to be applied (or durable). */
class FrameAck implements UnitOwner {
  parts = 0
  refusedOps = 0
  error: CounterdError | null = null
  readonly t0 = performance.now()

  constructor (readonly ctx: FrontContext, readonly batcher: AckBatcher, readonly ws: WebSocket<StreamConn>, readonly conn: StreamConn,
    readonly seq: number, readonly binary: boolean, readonly ops: number) {}

  onApplied (_shard: number, _values: Float64Array | null, _n: number, refused: number): void {
    this.refusedOps += refused
  }

  onPartDone (err: CounterdError | null): void {
    if (err !== null) this.error ??= err
    if (--this.parts > 0) return
    this.conn.inflight--
    if (this.error === null && this.refusedOps > 0) {
      this.error = new CounterdError('value_out_of_range',
        `${this.refusedOps} of ${this.ops} ops would take a value outside ±(2^53-1) and were not applied; the others were`)
    }
    if (this.error === null) this.ctx.metrics.add(F_INCREMENTS_ACKED, this.ops)
    if (this.ctx.config.metricsHistograms) this.ctx.threadMetrics.streamAcked(this.t0)
    if (this.conn.open) this.batcher.add(this)
  }
}

/**
 * Acks of frames that complete in the same task (a group commit, a batch of replies from another
 * shard) go out together: one cork, so one write, per connection, not one per frame.
 */
class AckBatcher {
  private readonly sockets: Array<WebSocket<StreamConn>> = []
  private scheduled = false
  private readonly flushBound = (): void => this.flush()

  constructor (private readonly ctx: FrontContext) {}

  add (ack: FrameAck): void {
    const done = ack.conn.done
    if (done.length === 0) this.sockets.push(ack.ws)
    done.push(ack)
    if (!this.scheduled) {
      this.scheduled = true
      queueMicrotask(this.flushBound)
    }
  }

  private flush (): void {
    this.scheduled = false
    for (const ws of this.sockets) {
      const conn = ws.getUserData()
      if (conn.open) ws.cork(() => { for (const a of conn.done) sendAck(this.ctx, ws, conn, a.seq, a.binary, a.error) })
      conn.done.length = 0
    }
    this.sockets.length = 0
  }
}

function sendAck (ctx: FrontContext, ws: WebSocket<StreamConn>, conn: StreamConn, seq: number, binary: boolean, err: CounterdError | null): void {
  if (!conn.open) return
  if (err !== null) ctx.metrics.countError('ws', err.code)
  let status: number
  if (binary) {
    status = ws.send(err === null ? encodeAckOk(seq) : encodeAckError(seq, err.toWire()), true)
  } else {
    status = ws.send(err === null ? `{"seq":${seq},"ok":true}` : JSON.stringify({ seq, error: err.toWire() }), false)
  }
  // 2 = dropped: the client reads acks too slowly for the backpressure limit; it would never
  // learn what happened to its frames, so it must reconnect and resend.
  if (status === 2) ws.end(CLOSE_POLICY, 'acks are not being read; reconnect and resend unacked frames')
}

export function installStream (app: TemplatedApp, ctx: FrontContext, sockets: Set<WebSocket<StreamConn>>): void {
  const { config, metrics } = ctx
  const ops = new FrameOps(config.maxOpsPerFrame) // reused: frames are decoded one at a time
  const batcher = new AckBatcher(ctx)

  app.ws<StreamConn>('/v1/stream', {
    compression: uws.DISABLED,
    // uWS drops a connection without a close frame past maxPayloadLength; up to 4× the limit we
    // read the frame and close with 1009 and a reason instead.
    maxPayloadLength: config.maxFrameBytes * 4,
    maxBackpressure: config.maxWsBackpressureBytes * 2,
    idleTimeout: 120,
    sendPingsAutomatically: true,

    upgrade: (res: HttpResponse, req: HttpRequest, context) => {
      const clientId = req.getQuery('clientId') ?? ''
      const key = req.getHeader('sec-websocket-key')
      const protocol = req.getHeader('sec-websocket-protocol')
      const extensions = req.getHeader('sec-websocket-extensions')
      const entry = ctx.auth === null ? null : authenticate(ctx.auth, bearerOf(req.getHeader('authorization')) || (req.getQuery('token') ?? ''), 'write')
      if (entry instanceof CounterdError) {
        const refused = entry
        metrics.countError('http', refused.code)
        res.cork(() => res.writeStatus(refused.status === 401 ? '401 Unauthorized' : '403 Forbidden').writeHeader('content-type', 'application/json').end(JSON.stringify(refused.toJSON())))
        return
      }
      if (clientId !== '' && (clientId.length > 64 || !isValidId(clientId))) {
        const err = new CounterdError('invalid_client_id')
        res.cork(() => res.writeStatus('400 Bad Request').writeHeader('content-type', 'application/json').end(JSON.stringify(err.toJSON())))
        return
      }
      const ns = entry === null ? '' : entry.namespace
      const prefix = prefixOf(ns)
      res.upgrade<StreamConn>({
        clientId: clientId === '' ? null : qualify(ns, clientId),
        apiKey: entry,
        prefix,
        prefixBytes: prefix === '' ? null : Buffer.from(prefix, 'latin1'),
        seed: prefixHash(ns),
        inflight: 0,
        open: true,
        done: []
      }, key, protocol, extensions, context)
    },

    open: (ws: WebSocket<StreamConn>) => {
      sockets.add(ws)
      metrics.add(F_WS_CONNECTIONS)
    },

    message: (ws: WebSocket<StreamConn>, message: ArrayBuffer, isBinary: boolean) => {
      const conn = ws.getUserData()
      metrics.add(F_WS_FRAMES)
      if (message.byteLength > config.maxFrameBytes) {
        metrics.countError('ws', 'payload_too_large')
        ws.end(CLOSE_TOO_BIG, `frame of ${message.byteLength} bytes is over the ${config.maxFrameBytes}-byte limit`)
        return
      }
      let bad: CounterdError | null
      try {
        bad = isBinary
          ? decodeBinaryFrame(new Uint8Array(message), ops, conn.seed)
          : decodeJsonFrame(Buffer.from(message).toString('utf8'), ops, conn.prefix)
      } catch (err) {
        ws.end(CLOSE_INVALID_DATA, (err as Error).message.slice(0, 120))
        return
      }
      if (bad === null && !isBinary && ops.seq < 0) bad = new CounterdError('invalid_seq')
      if (bad !== null && ops.seq < 0) {
        // Without a seq the client cannot match an error ack to a frame.
        metrics.countError('ws', bad.code)
        ws.end(CLOSE_INVALID_DATA, `${bad.code}: ${bad.message}`.slice(0, 120))
        return
      }
      const seq = ops.seq
      if (bad === null) bad = admit(ctx)
      if (bad === null && conn.apiKey !== null) bad = chargeKey(ctx, conn.apiKey, ops.n)
      if (bad === null && (conn.inflight >= config.maxInflightFrames || ws.getBufferedAmount() > config.maxWsBackpressureBytes)) {
        bad = new CounterdError('overloaded', `more than ${config.maxInflightFrames} frames in flight on this connection, or acks not read; retry later`)
      }
      if (bad !== null) { sendAck(ctx, ws, conn, seq, isBinary, bad); return }

      const ack = new FrameAck(ctx, batcher, ws, conn, seq, isBinary, ops.n)
      const router = ctx.router
      router.beginUnit(ack, conn.clientId, conn.clientId === null ? -1 : seq, false)
      if (isBinary) {
        const src = new Uint8Array(message)
        const prefix = conn.prefixBytes
        for (let i = 0; i < ops.n; i++) router.incrementFromFrame(ops.hash[i], src, ops.typeStart[i], ops.typeLen[i], ops.idStart[i], ops.idLen[i], ops.delta[i], ops.actorStart[i], ops.actorLen[i], prefix)
      } else {
        for (let i = 0; i < ops.n; i++) {
          const actor = ops.actors[i]
          router.op(actor === null ? OP_INCR : OP_INCR_ACTOR, ops.hash[i], ops.keys[i], ops.delta[i], actor)
        }
      }
      conn.inflight++
      if (!router.endUnit()) {
        conn.inflight--
        sendAck(ctx, ws, conn, seq, isBinary, overloaded())
        return
      }
      metrics.add(F_WS_OPS, ops.n)
    },

    close: (ws: WebSocket<StreamConn>) => {
      ws.getUserData().open = false
      sockets.delete(ws)
      metrics.add(F_WS_CONNECTIONS, -1)
    }
  })
}

export function closeStreams (sockets: Set<WebSocket<StreamConn>>): void {
  for (const ws of sockets) ws.end(CLOSE_GOING_AWAY, 'server shutting down')
}
