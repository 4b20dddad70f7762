// A minimal WebSocket client for the load generator: the handshake, then frames written as
// prebuilt bytes straight to the socket. Client frames must be masked (RFC 6455 §5.3); they are
// masked with the all-zero key, which is valid framing and makes the masked bytes equal to the
// payload, so a frame is built once and sent many times with no per-send copy or XOR. (Masking
// protects proxies from script-generated traffic; it has no meaning between two local processes.)
import crypto from 'node:crypto'
import net from 'node:net'

export const OPCODE_TEXT = 0x1
export const OPCODE_BINARY = 0x2
const OPCODE_CLOSE = 0x8
const OPCODE_PING = 0x9
const OPCODE_PONG = 0xa

/** A complete client frame (FIN, masked with a zero key) around `payload`. */
export function clientFrame (payload: Uint8Array, opcode = OPCODE_BINARY): Buffer {
  const len = payload.length
  const headerLen = 2 + (len > 0xffff ? 8 : len > 125 ? 2 : 0) + 4
  const out = Buffer.alloc(headerLen + len) // zero-filled: the mask key stays 0
  out[0] = 0x80 | opcode
  if (len > 0xffff) {
    out[1] = 0x80 | 127
    out.writeBigUInt64BE(BigInt(len), 2)
  } else if (len > 125) {
    out[1] = 0x80 | 126
    out.writeUInt16BE(len, 2)
  } else {
    out[1] = 0x80 | len
  }
  out.set(payload, headerLen)
  return out
}

export interface RawWsHandlers {
  /** one complete message from the server (binary or text payload bytes) */
  onMessage: (payload: Buffer, opcode: number) => void
  onClose: (code: number, reason: string) => void
}

export class RawWebSocket {
  readonly socket: net.Socket
  private pending: Buffer | null = null
  private fragments: Buffer[] = []
  private fragmentOpcode = 0
  private closed = false

  private constructor (socket: net.Socket, private readonly handlers: RawWsHandlers) {
    this.socket = socket
  }

  /** Connects and completes the upgrade; rejects with the server's status line if refused. */
  static async connect (url: string, handlers: RawWsHandlers, timeoutMs = 10_000): Promise<RawWebSocket> {
    const u = new URL(url)
    if (u.protocol !== 'ws:') throw new Error(`only ws:// URLs are supported, got ${url}`)
    const key = crypto.randomBytes(16).toString('base64')
    const accept = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
    const socket = net.connect(Number(u.port === '' ? 80 : u.port), u.hostname)
    socket.setNoDelay(true)
    return await new Promise((resolve, reject) => {
      let head = Buffer.alloc(0)
      const timer = setTimeout(() => { socket.destroy(); reject(new Error(`websocket handshake to ${url} timed out`)) }, timeoutMs)
      const fail = (e: Error): void => { clearTimeout(timer); socket.destroy(); reject(e) }
      socket.once('error', fail)
      socket.once('connect', () => {
        socket.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
      })
      const onData = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk])
        const end = head.indexOf('\r\n\r\n')
        if (end < 0) return
        socket.off('data', onData)
        socket.off('error', fail)
        clearTimeout(timer)
        const text = head.toString('latin1', 0, end)
        const status = text.slice(0, text.indexOf('\r\n'))
        if (!/^HTTP\/1\.1 101/.test(status) || !text.toLowerCase().includes(`sec-websocket-accept: ${accept.toLowerCase()}`)) {
          socket.destroy()
          reject(new Error(`websocket upgrade refused: ${status}`))
          return
        }
        const ws = new RawWebSocket(socket, handlers)
        socket.on('data', (c: Buffer) => ws.receive(c))
        socket.on('error', () => ws.finish(1006, 'socket error'))
        socket.on('close', () => ws.finish(1006, 'socket closed'))
        const rest = head.subarray(end + 4)
        if (rest.length > 0) ws.receive(rest)
        resolve(ws)
      }
      socket.on('data', onData)
    })
  }

  /** Writes a prebuilt client frame (see clientFrame); returns false when the socket buffer is full. */
  sendFrame (frame: Buffer): boolean {
    return this.socket.write(frame)
  }

  /** Sends a close frame and ends the socket. */
  close (code = 1000): void {
    if (this.closed) return
    const body = Buffer.alloc(2)
    body.writeUInt16BE(code, 0)
    this.socket.end(clientFrame(body, OPCODE_CLOSE))
  }

  private finish (code: number, reason: string): void {
    if (this.closed) return
    this.closed = true
    this.handlers.onClose(code, reason)
  }

  private receive (chunk: Buffer): void {
    // Frames sent while handling this chunk (refills after acks) leave in one write.
    this.socket.cork()
    try {
      this.parse(chunk)
    } finally {
      this.socket.uncork()
    }
  }

  private parse (chunk: Buffer): void {
    const buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk])
    this.pending = null
    let p = 0
    while (buf.length - p >= 2) {
      const b0 = buf[p]
      const b1 = buf[p + 1]
      let len = b1 & 0x7f
      let hdr = 2
      if (len === 126) {
        if (buf.length - p < 4) break
        len = buf.readUInt16BE(p + 2)
        hdr = 4
      } else if (len === 127) {
        if (buf.length - p < 10) break
        len = Number(buf.readBigUInt64BE(p + 2))
        hdr = 10
      }
      if ((b1 & 0x80) !== 0) hdr += 4 // servers must not mask, but tolerate it
      if (buf.length - p < hdr + len) break
      let payload = buf.subarray(p + hdr, p + hdr + len)
      if ((b1 & 0x80) !== 0) {
        const mask = buf.subarray(p + hdr - 4, p + hdr)
        payload = Buffer.from(payload)
        for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3]
      }
      p += hdr + len
      this.onFrame(b0 & 0x80, b0 & 0x0f, payload)
    }
    if (p < buf.length) this.pending = Buffer.from(buf.subarray(p))
  }

  private onFrame (fin: number, opcode: number, payload: Buffer): void {
    if (opcode === OPCODE_CLOSE) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005
      const reason = payload.length > 2 ? payload.toString('utf8', 2) : ''
      if (!this.socket.destroyed) this.socket.end(clientFrame(payload.subarray(0, 2), OPCODE_CLOSE))
      this.finish(code, reason)
      return
    }
    if (opcode === OPCODE_PING) {
      this.socket.write(clientFrame(payload, OPCODE_PONG))
      return
    }
    if (opcode === OPCODE_PONG) return
    if (opcode !== 0) this.fragmentOpcode = opcode
    if (fin === 0) {
      this.fragments.push(Buffer.from(payload))
      return
    }
    if (this.fragments.length > 0) {
      this.fragments.push(payload)
      payload = Buffer.concat(this.fragments)
      this.fragments = []
    }
    this.handlers.onMessage(payload, this.fragmentOpcode)
  }
}
