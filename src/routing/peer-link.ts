// A persistent TCP link between a shard thread of this node and a shard thread of another node of
// the ring. It carries the same records the shared-memory rings between shards carry
// (ring-records.ts: units of ops, replies, control requests), so to the router another node's
// shard is one more target: units go out batched per event-loop turn, replies come back on the
// same connection (durable ones only after the owner's group commit).
//
// Framing: `u32 length | records…` (little-endian); a frame holds whole records only.
//
// With CLUSTER_SECRET a link carries records only after both ends proved they know the secret
// (peer-auth.ts); with TLS_CERT_FILE/TLS_KEY_FILE it runs over TLS (the handshake then binds to the
// TLS session, so peers are authenticated by the secret rather than by certificates).
//
// An outgoing link reconnects by itself after a loss (backoff 50 ms → 1 s). While it connects,
// records are staged (and sent once it is up); once an attempt has failed it admits nothing until
// it is up again (the router refuses the unit: 503, retry). Every part it carried that was not
// answered when the connection went (or never came) fails with `peer_unavailable` (the owner may or may not have applied it: the same
// doubt as any lost reply; an Idempotency-Key or the stream's (clientId, seq) make the retry safe).
import net from 'node:net'
import tls from 'node:tls'
import { ByteSink } from '../core/op-codec'
import { authenticatePeer } from './peer-auth'

/** How links of this node connect: the ring's secret ('' none) and whether they use TLS. */
export interface PeerSecurity {
  secret: string
  tls: boolean
}

/** What the router needs of any target it stages records for (an Outbox to a shard, or a PeerLink). */
export interface RecordSender {
  readonly sink: ByteSink
  readonly limit: number
  readonly staged: number
  admits: (start: number) => boolean
  endRecord: () => void
  truncate: (len: number) => void
  /** Sends what is staged; false when some of it must be retried (a full ring). */
  flush: () => boolean
}

export interface PeerLinkEvents {
  /** A frame of records arrived: buf[off…end). Valid only during the call. */
  onRecords: (buf: Buffer, off: number, end: number) => void
  /** The connection is gone (or an attempt failed: wasUp false): whatever it carried unanswered has failed. */
  onLost: (reason: string, wasUp: boolean) => void
  /** An outgoing link is (again) connected. */
  onConnected?: () => void
  /** An outgoing link's peer refused it, or failed the handshake (CLUSTER_SECRET). */
  onRefused?: (reason: string) => void
}

const MAX_FRAME = 256 * 1024 * 1024

export class PeerLink implements RecordSender {
  readonly sink = new ByteSink(64 * 1024)
  private socket: net.Socket | null = null
  private connected = false
  private connecting = false // an attempt is under way and none has failed since the last success
  private closed = false
  private backoff = 50
  private reconnectTimer: NodeJS.Timeout | null = null
  // Inbound reassembly: bytes of a frame not yet complete.
  private inbound = Buffer.allocUnsafe(0)

  private constructor (
    readonly name: string,
    readonly limit: number,
    private readonly events: PeerLinkEvents,
    private readonly target: { host: string, port: number } | null,
    private readonly security: PeerSecurity = { secret: '', tls: false }
  ) {}

  /** A link this side opens (and reopens after a loss) to host:port. */
  static connect (host: string, port: number, limit: number, events: PeerLinkEvents, security?: PeerSecurity): PeerLink {
    const link = new PeerLink(`${host}:${port}`, limit, events, { host, port }, security)
    link.open(true)
    return link
  }

  /**
   * A link the other side opened (already authenticated, when the ring has a secret); it is not
   * reopened when lost. `rest`: bytes that came after the handshake.
   */
  static accept (socket: net.Socket, limit: number, events: PeerLinkEvents, rest?: Buffer): PeerLink {
    const link = new PeerLink(`${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`, limit, events, null)
    link.attach(socket)
    link.read(rest)
    link.connected = true
    return link
  }

  get isConnected (): boolean { return this.connected }

  get staged (): number {
    return this.sink.len + (this.socket?.writableLength ?? 0)
  }

  admits (start: number): boolean {
    if (!this.connected) return this.connecting && this.sink.len <= this.limit
    return (start === 0 && (this.socket?.writableLength ?? 0) === 0) || this.staged <= this.limit
  }

  endRecord (): void {}

  truncate (len: number): void {
    this.sink.len = len
  }

  flush (): boolean {
    const len = this.sink.len
    if (len === 0) return true
    if (!this.connected || this.socket === null) {
      if (!this.connecting) this.sink.len = 0 // the parts staged were failed when the link was lost
      return true // while connecting they wait in the sink
    }
    const frame = Buffer.allocUnsafe(4 + len)
    frame.writeUInt32LE(len, 0)
    this.sink.buf.copy(frame, 4, 0, len)
    this.sink.len = 0
    this.socket.write(frame)
    return true
  }

  /** Closes the link for good (the node is stopping, or the peer left the ring). */
  close (): void {
    this.closed = true
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer)
    this.socket?.destroy()
  }

  private open (first = false): void {
    if (first) this.connecting = true
    const { host, port } = this.target as { host: string, port: number }
    const { secret } = this.security
    // Peers present the node's serving certificate; who they are is proven by the secret (bound to
    // this TLS session), not by a certificate authority.
    const socket = this.security.tls ? tls.connect({ host, port, rejectUnauthorized: false }) : net.connect({ host, port })
    socket.setNoDelay(true)
    this.attach(socket)
    const up = (rest?: Buffer): void => {
      this.read(rest)
      this.connected = true
      this.connecting = false
      this.backoff = 50
      this.flush() // what was staged while connecting
      this.events.onConnected?.()
    }
    socket.once(this.security.tls ? 'secureConnect' : 'connect', () => {
      if (secret === '') { up(); return }
      authenticatePeer(socket, secret, 'dial', (err, rest) => {
        if (err !== null) this.events.onRefused?.(err)
        else up(rest)
      })
    })
  }

  /** Starts taking records from the socket (after the handshake, if any): `rest` first. */
  private read (rest?: Buffer): void {
    const socket = this.socket as net.Socket
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    if (rest !== undefined && rest.length > 0) this.onData(rest)
  }

  private attach (socket: net.Socket): void {
    this.socket = socket
    socket.setNoDelay(true)
    socket.on('error', () => {}) // 'close' follows, with the loss handled there
    socket.on('close', () => {
      const wasUp = this.connected
      this.connected = false
      this.connecting = false
      this.socket = null
      this.inbound = Buffer.allocUnsafe(0)
      this.sink.len = 0
      this.events.onLost(`peer link ${this.name} closed`, wasUp && !this.closed)
      if (this.closed || this.target === null) return
      this.reconnectTimer = setTimeout(() => { this.reconnectTimer = null; this.open() }, this.backoff)
      this.backoff = Math.min(this.backoff * 2, 1000)
    })
  }

  private onData (chunk: Buffer): void {
    const buf = this.inbound.length === 0 ? chunk : Buffer.concat([this.inbound, chunk])
    let o = 0
    while (buf.length - o >= 4) {
      const len = buf.readUInt32LE(o)
      if (len > MAX_FRAME) {
        this.socket?.destroy(new Error(`peer frame of ${len} bytes`))
        return
      }
      if (buf.length - o - 4 < len) break
      this.events.onRecords(buf, o + 4, o + 4 + len)
      o += 4 + len
    }
    // Keep the incomplete rest (a copy: `chunk` belongs to the socket).
    this.inbound = o === buf.length ? Buffer.allocUnsafe(0) : Buffer.from(buf.subarray(o))
  }
}
