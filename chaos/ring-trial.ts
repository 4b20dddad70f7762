// One chaos trial in ring mode: two nodes (cluster storage: a Kafka and a Redis shared by the run)
// serve mixed load — HTTP increments with Idempotency-Keys through either node, likes, increments
// naming actors, and a stream — when a third node joins, so partitions hand over from the two to
// it; at a random moment of that handoff one of the three is killed with SIGKILL, then restarted
// on its port (its id, so it gets its partitions back), and the load goes on. Every client retries
// what it was not told succeeded (same Idempotency-Key, or same clientId and seq). At the end every
// counter, like count and unique count read through each node must be exactly what was sent.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Redis } from 'ioredis'
import { CounterStream } from '../client'
import { freePort } from '../src/node/free-port'
import { MAIN, sleep, until200 } from './trial'

export interface RingTrialOptions {
  /**
   * Kafka brokers and a Redis URL, shared by every trial of a run: each trial has its own cluster
   * name and topic, and empties the Redis first (checkpoint keys are per partition, not per ring).
   */
  kafkaBrokers: string
  redisUrl: string
  /** the kill comes this long after the third node is started: uniform in [min, max] ms */
  killAfterMs: [number, number]
  random: () => number
  /** also a stream of increments (through the first node); default true */
  stream?: boolean
}

export interface RingTrialResult {
  /** which node was killed (0 and 1 the first two, 2 the joining one) and when */
  killed: number
  killedAtMs: number
  /** from the restart until the three nodes served every partition again */
  recoveryMs: number
  acked: number
  lost: number
  double: number
  problems: string[]
}

const PARTITIONS = 64
/** A request may wait this long (a partition moving to a node that is restarting). */
const ATTEMPT_MS = 10_000

interface RingNode { port: number, dataDir: string, base: string, proc: ChildProcess, exited: Promise<void>, output: () => string }

/** A node on `port`; its data dir (the lock, the node's epoch) is kept across its restart. */
function startNode (port: number, env: Record<string, string>, dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-ring-chaos-'))): RingNode {
  const proc = spawn(process.execPath, [MAIN], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn', LIKES_PER_MINUTE: '1000000', ...env },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let out = ''
  proc.stderr?.on('data', (c: Buffer) => { out = (out + c.toString('utf8')).slice(-8192) })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  return { port, dataDir, base: `http://127.0.0.1:${port}`, proc, exited, output: () => out }
}


/** The partitions the node serves now (counterd_partitions_owned), 0 when it does not answer. */
async function owned (node: RingNode): Promise<number> {
  try {
    const m = /\ncounterd_partitions_owned (\d+)\n/.exec(await (await fetch(`${node.base}/metrics`, { signal: AbortSignal.timeout(5000) })).text())
    return m === null ? 0 : Number(m[1])
  } catch {
    return 0
  }
}

/** Waits until every node is ready and together they serve every partition, each of them some. */
async function settled (nodes: RingNode[], timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    for (const n of nodes) if (n.proc.exitCode !== null) throw new Error(`a node exited with ${n.proc.exitCode}: ${n.output()}`)
    const counts = await Promise.all(nodes.map(owned))
    if (counts.every((c) => c > 0) && counts.reduce((a, b) => a + b, 0) === PARTITIONS) return
    if (Date.now() > deadline) throw new Error(`the ring did not settle within ${timeoutMs} ms (owned ${counts.join(' + ')})`)
    await sleep(100)
  }
}

