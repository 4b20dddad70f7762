// A stream of increments over the node's WebSocket (docs/stream-protocol.md): ops are batched into
// binary frames, at most `maxInflightFrames` frames wait for their acks, and `add` says when the
// caller should wait for 'drain'. After a lost connection it reconnects and resends every unacked
// frame under its original seq and the same clientId, so the node counts each exactly once within
// its dedup window.
//
// Why resends go one at a time: the node drops a frame whose seq is not above the last one it
// applied for the clientId. A frame of unknown fate (sent on a lost connection) must therefore be
// retried under its own seq before any later frame can be applied, or the retry would be taken
// for a duplicate. A frame refused on its first attempt (overloaded, not ready) was certainly not
// applied, so it goes back into the queue and gets a new seq when it is sent again; one that failed
// in some partition (moving, a lost peer link) may have applied in others, so it is retried under
// its seq, which the node keeps a window of per partition (at most 21 frames apart: keep
// maxInflightFrames at 20 or below for exactly-once across such failures).
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import WebSocket from 'ws'
import { CounterdClientError } from './errors'
import { decodeAck, encodeFrame, MAX_OPS_PER_FRAME, type Op } from './frame-codec'
import { isValidId, isValidType } from './keys'

export interface StreamOptions {
  /** the node: `http://host:port` or `ws://host:port` */
  url: string
  /** names the stream for exactly-once resends; default: random. [A-Za-z0-9_.:-]{1,64} */
  clientId?: string
  /** ops per frame, default 1000 (the node takes at most MAX_OPS_PER_FRAME, default 10 000) */
  maxOpsPerFrame?: number
  /** frames sent and not yet acked, default 8 */
  maxInflightFrames?: number
  /** ops added and not yet sent above which `add` returns false, default 1 000 000 */
  highWaterOps?: number
  /** how long a partly filled frame waits for more ops, default 2 ms */
  lingerMs?: number
  /** reconnect delay: doubles from min to max, default 50 and 2000 ms */
  reconnectMinMs?: number
  reconnectMaxMs?: number
}

interface StreamConfig {
  readonly url: string
  readonly clientId: string
  readonly maxOpsPerFrame: number
  readonly maxInflightFrames: number
  readonly highWaterOps: number
  readonly lingerMs: number
  readonly reconnectMinMs: number
  readonly reconnectMaxMs: number
}

/** Refusals that come before any op of a frame is applied: such a frame gets a new seq when sent again. */
const REFUSED_WHOLE = new Set(['overloaded', 'not_ready', 'shutting_down', 'rate_limited'])

const DEFAULTS = { maxOpsPerFrame: 1000, maxInflightFrames: 8, highWaterOps: 1_000_000, lingerMs: 2, reconnectMinMs: 50, reconnectMaxMs: 2000 }
const CLIENT_ID_RE = /^[A-Za-z0-9_.:-]{1,64}$/
const MAX_SEQ = 0xffffffff

function positiveInt (options: StreamOptions, key: keyof typeof DEFAULTS, max = Number.MAX_SAFE_INTEGER, min = 1): number {
  const v = options[key] ?? DEFAULTS[key]
  if (!Number.isInteger(v) || v < min || v > max) throw new TypeError(`options.${key} must be an integer from ${min} to ${max}, got ${String(v)}`)
  return v
}

