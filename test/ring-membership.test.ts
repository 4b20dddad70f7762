// Ring membership (cluster/membership.ts) against a real Kafka protocol server (librdkafka's mock
// cluster, started by kcat) and a real redis-server, both private to each test. No timing
// thresholds: every wait is for a condition, with a generous deadline; the times measured are
// printed as comments (on the mock a fresh group waits 3 s for more members, and every later
// rebalance waits sessionTimeout − 1 s, so these are mostly the mock's delays).
import { spawn } from 'node:child_process'
import path from 'node:path'
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { Membership, ringKeys, type MemberInfo, type MembershipLogger, type MembershipOptions, type RingView } from '../cluster/membership'
import { startKafka, type KafkaMock } from './support/kafka'
import { startRedis } from './support/redis'
import { startControlledRedis, type ControlledRedis } from './support/redis-server'
import { stopProcess, track } from './support/process-control'

// tap's default is 30 s per file; these tests spend most of their ~45 s waiting for the mock's
// rebalance delays and the session timeouts, so allow for a slow machine.
t.setTimeout(180_000)

const SESSION_MS = 3000
const PARTITIONS = 64
const DEADLINE_MS = 30_000
const MEMBER_SCRIPT = path.join(__dirname, 'support', 'membership-member.js')

let clusterN = 0
function clusterName (): string { return `rm${process.pid}-${++clusterN}` }

function member (n: number): MemberInfo {
  return { id: `http://10.9.0.${n}:8080`, url: `http://10.9.0.${n}:8080`, peerHost: `10.9.0.${n}`, peerPorts: [7100 + n, 7200 + n] }
}

interface LogLine { level: string, msg: string, obj: Record<string, unknown> }