export async function runRingTrial (o: RingTrialOptions): Promise<RingTrialResult> {
  const name = `chaos-${process.pid}-${randomBytes(3).toString('hex')}`
  const env = {
    KAFKA_BROKERS: o.kafkaBrokers,
    KAFKA_TOPIC: `${name}-deltas`,
    REDIS_URL: o.redisUrl,
    CLUSTER_NAME: name,
    CLUSTER_SESSION_MS: '3000',
    WORKERS: '2',
    CHECKPOINT_INTERVAL_MS: '200'
  }
  const redis = new Redis(o.redisUrl, { maxRetriesPerRequest: 1 })
  try { await redis.flushall() } finally { redis.disconnect() }
  const ports = await Promise.all([0, 1, 2].map(async () => await freePort()))
  const nodes: RingNode[] = [startNode(ports[0], env), startNode(ports[1], env)]
  const rnd = (n: number): number => Math.floor(o.random() * n)
  const result: RingTrialResult = { killed: -1, killedAtMs: 0, recoveryMs: 0, acked: 0, lost: 0, double: 0, problems: [] }
  let stopping = false
  let givingUp = false
  let stream: CounterStream | null = null
  try {
    await settled(nodes)
    const expected = new Map<string, number>()
    const add = (key: string, by: number): void => { expected.set(key, (expected.get(key) ?? 0) + by) }
    let serial = 0
    // Each request goes to one of the first two nodes (any node answers any key).
    const via = (): string => nodes[rnd(2)].base

    const httpWorker = async (w: number): Promise<void> => {
      while (!stopping) {
        const key = `h${rnd(40)}`
        const by = 1 + rnd(3)
        add(`rc:${key}`, by)
        await until200(`${via()}/v1/counter/rc/${key}/increment`, { method: 'POST', body: JSON.stringify({ by }), headers: { 'idempotency-key': `w${w}-${serial++}` } }, () => givingUp, ATTEMPT_MS)
        result.acked++
      }
    }
    const actors = new Set<string>()
    const actorWorker = async (): Promise<void> => {
      while (!stopping) {
        const actor = `a${rnd(100)}`
        actors.add(actor)
        add('rc:uniq', 1)
        await until200(`${via()}/v1/counter/rc/uniq/increment`, { method: 'POST', body: JSON.stringify({ by: 1, actor }), headers: { 'idempotency-key': `act-${serial++}` } }, () => givingUp, ATTEMPT_MS)
        result.acked++
      }
    }
    const likers = new Map<string, Set<string>>()
    const likeWorker = async (): Promise<void> => {
      while (!stopping) {
        const item = `i${rnd(8)}`
        const user = `u${rnd(300)}`
        if (!likers.has(item)) likers.set(item, new Set())
        ;(likers.get(item) as Set<string>).add(user)
        await until200(`${via()}/v1/like`, { method: 'POST', body: JSON.stringify({ user_id: user, item_id: item, item_type: 'rc' }) }, () => givingUp, ATTEMPT_MS)
        result.acked++
      }
    }
    const s = stream = new CounterStream({ url: nodes[0].base, clientId: `${name}-stream`, maxOpsPerFrame: 100, reconnectMinMs: 10, reconnectMaxMs: 200 })
    const streamWorker = async (): Promise<void> => {
      while (!stopping) {
        for (let i = 0; i < 100; i++) {
          const key = `s${rnd(50)}`
          add(`rc:${key}`, 1)
          if (!s.add('rc', key, 1)) await new Promise(resolve => s.once('drain', resolve))
        }
        await sleep(10)
      }
    }
    const workers = [...Array.from({ length: 3 }, async (_, w) => await httpWorker(w)), actorWorker(), likeWorker(), ...(o.stream === false ? [] : [streamWorker()])]
    await sleep(300)

    // A third node joins: partitions move to it. The kill lands during that handoff.
    nodes.push(startNode(ports[2], env))
    const [lo, hi] = o.killAfterMs
    result.killedAtMs = lo + rnd(hi - lo + 1)
    result.killed = rnd(3)
    await sleep(result.killedAtMs)
    const victim = nodes[result.killed]
    victim.proc.kill('SIGKILL')
    await victim.exited
    const restarted = Date.now()
    nodes[result.killed] = startNode(victim.port, env, victim.dataDir)
    await settled(nodes)
    result.recoveryMs = Date.now() - restarted
    await sleep(500) // load goes on against the settled ring
    stopping = true
    const stuck = setTimeout(() => { givingUp = true }, 120_000)
    await Promise.all(workers)
    await s.flush()
    result.acked += s.stats.ackedOps
    clearTimeout(stuck)

    // Through every node: each counter, like count and the unique count against what was sent.
    const keys = [...expected.keys()]
    for (const [i, node] of nodes.entries()) {
      const values = (await until200(`${node.base}/v1/counters/query`, { method: 'POST', body: JSON.stringify({ keys }) }, () => true, ATTEMPT_MS)).values as Record<string, number>
      for (const key of keys) {
        const want = expected.get(key) ?? 0
        const got = values[key]
        if (got === want) continue
        result.problems.push(`node ${i}: ${key}: ${got} instead of ${want}`)
        if (i === 0) {
          if (got < want) result.lost += want - got
          else result.double += got - want
        }
      }
      for (const [item, users] of likers) {
        const count = (await until200(`${node.base}/v1/count?item_type=rc&item_id=${item}`, {}, () => true, ATTEMPT_MS)).count as number
        if (count === users.size) continue
        result.problems.push(`node ${i}: likes of rc:${item}: ${count} instead of ${users.size}`)
        if (i === 0) {
          if (count < users.size) result.lost += users.size - count
          else result.double += count - users.size
        }
      }
    }
    // The HyperLogLog: exact while it keeps its exact set; after a restart from a checkpoint, its estimate.
    const unique = (await until200(`${nodes[0].base}/v1/counter/rc/uniq/unique`, {}, () => true, ATTEMPT_MS)).unique as number
    const tolerance = Math.max(1, Math.ceil(0.03 * actors.size))
    if (Math.abs(unique - actors.size) > tolerance) result.problems.push(`rc:uniq: ${unique} unique actors instead of ${actors.size} (± ${tolerance})`)
    return result
  } finally {
    stopping = true
    givingUp = true
    await stream?.close().catch(() => {})
    for (const n of nodes) n.proc.kill('SIGKILL')
    await Promise.all(nodes.map(async (n) => await n.exited))
    for (const n of nodes) fs.rmSync(n.dataDir, { recursive: true, force: true })
  }
}