export function streamConfig (options: StreamOptions): StreamConfig {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object')
  let url: URL
  try { url = new URL(options.url) } catch { throw new TypeError(`options.url must be an http(s) or ws(s) URL, got ${JSON.stringify(options.url)}`) }
  const scheme = ({ 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' } as Record<string, string>)[url.protocol]
  if (scheme === undefined) throw new TypeError(`options.url must be an http(s) or ws(s) URL, got ${JSON.stringify(options.url)}`)
  const clientId = options.clientId ?? `c-${randomBytes(8).toString('hex')}`
  if (!CLIENT_ID_RE.test(clientId)) throw new TypeError('options.clientId must match [A-Za-z0-9_.:-]{1,64}')
  const config = {
    url: `${scheme}//${url.host}${url.pathname.replace(/\/+$/, '')}/v1/stream?clientId=${clientId}`,
    clientId,
    maxOpsPerFrame: positiveInt(options, 'maxOpsPerFrame', MAX_OPS_PER_FRAME),
    maxInflightFrames: positiveInt(options, 'maxInflightFrames', 1024),
    highWaterOps: positiveInt(options, 'highWaterOps'),
    lingerMs: positiveInt(options, 'lingerMs', 60_000, 0),
    reconnectMinMs: positiveInt(options, 'reconnectMinMs', 60_000),
    reconnectMaxMs: positiveInt(options, 'reconnectMaxMs', 600_000)
  }
  if (config.reconnectMaxMs < config.reconnectMinMs) throw new TypeError('options.reconnectMaxMs must not be below options.reconnectMinMs')
  return Object.freeze(config)
}

class Frame {
  seq = -1 // set when first sent
  bytes: Buffer | null = null
  /** sent on a connection that was lost before its ack: applied or not, nobody knows */
  uncertain = false
  constructor (readonly no: number, readonly ops: Op[]) {}
}

export interface StreamStats {
  /** ops in frames the node acknowledged */
  ackedOps: number
  /** frames answered with an error that retrying cannot fix (emitted as 'error') */
  failedFrames: number
  framesSent: number
  framesResent: number
  reconnects: number
}

/**
 * Events: 'drain' (below the high-water mark again after `add` returned false), 'error'
 * (a CounterdClientError with `seq` and `ops` of a frame the node refused for good, e.g.
 * value_out_of_range), 'connect', 'disconnect' (code, reason).
 */
export class CounterStream extends EventEmitter {
  readonly config: StreamConfig
  readonly stats: StreamStats = { ackedOps: 0, failedFrames: 0, framesSent: 0, framesResent: 0, reconnects: 0 }

  private ws: WebSocket | null = null
  private connected = false
  private closing = false
  private closed = false
  private current: Op[] = []
  private readonly queue: Frame[] = [] // sealed, waiting to be sent
  private readonly resend: Frame[] = [] // of unknown fate, retried one at a time, in seq order
  private readonly inflight = new Map<number, Frame>() // seq → frame, in the order sent
  private readonly unsettled = new Set<number>() // frame numbers, oldest first
  private readonly flushWaiters: Array<{ no: number, resolve: () => void }> = []
  private queuedOps = 0
  private wantDrain = false
  private nextSeq = 0
  private nextFrameNo = 0
  private backoff: number
  private lingerTimer: NodeJS.Timeout | null = null
  private retryTimer: NodeJS.Timeout | null = null
  private readonly onOpenBound = (): void => this.onOpen()
  private readonly onMessageBound = (data: Buffer): void => this.onMessage(data)
  private readonly onCloseBound = (code: number, reason: Buffer): void => this.onClose(code, reason.toString('utf8'))
  private readonly sealBound = (): void => { this.lingerTimer = null; this.seal(); this.pump() }

  constructor (options: StreamOptions) {
    super()
    this.config = streamConfig(options)
    this.backoff = this.config.reconnectMinMs
    this.connect()
  }

  /**
   * Counts `delta` (a safe integer, default 1) on `type:id`. Returns false once more than
   * `highWaterOps` ops wait to be sent: wait for 'drain' before adding more.
   */
  add (type: string, id: string, delta = 1): boolean {
    if (this.closing) throw new CounterdClientError('stream_closed', 'the stream is closed')
    if (!isValidType(type)) throw new CounterdClientError('invalid_type', `type ${JSON.stringify(type)} must match [a-z0-9_-]{1,32}`)
    if (!isValidId(id)) throw new CounterdClientError('invalid_id', `id ${JSON.stringify(id)} must match [A-Za-z0-9_.:-]{1,128}`)
    if (!Number.isSafeInteger(delta)) throw new CounterdClientError('invalid_delta', `delta ${String(delta)} must be a safe integer`)
    this.current.push([type, id, delta])
    this.queuedOps++
    if (this.current.length >= this.config.maxOpsPerFrame) {
      this.seal()
      this.pump()
    } else if (this.lingerTimer === null) {
      this.lingerTimer = setTimeout(this.sealBound, this.config.lingerMs)
    }
    if (this.queuedOps < this.config.highWaterOps) return true
    this.wantDrain = true
    return false
  }

  /** Resolves once every op added before the call is acknowledged (or refused for good). */
  async flush (): Promise<void> {
    this.seal()
    this.pump()
    const no = this.nextFrameNo - 1
    if (this.settledThrough(no)) return
    await new Promise<void>((resolve) => this.flushWaiters.push({ no, resolve }))
  }

  /** Flushes, then closes the connection; the stream takes no more ops. */
  async close (): Promise<void> {
    if (this.closed) return
    await this.flush()
    this.closing = true
    this.closed = true
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer)
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    const ws = this.ws
    if (ws === null || ws.readyState === WebSocket.CLOSED) return
    await new Promise<void>((resolve) => { ws.once('close', () => resolve()); ws.close(1000) })
  }

  private connect (): void {
    const ws = new WebSocket(this.config.url, { perMessageDeflate: false })
    this.ws = ws
    ws.on('open', this.onOpenBound)
    ws.on('message', this.onMessageBound)
    ws.on('close', this.onCloseBound)
    ws.on('error', () => {}) // 'close' follows and reconnects
  }

  private onOpen (): void {
    this.connected = true
    this.backoff = this.config.reconnectMinMs
    this.emit('connect')
    this.pump()
  }

  private onClose (code: number, reason: string): void {
    this.connected = false
    this.ws = null
    if (this.closed) return
    // Whatever was in flight may or may not have been applied: resend it, in seq order.
    const lost = [...this.inflight.values()]
    this.inflight.clear()
    for (const f of lost) f.uncertain = true
    this.resend.push(...lost)
    this.resend.sort((a, b) => a.seq - b.seq)
    this.emit('disconnect', code, reason)
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.stats.reconnects++; this.connect() }, this.backoff)
    this.backoff = Math.min(this.config.reconnectMaxMs, this.backoff * 2)
  }

  private onMessage (data: Buffer): void {
    let ack
    try {
      ack = decodeAck(data)
    } catch (err) {
      this.ws?.close(1002, 'unreadable ack') // reconnect and resend rather than guess
      return
    }
    const frame = this.inflight.get(ack.seq)
    if (frame === undefined) return // an ack of a frame settled on an earlier connection
    this.inflight.delete(ack.seq)
    if (ack.ok) {
      this.stats.ackedOps += frame.ops.length
      this.settle(frame)
    } else {
      const err = new CounterdClientError(ack.code, ack.message)
      if (!err.retriable) {
        this.stats.failedFrames++
        this.settle(frame)
        this.emit('error', Object.assign(err, { seq: ack.seq, ops: frame.ops }))
      } else if (frame.uncertain || !REFUSED_WHOLE.has(ack.code)) {
        // Of unknown fate (a retry, or a part failed after others may have applied: a moving
        // partition, a lost peer link): retried under its own seq after a pause, nothing later
        // sent meanwhile; the partitions that applied it skip it (src/core/stream-dedup.ts).
        frame.uncertain = true
        this.resend.unshift(frame)
        this.pauseSending()
      } else {
        // Certainly not applied: back to the queue, a new seq when sent again.
        frame.seq = -1
        frame.bytes = null
        this.queue.unshift(frame)
        this.queuedOps += frame.ops.length
        this.pauseSending()
      }
    }
    this.pump()
  }

  /** After a retriable refusal: send nothing for a moment (the node is busy or not ready). */
  private pauseSending (): void {
    if (this.retryTimer !== null || !this.connected) return
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.pump() }, this.backoff)
    this.backoff = Math.min(this.config.reconnectMaxMs, this.backoff * 2)
  }

  private seal (): void {
    if (this.lingerTimer !== null) { clearTimeout(this.lingerTimer); this.lingerTimer = null }
    if (this.current.length === 0) return
    const f = new Frame(this.nextFrameNo++, this.current)
    this.current = []
    this.unsettled.add(f.no)
    this.queue.push(f)
  }

  private pump (): void {
    if (!this.connected || this.retryTimer !== null || this.ws === null) return
    if (this.resend.length > 0) {
      if (this.inflight.size === 0) this.send(this.resend.shift() as Frame, true)
      return
    }
    while (this.inflight.size < this.config.maxInflightFrames && this.queue.length > 0) {
      const f = this.queue.shift() as Frame
      this.queuedOps -= f.ops.length
      if (this.nextSeq > MAX_SEQ) throw new CounterdClientError('invalid_seq', 'this stream has used every seq (2^32 frames); open a new one with another clientId')
      f.seq = this.nextSeq++
      f.bytes = encodeFrame(f.seq, f.ops)
      this.send(f, false)
    }
    if (this.wantDrain && this.queuedOps < this.config.highWaterOps / 2) {
      this.wantDrain = false
      this.emit('drain')
    }
  }

  private send (f: Frame, again: boolean): void {
    this.inflight.set(f.seq, f)
    if (again) this.stats.framesResent++
    else this.stats.framesSent++
    ;(this.ws as WebSocket).send(f.bytes as Buffer, { binary: true })
  }

  private settle (f: Frame): void {
    this.unsettled.delete(f.no)
    if (this.flushWaiters.length === 0) return
    for (let i = 0; i < this.flushWaiters.length;) {
      const w = this.flushWaiters[i]
      if (this.settledThrough(w.no)) {
        this.flushWaiters.splice(i, 1)
        w.resolve()
      } else i++
    }
  }

  /** Whether every frame numbered ≤ no is settled (the set keeps frame numbers oldest first). */
  private settledThrough (no: number): boolean {
    for (const oldest of this.unsettled) return oldest > no
    return true
  }
}
