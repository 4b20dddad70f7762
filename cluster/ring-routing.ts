// The ring as one shard thread sees it: turns a RingView into the router's route table (a
// partition of this node goes to its shard, another node's to a peer link to the shard that owns
// it there), keeps one outgoing peer link per remote shard, and accepts the links other nodes
// open to this shard. Which partitions this shard itself must own is what own() is then told.
import net from 'node:net'
import tls from 'node:tls'
import type { Logger } from 'pino'
import { CounterdError } from '../src/core/errors'
import { authenticatePeer } from '../src/routing/peer-auth'
import { PeerLink, type PeerSecurity } from '../src/routing/peer-link'
import type { Router } from '../src/routing/router'
import type { MemberInfo, RingView } from './ring-view'

export interface RingRoutingOptions {
  router: Router
  /** This shard thread's index and the node's shard count. */
  index: number
  shards: number
  partitions: number
  /** Bytes staged on a peer link beyond which new units are refused (overloaded). */
  linkLimit: number
  logger: Logger
  /** CLUSTER_SECRET ('' none): links authenticate with it. */
  secret?: string
  /** TLS_CERT_FILE/TLS_KEY_FILE contents: links are TLS (this shard serves with them); null: plain TCP. */
  tls?: { cert: Buffer, key: Buffer } | null
}

export class RingRouting {
  private view: RingView | null = null
  private selfId = ''
  private readonly out = new Map<string, { target: number, link: PeerLink }>() // "host:port" → link
  private readonly accepted = new Set<PeerLink>()
  private server: net.Server | null = null
  private retiring: Array<{ target: number, link: PeerLink }> = []
  private retireTimer: NodeJS.Timeout | null = null

  private readonly security: PeerSecurity
  private readonly refusedLogged = new Set<string>() // outgoing links whose refusal was logged (once per outage)

  constructor (private readonly o: RingRoutingOptions) {
    this.security = { secret: o.secret ?? '', tls: (o.tls ?? null) !== null }
  }

  get current (): RingView | null { return this.view }
  get self (): string { return this.selfId }