function captureLogger (name: string, lines: LogLine[] = []): MembershipLogger & { lines: LogLine[] } {
  const at = (level: string) => (obj: object, msg: string): void => {
    lines.push({ level, msg, obj: obj as Record<string, unknown> })
    if (process.env.MEMBERSHIP_LOG !== undefined && (level !== 'debug' || process.env.MEMBERSHIP_LOG === 'debug')) {
      process.stderr.write(`${new Date().toISOString()} ${name} ${level} ${msg} ${JSON.stringify(obj)}\n`)
    }
  }
  return { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug'), lines }
}

interface Tracked {
  m: Membership
  self: MemberInfo
  rings: RingView[]
  lost: string[]
  log: ReturnType<typeof captureLogger>
}

interface Env { kafka: KafkaMock, redisUrl: string, base: Omit<MembershipOptions, 'self' | 'logger'> }

async function env (tt: Test, redis?: ControlledRedis): Promise<Env> {
  const [kafka, redisUrl] = await Promise.all([startKafka(tt), redis !== undefined ? redis.url : startRedis(tt).then((r) => r.url)])
  return { kafka, redisUrl, base: { brokers: kafka.brokers, redisUrl, cluster: clusterName(), partitions: PARTITIONS, sessionTimeoutMs: SESSION_MS } }
}

async function join (tt: Test, e: Env, n: number): Promise<Tracked> {
  const self = member(n)
  const log = captureLogger(`m${n}`)
  const m = await Membership.start({ ...e.base, self, logger: log })
  tt.teardown(async () => { await m.stop() }) // after the servers' teardowns were registered: runs first
  const tr: Tracked = { m, self, rings: [], lost: [], log }
  m.on('ring', (v: RingView) => tr.rings.push(v))
  m.on('lost', (reason: string) => tr.lost.push(reason))
  return tr
}

async function waitFor (what: string, cond: () => boolean, deadlineMs = DEADLINE_MS): Promise<number> {
  const started = Date.now()
  while (!cond()) {
    if (Date.now() - started > deadlineMs) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return Date.now() - started
}

/** Leaving one by one would have each later leave wait for the rebalance the previous one started. */
async function stopAll (ms: Tracked[]): Promise<void> {
  await Promise.all(ms.map(async (x) => { await x.m.stop() }))
}

const ids = (v: RingView | null): string[] => v === null ? [] : v.members.map((m) => m.id)
const owned = (v: RingView, id: string): number => v.owners.filter((o) => o === id).length

/** Every member has a current view with exactly these member ids, all of the same generation. */
function converged (ms: Tracked[], expected: string[]): boolean {
  const want = [...expected].sort().join(' ')
  const views = ms.map((x) => x.m.current)
  return views.every((v) => v !== null && ids(v).join(' ') === want && v.generation === views[0]?.generation)
}

function sameViews (tt: Test, ms: Tracked[]): void {
  const first = ms[0].m.current
  for (const x of ms.slice(1)) tt.same(x.m.current, first, `${x.self.id} holds the same view as ${ms[0].self.id}`)
}

t.test('one member: a view that owns every partition, in Redis under the ring key', async (t) => {
  const e = await env(t)
  const a = await join(t, e, 1)
  t.equal(a.m.current, null, 'no view before the first ring event')
  const ms = await waitFor('the first view', () => a.m.current !== null)
  t.comment(`first join of a fresh group: ${ms} ms after start() resolved`)

  const view = a.m.current as RingView
  t.same(Object.keys(view), ['cluster', 'generation', 'members', 'owners'], 'view fields')
  t.equal(view.cluster, e.base.cluster)
  t.ok(Number.isSafeInteger(view.generation) && view.generation >= 1, 'generation is a positive integer')
  t.same(view.members, [a.self], 'the one member, with its addresses')
  t.equal(view.owners.length, PARTITIONS, 'one owner per partition')
  t.ok(view.owners.every((o) => o === a.self.id), 'it owns every partition')
  t.same(a.rings, [view], 'one ring event, carrying the view')
  t.same(a.lost, [], 'no lost event')

  const redis = new Redis(e.redisUrl)
  t.teardown(() => { redis.disconnect() })
  const keys = ringKeys(e.base.cluster)
  t.same(JSON.parse(await redis.get(keys.view) as string), view, 'the Redis record is the view')
  t.equal(Number(await redis.get(keys.generation)), view.generation, 'the generation counter')

  const joined = a.log.lines.find((l) => l.msg === 'joined the ring')
  t.match(joined, { level: 'info', obj: { generation: view.generation, members: [a.self.id], owned: PARTITIONS } }, 'join logged at info')
  await a.m.stop()
  t.ok(a.log.lines.some((l) => l.level === 'info' && l.msg === 'left the ring'), 'leave logged at info')
  t.equal(a.m.current, null, 'no view after stop')
})

t.test('three members converge on one generation and split the partitions', async (t) => {
  const e = await env(t)
  const ms = await Promise.all([1, 2, 3].map(async (n) => await join(t, e, n)))
  const all = ms.map((x) => x.self.id)
  const took = await waitFor('three members in one view', () => converged(ms, all))
  t.comment(`three members started together: one view after ${took} ms`)
  sameViews(t, ms)
  const view = ms[0].m.current as RingView
  t.same(view.members, [...ms.map((x) => x.self)].sort((a, b) => a.id < b.id ? -1 : 1), 'members sorted by id, with their addresses')
  t.equal(view.owners.length, PARTITIONS)
  t.ok(view.owners.every((o) => all.includes(o)), 'every partition owned by exactly one of them')
  for (const x of ms) {
    const n = owned(view, x.self.id)
    t.ok(n >= PARTITIONS / 6 && n <= PARTITIONS / 2, `${x.self.id} owns roughly a third (${n} of ${PARTITIONS})`)
  }
  for (const x of ms) t.same(x.lost, [], `${x.self.id}: no lost event`)

  // A fourth member joins later: a new generation for everyone.
  const d = await join(t, e, 4)
  const before = view.generation
  const took4 = await waitFor('the fourth member in every view', () => converged([...ms, d], [...all, d.self.id]))
  t.comment(`a member joining a running group of three: every member has the new view after ${took4} ms`)
  t.ok((d.m.current as RingView).generation > before, 'a higher generation')
  sameViews(t, [...ms, d])
  const moved = ms[0].log.lines.find((l) => l.msg === 'new ring view')
  t.match(moved, { level: 'info', obj: { gained: Number, released: Number, members: Array } }, 'each new view logged with the partitions moved')
  await stopAll([...ms, d])
})

t.test('planned leave: the survivors get a view without the leaver', async (t) => {
  const e = await env(t)
  const ms = await Promise.all([1, 2, 3].map(async (n) => await join(t, e, n)))
  await waitFor('three members in one view', () => converged(ms, ms.map((x) => x.self.id)))
  const gen = (ms[0].m.current as RingView).generation
  const [leaver, ...survivors] = [ms[1], ms[0], ms[2]]
  const stopAt = Date.now()
  await leaver.m.stop()
  const stopMs = Date.now() - stopAt
  const took = await waitFor('a view without the leaver', () => converged(survivors, survivors.map((x) => x.self.id)))
  t.comment(`planned leave: stop() took ${stopMs} ms; survivors had the new view ${took} ms later`)
  const view = survivors[0].m.current as RingView
  t.ok(view.generation > gen, 'a higher generation')
  t.notOk(view.owners.includes(leaver.self.id), 'the leaver owns nothing')
  sameViews(t, survivors)
  for (const x of survivors) t.same(x.lost, [], `${x.self.id}: a rebalance is not a loss`)
  t.same(leaver.lost, [], 'a planned stop emits no lost event')
  t.same(view.leaving, [leaver.self.id], 'the view names the leaver as leaving: its successors wait for its release')

  // Started again under the same id, it clears its mark: nobody waits for a release it does not owe.
  const back = await join(t, e, 2)
  const all = [...survivors, back]
  await waitFor('the leaver back in one view', () => converged(all, all.map((x) => x.self.id)))
  for (const x of all) t.equal(x.m.current?.leaving, undefined, `${x.self.id}: no member is leaving`)
  await stopAll(all)
})

t.test('crash: a member killed without LeaveGroup drops out after its session timeout', async (t) => {
  const e = await env(t)
  const ms = await Promise.all([1, 2].map(async (n) => await join(t, e, n)))
  const victim = member(3)
  const child = track(spawn(process.execPath, [MEMBER_SCRIPT, JSON.stringify({ ...e.base, self: victim })], { stdio: ['ignore', 'pipe', 'pipe'] }))
  t.teardown(async () => { await stopProcess(child) })
  let childOut = ''
  let childErr = ''
  const childViews: RingView[] = []
  child.stdout?.on('data', (c: Buffer) => {
    childOut += c.toString('utf8')
    let nl: number
    while ((nl = childOut.indexOf('\n')) >= 0) {
      const line = childOut.slice(0, nl)
      childOut = childOut.slice(nl + 1)
      const ev = JSON.parse(line) as { event: string, view?: RingView }
      if (ev.event === 'ring' && ev.view !== undefined) childViews.push(ev.view)
    }
  })
  child.stderr?.on('data', (c: Buffer) => { childErr = (childErr + c.toString('utf8')).slice(-4000) })

  const all = [...ms.map((x) => x.self.id), victim.id]
  try {
    await waitFor('three members, one in another process, in one view', () => {
      const last = childViews.at(-1)
      return converged(ms, all) && last !== undefined && last.generation === ms[0].m.current?.generation
    })
  } catch (err) {
    t.comment(`child output: ${childErr}`)
    throw err
  }
  t.same(childViews.at(-1), ms[0].m.current, 'the child holds the same view')

  const killedAt = Date.now()
  child.kill('SIGKILL')
  await waitFor('a view without the killed member', () => converged(ms, ms.map((x) => x.self.id)))
  t.comment(`crash (kill -9, sessionTimeoutMs ${SESSION_MS}): survivors had a view without it ${Date.now() - killedAt} ms after the kill`)
  const view = ms[0].m.current as RingView
  t.notOk(view.owners.includes(victim.id), 'the dead member owns nothing')
  t.same(view.owners.length, PARTITIONS)
  sameViews(t, ms)
  for (const x of ms) t.same(x.lost, [], `${x.self.id}: survivors never lost their membership`)
  t.equal(view.leaving, undefined, 'a crashed member is not leaving: its partitions are taken at once')
  await stopAll(ms)
})

t.test('outages: a silent coordinator, then a silent Redis during a rebalance', async (t) => {
  const redis = await startControlledRedis(t)
  const e = await env(t, redis)
  const [a, b] = await Promise.all([1, 2].map(async (n) => await join(t, e, n)))
  await waitFor('two members in one view', () => converged([a, b], [a.self.id, b.self.id]))
  const gen = (a.m.current as RingView).generation

  // Kafka frozen: no heartbeat is answered, so both stop serving before their sessions run out.
  const frozenAt = Date.now()
  e.kafka.pause()
  let kafkaFrozen = true
  t.teardown(() => { if (kafkaFrozen) e.kafka.resume() })
  await waitFor('lost events', () => a.lost.length > 0 && b.lost.length > 0)
  t.comment(`brokers frozen: lost after ${Date.now() - frozenAt} ms (sessionTimeoutMs ${SESSION_MS})`)
  for (const x of [a, b]) {
    t.match(x.lost, [/^no heartbeat accepted for \d+ ms \(session timeout 3000 ms\)/], `${x.self.id}: one lost event, saying why`)
    t.equal(x.m.current, null, `${x.self.id}: no current view while lost`)
  }
  const resumedAt = Date.now()
  e.kafka.resume()
  kafkaFrozen = false
  await waitFor('views after the brokers answer again', () => converged([a, b], [a.self.id, b.self.id]))
  t.comment(`brokers back: a view again after ${Date.now() - resumedAt} ms`)
  t.ok((a.m.current as RingView).generation >= gen, 'the same generation (heartbeats accepted again), or a newer one (sessions had expired)')
  t.equal(a.rings.length, 2, 'a second ring event')

  // Redis frozen while b leaves: the leader cannot publish the next view, so the rebalance cannot
  // complete; a keeps its view through a rebalance, then gives up after a few session timeouts.
  const gen2 = (a.m.current as RingView).generation
  redis.pause()
  let redisFrozen = true
  t.teardown(() => { if (redisFrozen) redis.resume() })
  const leftAt = Date.now()
  await b.m.stop()
  await waitFor('a lost event while Redis is frozen', () => a.lost.length > 1)
  t.comment(`Redis frozen during a rebalance: lost after ${Date.now() - leftAt} ms`)
  t.match(a.lost[1], /^no join completed for \d+ ms \(session timeout 3000 ms\)/, 'the reason says why')
  t.ok(a.log.lines.some((l) => l.level === 'warn' && l.msg === 'ring membership: as leader, could not publish the ring in Redis'), 'the failed publish is logged')
  redis.resume()
  redisFrozen = false
  await waitFor('a view without b once Redis answers', () => converged([a], [a.self.id]))
  const view = a.m.current as RingView
  t.equal(view.generation, gen2 + 1, 'the next generation: publishes that reached Redis late changed nothing')
  t.ok(view.owners.every((o) => o === a.self.id), 'a owns everything')
})

t.test('options are validated: code invalid_option and a message naming the option', async (t) => {
  const ok: MembershipOptions = {
    brokers: ['127.0.0.1:9092'],
    redisUrl: 'redis://127.0.0.1:6379',
    cluster: 'main',
    self: member(1),
    partitions: 64,
    sessionTimeoutMs: 10_000,
    logger: captureLogger('v')
  }
  const cases: Array<[string, unknown, string]> = [
    ['options null', null, 'options must be an object'],
    ['no brokers', { ...ok, brokers: [] }, 'options.brokers must be a non-empty list of "host:port", got []'],
    ['broker without port', { ...ok, brokers: ['localhost'] }, 'options.brokers must be a non-empty list of "host:port", got ["localhost"]'],
    ['redisUrl http', { ...ok, redisUrl: 'http://127.0.0.1:6379' }, 'options.redisUrl must be a redis:// or rediss:// URL, or a comma-separated list of them, got "http://127.0.0.1:6379"'],
    ['redisUrl empty', { ...ok, redisUrl: '' }, 'options.redisUrl must be a redis:// or rediss:// URL, or a comma-separated list of them, got ""'],
    ['cluster with a space', { ...ok, cluster: 'a b' }, 'options.cluster must be 1 to 64 of [A-Za-z0-9._-], got "a b"'],
    ['cluster with a colon', { ...ok, cluster: 'a:b' }, 'options.cluster must be 1 to 64 of [A-Za-z0-9._-], got "a:b"'],
    ['self missing', { ...ok, self: undefined }, 'options.self must be an object {id, url, peerHost, peerPorts}'],
    ['self.id empty', { ...ok, self: { ...ok.self, id: '' } }, 'options.self.id must be 1 to 256 printable ASCII characters without spaces, got ""'],
    ['self.url not http', { ...ok, self: { ...ok.self, url: 'ftp://10.9.0.1' } }, 'options.self.url must be an http:// or https:// URL, got "ftp://10.9.0.1"'],
    ['self.peerHost empty', { ...ok, self: { ...ok.self, peerHost: '' } }, 'options.self.peerHost must be a host name or IP address, got ""'],
    ['self.peerPorts empty', { ...ok, self: { ...ok.self, peerPorts: [] } }, 'options.self.peerPorts must be a non-empty list of ports (integers from 1 to 65535), got []'],
    ['self.peerPorts 0', { ...ok, self: { ...ok.self, peerPorts: [7001, 0] } }, 'options.self.peerPorts must be a non-empty list of ports (integers from 1 to 65535), got [7001,0]'],
    ['partitions 0', { ...ok, partitions: 0 }, 'options.partitions must be an integer from 1 to 65535, got 0'],
    ['partitions fractional', { ...ok, partitions: 1.5 }, 'options.partitions must be an integer from 1 to 65535, got 1.5'],
    ['partitions too many', { ...ok, partitions: 65536 }, 'options.partitions must be an integer from 1 to 65535, got 65536'],
    ['sessionTimeoutMs too short', { ...ok, sessionTimeoutMs: 999 }, 'options.sessionTimeoutMs must be an integer from 1000 to 1800000, got 999'],
    ['sessionTimeoutMs missing', { ...ok, sessionTimeoutMs: undefined }, 'options.sessionTimeoutMs must be an integer from 1000 to 1800000, got undefined'],
    ['logger without debug', { ...ok, logger: { info: () => {}, warn: () => {}, error: () => {} } }, 'options.logger must have info, warn, error and debug functions']
  ]
  for (const [name, opts, message] of cases) {
    await t.rejects(Membership.start(opts as MembershipOptions), { name: 'CounterdError', code: 'invalid_option', message }, name)
  }
})
