// Cluster membership and failure detection through Kafka's consumer-group protocol, the way Kafka
// Streams places its tasks: every node runs one consumer in the group `counterd.<cluster>`,
// subscribed to the coordination topic `<cluster>.members` (which carries no messages). Kafka does
// the failure detection (session timeout, LeaveGroup on a planned stop) and elects a leader for
// each generation; a custom partition assigner on that leader computes the ring.
//
//   join: each member's subscription user data is its MemberInfo as JSON (plus its PARTITIONS and
//         start time). The leader's assign() decodes every member, computes
//         owners = assignPartitions(sorted ids, partitions), and publishes the ring in Redis with
//         one Lua script — INCR counterd:ring:{<cluster>}:generation, SET counterd:ring:{<cluster>}
//         to the RingView JSON — before it hands the (meaningless) Kafka assignment back. The
//         {<cluster>} hash tag keeps both keys in one Redis Cluster slot.
//   sync: kafkajs drops the assignment's user data on the members' side (consumerGroup.js keeps only
//         the topic → partitions map), so the ring cannot travel in the SyncGroup answer as in
//         Kafka Streams. It travels through Redis instead: the coordinator answers the members'
//         SyncGroup only after the leader's SyncGroup, which comes after the Redis write, so a
//         member that reads the key after its GROUP_JOIN sees this generation's view or a newer one.
//
// Events: 'ring' (RingView) when a view that includes this member is adopted (a new generation, or
// the same one again after a 'lost' the group turned out not to have acted on); 'lost' (reason)
// when this member may no longer be in the group: the node must stop serving until the next
// 'ring'. A rebalance alone is not a loss: the old view stays valid until the new one arrives.
// 'lost' is emitted when
//   - the consumer crashed (kafkajs disconnects, i.e. leaves the group, before it restarts),
//   - no heartbeat was accepted for most of the session timeout (the coordinator has dropped this
//     member, or is about to: the others then take its partitions), measured from when the last
//     accepted heartbeat was sent, so this node stops before the group can act,
//   - a rejoin takes far longer than a rebalance can (2 × session timeout),
//   - after a join no view that includes this member shows up in Redis within 2 s (the consumer is
//     then restarted, with backoff, to force a fresh generation).
import { EventEmitter } from 'node:events'
import { AssignerProtocol, Kafka, logLevel, type Consumer, type GroupMember, type GroupMemberAssignment, type PartitionAssigner } from 'kafkajs'
import { CounterdError } from '../src/core/errors'
import { withDeadline } from '../src/core/deadline'
import { connectRedis, type RedisClient } from '../src/storage/redis-connect'
import { assignPartitions } from './assigner'

import type { MemberInfo, RingView } from './ring-view'
export type { MemberInfo, RingView }

/** pino-like: (object, message) at four levels. */
export interface MembershipLogger {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
  debug: (obj: object, msg: string) => void
}

export interface MembershipOptions {
  /** "host:port" of one or more Kafka brokers (KAFKA_BROKERS). */
  brokers: string[]
  /** REDIS_URL: one redis:// URL, or a comma-separated list of Redis Cluster startup nodes. */
  redisUrl: string
  /** CLUSTER_NAME: names the consumer group, the coordination topic and the Redis keys. */
  cluster: string
  self: MemberInfo
  /** PARTITIONS (fixed for the cluster's life; every member must agree). */
  partitions: number
  /**
   * CLUSTER_SESSION_MS (default 10000): how long the group waits for a silent member before moving
   * its partitions. A real broker accepts only group.min.session.timeout.ms (6 s by default) to
   * group.max.session.timeout.ms (30 min).
   */
  sessionTimeoutMs: number
  logger: MembershipLogger
}

/** Redis keys of a cluster's ring (both in one Redis Cluster slot). */
export function ringKeys (cluster: string): RingKeys {
  const base = `counterd:ring:{${cluster}}`
  return { view: base, generation: `${base}:generation`, leaving: `${base}:leaving` }
}

interface RingKeys {
  view: string
  generation: string
  /** Hash: id of a member leaving with SIGTERM → until when (Redis clock, ms) it may hold partitions. */
  leaving: string
}

const ASSIGNER_NAME = 'CounterdRing'
const ASSIGNER_VERSION = 1
const USER_DATA_VERSION = 1
/** After a GROUP_JOIN, how long to look for this generation's view in Redis, and how often. */
const VIEW_WAIT_MS = 2000
const VIEW_POLL_MS = 50
const START_TIMEOUT_MS = 15_000
const LEADER_SYNC_PAUSE_MS = 150
const RESTART_MIN_MS = 1000
const RESTART_MAX_MS = 30_000