  /** Accepts peer links from other nodes on host:port (0: any free port); resolves with the port. */
  async listen (host: string, port: number): Promise<number> {
    const creds = this.o.tls ?? null
    const server = creds === null
      ? net.createServer((socket) => this.authenticate(socket))
      : tls.createServer({ cert: creds.cert, key: creds.key }, (socket) => this.authenticate(socket))
    // A client that fails TLS is refused like one that fails the secret.
    server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
      this.o.logger.warn({ peer: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`, reason: err.message }, 'peer link refused: TLS failed')
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host, port }, () => { server.off('error', reject); resolve() })
    })
    this.server = server
    return (server.address() as net.AddressInfo).port
  }

  /** With CLUSTER_SECRET, a connection becomes a link only once the peer proved it knows the secret. */
  private authenticate (socket: net.Socket): void {
    const secret = this.security.secret
    if (secret === '') { this.accept(socket); return }
    socket.on('error', () => {}) // a reset during the handshake: 'close' ends it
    authenticatePeer(socket, secret, 'accept', (err, rest) => {
      if (err !== null) {
        this.o.logger.warn({ peer: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`, reason: err }, 'peer link refused')
        return
      }
      this.accept(socket, rest)
    })
  }

  private accept (socket: net.Socket, rest?: Buffer): void {
    const { router } = this.o
    let target = -1
    const link = PeerLink.accept(socket, this.o.linkLimit, {
      onRecords: (buf, off, end) => router.receive(target, buf, off, end),
      onLost: (reason) => {
        this.accepted.delete(link)
        router.linkLost(target, new CounterdError('peer_unavailable', reason))
      }
    }, rest)
    target = router.addLink(link)
    this.accepted.add(link)
  }

  /**
   * Adopts a view: routes every partition to its owner and returns the partitions this shard
   * must own (those of this node with p mod shards = index).
   */
  apply (view: RingView, selfId: string): number[] {
    const { partitions, shards, index } = this.o
    if (view.owners.length !== partitions) throw new CounterdError('internal', `a ring view of ${view.owners.length} partitions; this node has PARTITIONS=${partitions}`)
    const members = new Map<string, MemberInfo>(view.members.map((m) => [m.id, m]))
    const routes = new Int32Array(partitions)
    const want: number[] = []
    for (let p = 0; p < partitions; p++) {
      const owner = view.owners[p]
      if (owner === selfId) {
        routes[p] = p % shards
        if (p % shards === index) want.push(p)
        continue
      }
      const m = members.get(owner)
      if (m === undefined || m.peerPorts.length === 0) throw new CounterdError('internal', `ring generation ${view.generation}: partition ${p} is owned by ${owner}, which is not a member`)
      routes[p] = this.linkTo(m.peerHost, m.peerPorts[p % m.peerPorts.length])
    }
    this.o.router.setRoutes(routes)
    // Links to shards that are no longer in the ring (a node that left, or restarted on new ports)
    // are closed for good once nothing sent on them waits for an answer: a leaving node still
    // answers what it forwarded to the new owners. Their indexes stay with the router, admitting nothing.
    const used = new Set<string>(view.members.flatMap((m) => m.id === selfId ? [] : m.peerPorts.map((port) => `${m.peerHost}:${port}`)))
    for (const [name, entry] of this.out) {
      if (!used.has(name)) { this.out.delete(name); this.retiring.push(entry) }
    }
    this.retireIdle()
    this.view = view
    this.selfId = selfId
    return want
  }

  private retireIdle (): void {
    this.retiring = this.retiring.filter(({ target, link }) => {
      if (this.o.router.awaitsAnswerFrom(target)) return true
      link.close()
      return false
    })
    if (this.retiring.length > 0 && this.retireTimer === null) {
      this.retireTimer = setTimeout(() => { this.retireTimer = null; this.retireIdle() }, 500)
    }
  }

  /** Outgoing peer links, and how many are connected (metrics). */
  links (): { links: number, up: number } {
    let up = 0
    for (const { link } of this.out.values()) if (link.isConnected) up++
    return { links: this.out.size, up }
  }

  /** Targets that reach each other member once (its first shard): for node-wide questions. */
  otherNodes (): number[] {
    if (this.view === null) return []
    const out: number[] = []
    for (const m of this.view.members) {
      if (m.id === this.selfId || m.peerPorts.length === 0) continue
      out.push(this.linkTo(m.peerHost, m.peerPorts[0]))
    }
    return out
  }

  private linkTo (host: string, port: number): number {
    const name = `${host}:${port}`
    const known = this.out.get(name)
    if (known !== undefined) return known.target
    const { router } = this.o
    let target = -1
    const link = PeerLink.connect(host, port, this.o.linkLimit, {
      onRecords: (buf, off, end) => router.receive(target, buf, off, end),
      onLost: (reason, wasUp) => {
        if (wasUp) this.o.logger.warn({ peer: name }, 'peer link lost; reconnecting')
        router.linkLost(target, new CounterdError('peer_unavailable', reason))
      },
      onConnected: () => {
        this.refusedLogged.delete(name)
        this.o.logger.debug({ peer: name }, 'peer link connected')
      },
      onRefused: (reason) => {
        if (this.refusedLogged.has(name)) return
        this.refusedLogged.add(name)
        this.o.logger.warn({ peer: name, reason }, 'peer link not authenticated; retrying')
      }
    }, this.security)
    target = router.addLink(link)
    this.out.set(name, { target, link })
    return target
  }

  close (): void {
    if (this.retireTimer !== null) clearTimeout(this.retireTimer)
    for (const { link } of this.retiring) link.close()
    this.server?.close()
    for (const { link } of this.out.values()) link.close()
    for (const link of this.accepted) link.close()
  }
}