// Lua: one atomic step, so two leaders cannot interleave the generation bump and the write.
// ARGV = the view's JSON around its generation number, and a deadline in the Redis server's own
// clock (ms): a publish that reaches Redis after it (a stalled leader, a command that sat in a
// frozen server's socket) changes nothing, so it can never overwrite a newer leader's view — by
// the deadline the stalled leader has given up, and only then can the group move on.
const PUBLISH_SCRIPT = `
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[3]) then return -1 end
local g = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. g .. ARGV[2])
return g
`
// The Redis clock of the node that holds the ring keys (on Redis Cluster, TIME alone could go to
// another node, with another clock).
const TIME_SCRIPT = `
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`
// Lua: marks ARGV[1] as leaving for ARGV[2] ms of the Redis server's clock.
const LEAVING_SCRIPT = `
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2]))
return 1
`
// Lua: the stored view and the ids whose leaving marks have not expired (expired ones are dropped),
// read together so a view never comes with marks older than itself.
const VIEW_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local marks = redis.call('HGETALL', KEYS[2])
local leaving = {}
for i = 1, #marks, 2 do
  if tonumber(marks[i + 1]) > now then leaving[#leaving + 1] = marks[i] else redis.call('HDEL', KEYS[2], marks[i]) end
end
return { redis.call('GET', KEYS[1]), leaving }
`
/** How long a leaving mark lasts, in session timeouts: longer than a leaver's release may take. */
const LEAVING_SESSIONS = 3
/** A rejoin with no accepted heartbeat or join for this many session timeouts is stuck. */
const JOIN_STALL_SESSIONS = 3


interface Subscription extends MemberInfo {
  partitions: number
  startedAt: number
}

interface Resolved extends MembershipOptions {
  heartbeatIntervalMs: number
  maxWaitTimeMs: number
  /** No accepted heartbeat for this long → 'lost' (a margin under the session timeout). */
  lostAfterMs: number
  /** Redis command timeout, and how late a leader's publish may reach Redis. */
  redisTimeoutMs: number
}

export class Membership extends EventEmitter {
  private readonly o: Resolved
  private readonly log: MembershipLogger
  private readonly kafka: Kafka
  private readonly redis: RedisClient
  private readonly keys: RingKeys
  private readonly topic: string
  private readonly groupId: string
  private readonly startedAt = Date.now()

  private consumer: Consumer | null = null
  private view: RingView | null = null // the last adopted view (kept while lost, for comparison)
  private serving = false // a 'ring' was emitted and no 'lost' since
  private lostBy: 'session' | 'other' | null = null
  private stopped = false
  private joinSeq = 0 // bumped on every GROUP_JOIN (and stop) so an older view poll gives up
  private joining = false
  private lastProofAt = 0 // send time of the last request the coordinator accepted for this member
  private lastHeartbeatSentAt: number | null = null
  private lastSyncSentAt: number | null = null
  private joinedAt: number | null = null
  private readonly watchdog: NodeJS.Timeout
  private restartTimer: NodeJS.Timeout | null = null
  private restartDelayMs = RESTART_MIN_MS
  private restarting: Promise<void> | null = null

  /** Validates the options, connects to Redis and Kafka and starts joining the group. */
  static async start (options: MembershipOptions): Promise<Membership> {
    const o = validate(options)
    const { client: redis } = await connectRedis(o.redisUrl, { commandTimeoutMs: o.redisTimeoutMs, startTimeoutMs: START_TIMEOUT_MS })
    const m = new Membership(o, redis)
    try {
      // A mark left by this id's previous life (a SIGTERM a moment ago) would make the others wait
      // for a release that this life does not owe.
      await redis.hdel(m.keys.leaving, o.self.id)
      await withDeadline(START_TIMEOUT_MS, `Kafka brokers ${o.brokers.join(',')} not reachable`, async () => { await m.runConsumer() })
    } catch (err) {
      await m.stop()
      if (err instanceof CounterdError) throw err
      throw new CounterdError('storage_unavailable', `cannot join the Kafka group ${m.groupId} (topic ${m.topic}) on ${o.brokers.join(',')}: ${(err as Error).message}`)
    }
    return m
  }

  private constructor (o: Resolved, redis: RedisClient) {
    super()
    this.o = o
    this.log = o.logger
    this.redis = redis
    this.keys = ringKeys(o.cluster)
    this.topic = `${o.cluster}.members`
    this.groupId = `counterd.${o.cluster}`
    const log = o.logger
    this.kafka = new Kafka({
      clientId: `counterd.${o.cluster}`,
      brokers: o.brokers,
      connectionTimeout: 3000,
      logLevel: logLevel.WARN,
      // kafkajs logs every rebalance's heartbeat answer as an ERROR; this module logs what
      // matters (crashes, losses, views) itself, so kafkajs' own lines go to debug.
      logCreator: () => ({ level, namespace, log: entry }) => {
        const { message, error, groupId, memberId } = entry
        log.debug({ component: 'kafkajs', level: logLevel[level], namespace, error, groupId, memberId }, `kafkajs: ${String(message)}`)
      }
    })
    this.watchdog = setInterval(() => this.checkSession(), Math.min(250, o.heartbeatIntervalMs))
    this.watchdog.unref()
  }

  /** The adopted view while this member serves; null before the first 'ring' and after a 'lost'. */
  get current (): RingView | null {
    return this.serving ? this.view : null
  }

  /**
   * Planned leave: LeaveGroup (the others rebalance at once), then close Redis. With
   * `successorWaitMs`, first waits (at most that long) for the view the others adopt without this
   * member and resolves with it, so the node can hand its partitions straight to their new owners;
   * null when there is none (this was the last member, or it did not come in time).
   */
  async stop (successorWaitMs = 0): Promise<RingView | null> {
    if (this.stopped) return null
    const before = this.view
    this.stopped = true
    this.joinSeq++
    clearInterval(this.watchdog)
    if (this.restartTimer !== null) clearTimeout(this.restartTimer)
    this.restartTimer = null
    this.serving = false
    if (this.restarting !== null) await this.restarting.catch(() => {})
    // A join in flight cannot be left (kafkajs sends LeaveGroup only once it runs): let it finish.
    const until = Date.now() + this.o.sessionTimeoutMs
    while (this.joining && Date.now() < until) await sleep(20)
    const consumer = this.consumer
    this.consumer = null
    if (before !== null && before.members.length > 1) await this.markLeaving()
    if (consumer !== null) await consumer.disconnect().catch((err: Error) => this.log.warn({ cluster: this.o.cluster, err: err.message }, 'ring membership: Kafka consumer did not disconnect cleanly'))
    const successor = before !== null && before.members.length > 1 && successorWaitMs > 0 ? await this.successorOf(before, successorWaitMs) : null
    await this.redis.quit().catch(() => { this.redis.disconnect() })
    if (this.joinedAt !== null) this.log.info({ cluster: this.o.cluster, id: this.o.self.id, generation: this.view?.generation ?? null }, 'left the ring')
    else this.log.info({ cluster: this.o.cluster, id: this.o.self.id }, 'ring membership stopped before joining')
    return successor
  }

  /**
   * Before LeaveGroup: tells the members that take this node's partitions to wait for its release
   * (final commits and checkpoint) instead of taking them at once as after a crash; their appends
   * would otherwise fence the commits this node still has in flight. Without Redis the others
   * take over at once, and those commits fail (they are not acknowledged).
   */
  private async markLeaving (): Promise<void> {
    const ms = LEAVING_SESSIONS * this.o.sessionTimeoutMs
    await this.redis.eval(LEAVING_SCRIPT, 1, this.keys.leaving, this.o.self.id, String(ms)).catch((err: Error) => {
      this.log.warn({ cluster: this.o.cluster, err: err.message }, 'ring membership: could not mark this member as leaving; the others take its partitions at once')
    })
  }

  /** The first view after `before` that no longer has this member (polled in Redis), or null by the deadline. */
  private async successorOf (before: RingView, waitMs: number): Promise<RingView | null> {
    const deadline = Date.now() + waitMs
    while (Date.now() < deadline) {
      const raw = await this.redis.get(this.keys.view).catch(() => null)
      if (raw !== null) {
        const v = parseView(raw, this.o.cluster)
        if (typeof v !== 'string' && v.generation > before.generation && !v.members.some((m) => m.id === this.o.self.id)) return v
      }
      await sleep(50)
    }
    this.log.warn({ cluster: this.o.cluster, generation: before.generation }, 'no view without this member appeared in time; leaving the partitions to the usual handoff')
    return null
  }

  // ---- Kafka consumer --------------------------------------------------------------------------

  private async runConsumer (): Promise<void> {
    const o = this.o
    const consumer = this.kafka.consumer({
      groupId: this.groupId,
      partitionAssigners: [this.assigner()],
      sessionTimeout: o.sessionTimeoutMs,
      // How long the coordinator waits for every member to rejoin; live members rejoin within a
      // heartbeat, and a silent one is dropped after its session timeout anyway.
      rebalanceTimeout: o.sessionTimeoutMs,
      heartbeatInterval: o.heartbeatIntervalMs,
      // Heartbeats go out between fetches: a short fetch wait on the empty topic keeps them on time.
      maxWaitTimeInMs: o.maxWaitTimeMs,
      allowAutoTopicCreation: true,
      retry: { restartOnFailure: async () => !this.stopped }
    })
    this.consumer = consumer
    this.wire(consumer)
    try {
      await consumer.connect()
      await consumer.subscribe({ topics: [this.topic], fromBeginning: false })
      if (this.stopped || this.consumer !== consumer) throw new Error('stopped while connecting')
    } catch (err) {
      if (this.consumer === consumer) this.consumer = null
      await consumer.disconnect().catch(() => {})
      throw err
    }
    // Not awaited: run() resolves only after the first join (seconds on a fresh group).
    consumer.run({ autoCommit: false, eachMessage: async () => {} }).catch((err: Error) => {
      if (consumer !== this.consumer) return
      this.loseMembership(`the Kafka consumer did not start: ${err.message}`, 'other')
      this.scheduleRestart('consumer did not start')
    })
  }

  private wire (consumer: Consumer): void {
    const mine = (): boolean => consumer === this.consumer && !this.stopped
    const ev = consumer.events
    // stop() waits for a join in flight to end, so these two clear `joining` even when stopped.
    const joinEnded = (): boolean => {
      if (consumer !== this.consumer) return false
      this.joining = false
      return !this.stopped
    }
    consumer.on(ev.REQUEST, (e) => {
      if (!mine()) return
      if (e.payload.apiName === 'Heartbeat') this.lastHeartbeatSentAt = e.payload.sentAt
      else if (e.payload.apiName === 'SyncGroup') this.lastSyncSentAt = e.payload.sentAt
    })
    consumer.on(ev.HEARTBEAT, () => {
      if (!mine()) return
      this.lastProofAt = this.lastHeartbeatSentAt ?? Date.now()
      // A watchdog 'lost' the coordinator did not act on: same generation, same view. Only on a
      // heartbeat sent recently: one that sat in a frozen broker proves little about now.
      const fresh = Date.now() - this.lastProofAt < this.o.lostAfterMs / 2
      if (!this.serving && this.lostBy === 'session' && this.view !== null && !this.joining && fresh) {
        this.log.info({ cluster: this.o.cluster, generation: this.view.generation }, 'ring membership: heartbeats accepted again, same generation; serving the same view')
        this.serve(this.view)
      }
    })
    consumer.on(ev.GROUP_JOIN, (e) => {
      if (!joinEnded()) return
      this.lastProofAt = this.lastSyncSentAt ?? Date.now()
      this.log.debug({ cluster: this.o.cluster, memberId: e.payload.memberId, isLeader: e.payload.isLeader, joinMs: e.payload.duration }, 'ring membership: Kafka group joined')
      void this.adoptFromRedis(++this.joinSeq)
    })
    consumer.on(ev.REBALANCING, () => {
      if (!mine()) return
      this.log.debug({ cluster: this.o.cluster }, 'ring membership: group rebalancing, keeping the current view until the next one')
    })
    consumer.on(ev.CRASH, (e) => {
      if (!joinEnded()) return
      const { error, restart } = e.payload
      this.log.warn({ cluster: this.o.cluster, err: error.message, restart }, 'ring membership: Kafka consumer crashed')
      this.loseMembership(`the Kafka consumer crashed: ${error.message}`, 'other')
      if (!restart) this.scheduleRestart('consumer crashed and kafkajs will not restart it')
    })
  }

  // The assigner: protocol() runs at the start of every JoinGroup on every member, assign() on the
  // generation's leader only.
  private assigner (): PartitionAssigner {
    return ({ cluster }) => ({
      name: ASSIGNER_NAME,
      version: ASSIGNER_VERSION,
      protocol: ({ topics }) => {
        this.onJoinStart()
        const sub: Subscription = { ...this.o.self, partitions: this.o.partitions, startedAt: this.startedAt }
        return {
          name: ASSIGNER_NAME,
          metadata: AssignerProtocol.MemberMetadata.encode({ version: USER_DATA_VERSION, topics, userData: Buffer.from(JSON.stringify(sub)) })
        }
      },
      assign: async ({ members, topics }) => {
        const started = Date.now()
        const view = await this.publish(members)
        // Let the followers' SyncGroup requests reach the coordinator first: the librdkafka mock
        // completes a sync as soon as the leader's assignment arrives and answers a follower whose
        // SyncGroup comes later with INVALID_REQUEST (a real broker hands it its assignment), which
        // crashes that follower's consumer and costs two more rebalances. Harmless on real Kafka.
        const pause = LEADER_SYNC_PAUSE_MS - (Date.now() - started)
        if (pause > 0) await sleep(pause)
        // The Kafka assignment only has to be valid: spread the coordination topic round robin.
        const ids = members.map((m) => m.memberId).sort()
        const byMember = new Map<string, Record<string, number[]>>(ids.map((id) => [id, {}]))
        let i = 0
        for (const topic of topics) {
          for (const { partitionId } of cluster.findTopicPartitionMetadata(topic)) {
            const a = byMember.get(ids[i++ % ids.length]) as Record<string, number[]>
            ;(a[topic] ??= []).push(partitionId)
          }
        }
        const out: GroupMemberAssignment[] = ids.map((memberId) => ({
          memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: ASSIGNER_VERSION, assignment: byMember.get(memberId) as Record<string, number[]>, userData: Buffer.alloc(0) })
        }))
        this.log.debug({ cluster: this.o.cluster, generation: view.generation, kafkaMembers: members.length, ms: Date.now() - started }, 'ring membership: leader published the ring')
        return out
      }
    })
  }

  /** Leader: the ring of this generation, written to Redis before SyncGroup. */
  private async publish (members: GroupMember[]): Promise<RingView> {
    const byId = new Map<string, Subscription>()
    for (const m of members) {
      const sub = decodeSubscription(m.memberMetadata)
      if (typeof sub === 'string') {
        this.log.error({ cluster: this.o.cluster, memberId: m.memberId, problem: sub }, 'ring membership: a group member sent unreadable subscription data; it is left out of the ring')
        continue
      }
      if (sub.partitions !== this.o.partitions) {
        this.log.error({ cluster: this.o.cluster, member: sub.id, theirs: sub.partitions, ours: this.o.partitions }, 'ring membership: a member runs with another PARTITIONS; it is left out of the ring')
        continue
      }
      // The same node id twice: a restarted node whose old session has not expired yet. The newer
      // process (its addresses) wins; the old one drops out when its session times out.
      const seen = byId.get(sub.id)
      if (seen === undefined || sub.startedAt > seen.startedAt) byId.set(sub.id, sub)
    }
    const list = [...byId.values()].map((s): MemberInfo => ({ id: s.id, url: s.url, peerHost: s.peerHost, peerPorts: s.peerPorts }))
    list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    if (list.length === 0) throw new Error('no group member sent a usable subscription') // cannot happen: the leader is one
    const ids = list.map((m) => m.id)
    const owners = assignPartitions(ids, this.o.partitions)
    const known = new Set(ids)
    if (owners.length !== this.o.partitions || !owners.every((id) => known.has(id))) {
      throw new Error(`assignPartitions returned ${owners.length} owners for ${this.o.partitions} partitions, or an unknown owner`)
    }
    // JSON around the generation number, which only the script knows.
    const head = `{"cluster":${JSON.stringify(this.o.cluster)},"generation":`
    const tail = `,"members":${JSON.stringify(list)},"owners":${JSON.stringify(owners)}}`
    let generation: number
    try {
      const now = Number(await this.redis.eval(TIME_SCRIPT, 1, this.keys.view))
      generation = Number(await this.redis.eval(PUBLISH_SCRIPT, 2, this.keys.view, this.keys.generation, head, tail, String(now + this.o.redisTimeoutMs)))
      if (generation === -1) throw new Error(`the write reached Redis more than ${this.o.redisTimeoutMs} ms after it was prepared`)
    } catch (err) {
      // The join fails; kafkajs joins again, and the group tries again.
      this.log.warn({ cluster: this.o.cluster, err: (err as Error).message }, 'ring membership: as leader, could not publish the ring in Redis')
      throw new CounterdError('storage_unavailable', `cannot publish the ring of ${this.o.cluster} in Redis: ${(err as Error).message}`)
    }
    return { cluster: this.o.cluster, generation, members: list, owners }
  }

  // ---- adopting views --------------------------------------------------------------------------

  /** After GROUP_JOIN: this generation's view (or a newer one) is in Redis; adopt it. */
  private async adoptFromRedis (seq: number): Promise<void> {
    const deadline = Date.now() + VIEW_WAIT_MS
    let problem = 'no view yet'
    for (;;) {
      try {
        const [raw, leaving] = await this.redis.eval(VIEW_SCRIPT, 2, this.keys.view, this.keys.leaving) as [string | null, string[]]
        if (seq !== this.joinSeq || this.stopped) return
        const view = raw === null ? 'no view stored' : parseView(raw, this.o.cluster)
        if (typeof view !== 'string') {
          const gone = leaving.filter((id) => !view.members.some((m) => m.id === id))
          if (gone.length > 0) view.leaving = gone
        }
        if (typeof view === 'string') problem = view
        else if (!view.members.some((m) => m.id === this.o.self.id)) problem = `generation ${view.generation} does not include this member`
        else if (view.owners.length !== this.o.partitions) problem = `generation ${view.generation} has ${view.owners.length} partitions, this member ${this.o.partitions}`
        // Equal is fine: a poll of the previous join may already have read this join's view.
        else if (this.view !== null && view.generation < this.view.generation) problem = `generation ${view.generation} is older than the adopted ${this.view.generation}`
        else {
          this.restartDelayMs = RESTART_MIN_MS
          if (!this.serving || this.view === null || view.generation > this.view.generation) this.serve(view)
          return
        }
      } catch (err) {
        if (seq !== this.joinSeq || this.stopped) return
        problem = `Redis: ${(err as Error).message}`
      }
      if (Date.now() >= deadline) break
      await sleep(VIEW_POLL_MS)
      if (seq !== this.joinSeq || this.stopped) return
    }
    this.log.warn({ cluster: this.o.cluster, problem }, 'ring membership: joined the group but found no usable ring view; rejoining')
    this.loseMembership(`joined the Kafka group but found no ring view with this member within ${VIEW_WAIT_MS} ms (${problem})`, 'other')
    this.scheduleRestart('no ring view after joining')
  }

  private serve (view: RingView): void {
    freezeView(view)
    const prev = this.view
    const self = this.o.self.id
    this.view = view
    this.serving = true
    this.lostBy = null
    const owned = view.owners.reduce((n, id) => n + (id === self ? 1 : 0), 0)
    const ids = view.members.map((m) => m.id)
    if (this.joinedAt === null) {
      this.joinedAt = Date.now()
      this.log.info({ cluster: this.o.cluster, id: self, generation: view.generation, members: ids, owned, joinMs: this.joinedAt - this.startedAt }, 'joined the ring')
    } else if (prev !== null && prev !== view) {
      let gained = 0
      let released = 0
      for (let p = 0; p < view.owners.length; p++) {
        const was = prev.owners[p] === self
        const is = view.owners[p] === self
        if (is && !was) gained++
        if (was && !is) released++
      }
      this.log.info({ cluster: this.o.cluster, id: self, generation: view.generation, members: ids, owned, gained, released }, 'new ring view')
    }
    this.emit('ring', view)
  }

  private loseMembership (reason: string, by: 'session' | 'other'): void {
    if (!this.serving || this.stopped) return
    this.serving = false
    this.lostBy = by
    this.log.warn({ cluster: this.o.cluster, id: this.o.self.id, generation: this.view?.generation ?? null, reason }, 'lost ring membership: stop serving until the next view')
    this.emit('lost', reason)
  }

  // ---- failure detection on this side ----------------------------------------------------------

  private onJoinStart (): void {
    // A join after the session ran out (e.g. the heartbeat said UNKNOWN_MEMBER_ID after a stall):
    // the group has gone on without this member.
    this.checkSession()
    this.joining = true
  }

  private checkSession (): void {
    if (!this.serving || this.stopped) return
    const silent = Date.now() - this.lastProofAt
    if (this.joining) {
      // The coordinator keeps a member that waits in JoinGroup, and a rebalance waits at most a
      // session timeout for the silent; attempt after attempt failing (the leader cannot publish,
      // this member's SyncGroup keeps failing) for several sessions means the group may have gone
      // on without this member.
      if (silent > JOIN_STALL_SESSIONS * this.o.sessionTimeoutMs) {
        this.loseMembership(`no join completed for ${silent} ms (session timeout ${this.o.sessionTimeoutMs} ms)`, 'other')
      }
      return
    }
    if (silent > this.o.lostAfterMs) {
      this.loseMembership(`no heartbeat accepted for ${silent} ms (session timeout ${this.o.sessionTimeoutMs} ms): the group drops this member`, 'session')
    }
  }

  /** Leaves and rejoins with a fresh consumer, to force a new generation; backs off. */
  private scheduleRestart (why: string): void {
    if (this.stopped || this.restartTimer !== null || this.restarting !== null) return
    const delay = this.restartDelayMs
    this.restartDelayMs = Math.min(RESTART_MAX_MS, delay * 2)
    this.log.warn({ cluster: this.o.cluster, why, inMs: delay }, 'ring membership: restarting the Kafka consumer')
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null
      this.restarting = this.restartConsumer().finally(() => { this.restarting = null })
    }, delay)
  }

  private async restartConsumer (): Promise<void> {
    const old = this.consumer
    this.consumer = null
    this.joining = false
    if (old !== null) await old.disconnect().catch(() => {})
    if (this.stopped) return
    try {
      await withDeadline(START_TIMEOUT_MS, 'Kafka consumer restart', async () => { await this.runConsumer() })
    } catch (err) {
      this.log.warn({ cluster: this.o.cluster, err: (err as Error).message }, 'ring membership: Kafka consumer restart failed')
      this.restarting = null
      this.scheduleRestart('restart failed')
    }
  }
}

// ---- helpers -------------------------------------------------------------------------------------

function decodeSubscription (metadata: Buffer): Subscription | string {
  try {
    const meta = AssignerProtocol.MemberMetadata.decode(metadata)
    if (meta === null || meta.userData === undefined || meta.userData === null) return 'no user data'
    const sub = JSON.parse(meta.userData.toString('utf8')) as Subscription
    const bad = memberProblem(sub, 'member')
    if (bad !== null) return bad
    if (!Number.isSafeInteger(sub.partitions) || !Number.isSafeInteger(sub.startedAt)) return 'partitions or startedAt missing'
    return sub
  } catch (err) {
    return `undecodable: ${(err as Error).message}`
  }
}

/** A stored view, checked; a string says what is wrong with it. */
export function parseView (raw: string, cluster: string): RingView | string {
  let v: RingView
  try {
    v = JSON.parse(raw) as RingView
  } catch {
    return 'stored view is not JSON'
  }
  if (v === null || typeof v !== 'object') return 'stored view is not an object'
  if (v.cluster !== cluster) return `stored view belongs to cluster ${JSON.stringify(v.cluster)}`
  if (!Number.isSafeInteger(v.generation) || v.generation < 1) return 'stored view has no valid generation'
  if (!Array.isArray(v.members) || v.members.length === 0) return 'stored view has no members'
  for (const m of v.members) {
    const bad = memberProblem(m, 'stored view member')
    if (bad !== null) return bad
  }
  const ids = new Set(v.members.map((m) => m.id))
  if (!Array.isArray(v.owners) || !v.owners.every((id) => ids.has(id))) return 'stored view has an owner that is not a member'
  return { cluster: v.cluster, generation: v.generation, members: v.members.map((m) => ({ id: m.id, url: m.url, peerHost: m.peerHost, peerPorts: [...m.peerPorts] })), owners: v.owners }
}

function freezeView (v: RingView): void {
  for (const m of v.members) { Object.freeze(m.peerPorts); Object.freeze(m) }
  Object.freeze(v.members)
  Object.freeze(v.owners)
  Object.freeze(v)
}

function memberProblem (m: MemberInfo, what: string): string | null {
  if (m === null || typeof m !== 'object') return `${what} is not an object`
  if (typeof m.id !== 'string' || !ID_RE.test(m.id)) return `${what} has no valid id`
  if (typeof m.url !== 'string' || !isHttpUrl(m.url)) return `${what} ${m.id} has no valid url`
  if (typeof m.peerHost !== 'string' || !HOST_RE.test(m.peerHost)) return `${what} ${m.id} has no valid peerHost`
  if (!Array.isArray(m.peerPorts) || m.peerPorts.length === 0 || !m.peerPorts.every(isPort)) return `${what} ${m.id} has no valid peerPorts`
  return null
}

const ID_RE = /^[\x21-\x7e]{1,256}$/
const HOST_RE = /^[A-Za-z0-9._:[\]-]{1,253}$/
const CLUSTER_RE = /^[A-Za-z0-9._-]{1,64}$/
const BROKER_RE = /^[^\s:,]+:\d{1,5}$/

function isPort (p: unknown): boolean {
  return Number.isSafeInteger(p) && (p as number) >= 1 && (p as number) <= 65535
}

function isHttpUrl (s: string): boolean {
  try {
    const u = new URL(s)
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== ''
  } catch {
    return false
  }
}

function invalid (message: string): CounterdError {
  return new CounterdError('invalid_option', message)
}

function validate (o: MembershipOptions): Resolved {
  if (o === null || typeof o !== 'object') throw invalid('options must be an object')
  if (!Array.isArray(o.brokers) || o.brokers.length === 0 || !o.brokers.every((b) => typeof b === 'string' && BROKER_RE.test(b))) {
    throw invalid(`options.brokers must be a non-empty list of "host:port", got ${JSON.stringify(o.brokers)}`)
  }
  if (typeof o.redisUrl !== 'string' || o.redisUrl.trim() === '' || !o.redisUrl.split(',').every((u) => isRedisUrl(u.trim()))) {
    throw invalid(`options.redisUrl must be a redis:// or rediss:// URL, or a comma-separated list of them, got ${JSON.stringify(o.redisUrl)}`)
  }
  if (typeof o.cluster !== 'string' || !CLUSTER_RE.test(o.cluster)) {
    throw invalid(`options.cluster must be 1 to 64 of [A-Za-z0-9._-], got ${JSON.stringify(o.cluster)}`)
  }
  const s = o.self
  if (s === null || typeof s !== 'object') throw invalid('options.self must be an object {id, url, peerHost, peerPorts}')
  if (typeof s.id !== 'string' || !ID_RE.test(s.id)) throw invalid(`options.self.id must be 1 to 256 printable ASCII characters without spaces, got ${JSON.stringify(s.id)}`)
  if (typeof s.url !== 'string' || !isHttpUrl(s.url)) throw invalid(`options.self.url must be an http:// or https:// URL, got ${JSON.stringify(s.url)}`)
  if (typeof s.peerHost !== 'string' || !HOST_RE.test(s.peerHost)) throw invalid(`options.self.peerHost must be a host name or IP address, got ${JSON.stringify(s.peerHost)}`)
  if (!Array.isArray(s.peerPorts) || s.peerPorts.length === 0 || !s.peerPorts.every(isPort)) {
    throw invalid(`options.self.peerPorts must be a non-empty list of ports (integers from 1 to 65535), got ${JSON.stringify(s.peerPorts)}`)
  }
  if (!Number.isSafeInteger(o.partitions) || o.partitions < 1 || o.partitions > 65535) {
    throw invalid(`options.partitions must be an integer from 1 to 65535, got ${JSON.stringify(o.partitions)}`)
  }
  const S = o.sessionTimeoutMs
  if (!Number.isSafeInteger(S) || S < 1000 || S > 1_800_000) {
    throw invalid(`options.sessionTimeoutMs must be an integer from 1000 to 1800000, got ${JSON.stringify(S)}`)
  }
  const l = o.logger
  if (l === null || typeof l !== 'object' || !(['info', 'warn', 'error', 'debug'] as const).every((k) => typeof l[k] === 'function')) {
    throw invalid('options.logger must have info, warn, error and debug functions')
  }
  const heartbeatIntervalMs = Math.max(100, Math.floor(S / 10))
  return {
    brokers: [...o.brokers],
    redisUrl: o.redisUrl,
    cluster: o.cluster,
    self: { id: s.id, url: s.url, peerHost: s.peerHost, peerPorts: [...s.peerPorts] },
    partitions: o.partitions,
    sessionTimeoutMs: S,
    logger: l,
    heartbeatIntervalMs,
    maxWaitTimeMs: Math.min(200, heartbeatIntervalMs),
    lostAfterMs: S - Math.min(Math.floor(S / 5), 2000),
    // The leader's write sits inside a rebalance: it must fail well within the session timeout.
    redisTimeoutMs: Math.max(200, Math.min(5000, Math.floor(S / 3)))
  }
}

function isRedisUrl (s: string): boolean {
  try {
    const u = new URL(s)
    return u.protocol === 'redis:' || u.protocol === 'rediss:'
  } catch {
    return false
  }
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
