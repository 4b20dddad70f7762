// One chaos trial: a node under mixed load (HTTP increments with Idempotency-Keys, a stream of
// increments, likes, increments naming actors, resets) is killed with SIGKILL at a random moment,
// restarted on the same data, and the load goes on: every client retries what it was not told
// succeeded, with the same Idempotency-Key, clientId and seq. At the end every counter must hold
// exactly what was sent: a lost acked op shows as too little, a double count as too much.
//
// Snapshots every 100 ms and 64 KiB WAL segments make a kill land often during a checkpoint or a
// segment roll.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { seededRandom } from '../bench/zipf'
import { CounterStream } from '../client'
import { freePort } from '../src/node/free-port'

export const MAIN = path.join(__dirname, '..', 'src', 'main.js')

export interface TrialOptions {
  /** the kill comes this long after the load starts: uniform in [min, max] ms */
  killAfterMs: [number, number]
  /** a random source in [0, 1) (tests pass a seeded one) */
  random: () => number
  /** extra environment for the node */
  env?: Record<string, string>
}

export interface TrialResult {
  killedAtMs: number
  recoveryMs: number
  /** ops acknowledged in all (increments, stream ops, likes, resets) */
  acked: number
  /** ops whose effect is missing from the counters at the end */
  lost: number
  /** ops counted more than once */
  double: number
  /** what was wrong, counter by counter (empty when the trial passed) */
  problems: string[]
}

interface NodeHandle { proc: ChildProcess, exited: Promise<void>, output: () => string }

function startNode (port: number, dataDir: string, env: Record<string, string>): NodeHandle {
  const proc = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn',
      CHECKPOINT_INTERVAL_MS: '100', WAL_SEGMENT_BYTES: '65536', LIKES_PER_MINUTE: '1000000', ...env
    },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let out = ''
  proc.stderr?.on('data', (c: Buffer) => { out = (out + c.toString('utf8')).slice(-8192) })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  return { proc, exited, output: () => out }
}

async function waitReady (base: string, node: NodeHandle, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (node.proc.exitCode !== null) throw new Error(`the node exited with ${node.proc.exitCode}: ${node.output()}`)
    try {
      if ((await fetch(`${base}/ready`)).status === 200) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`not ready after ${timeoutMs} ms: ${node.output()}`)
    await sleep(10)
  }
}

export const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/** An answer that retrying cannot change (a 4xx): the trial's own mistake, so it stops the trial. */
export class Refused extends Error {}

/**
 * Sends until the node answers 200 (network errors and 503 — down, recovering, a partition
 * moving or unreachable — are retried as they are); each attempt may take `timeoutMs`.
 */
export async function until200 (url: string, init: RequestInit, stop: () => boolean, timeoutMs = 5000): Promise<any> {
  for (;;) {
    try {
      const r = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) })
      const body = await r.json()
      if (r.status === 200) return body
      if (r.status !== 503) throw new Refused(`${init.method ?? 'GET'} ${url}: ${r.status} ${JSON.stringify(body)}`)
    } catch (err) {
      if (err instanceof Refused) throw err
      if (stop()) throw new Error(`gave up on ${url}: ${(err as Error).message}`)
    }
    await sleep(20)
  }
}

/** A seeded random source, so a trial's choices can be replayed. */
export const seeded = seededRandom

export async function runTrial (o: TrialOptions): Promise<TrialResult> {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-chaos-'))
  const env = o.env ?? {}
  let node = startNode(port, dataDir, env)
  const rnd = (n: number): number => Math.floor(o.random() * n)
  const result: TrialResult = { killedAtMs: 0, recoveryMs: 0, acked: 0, lost: 0, double: 0, problems: [] }
  let stopping = false
  let givingUp = false
  try {
    await waitReady(base, node)
    const expected = new Map<string, number>() // key → the value every op sent should give
    const add = (key: string, by: number): void => { expected.set(key, (expected.get(key) ?? 0) + by) }
    let serial = 0

    // HTTP increments, each retried under its Idempotency-Key until acknowledged.
    const httpWorker = async (w: number): Promise<void> => {
      while (!stopping) {
        const key = `h${rnd(20)}`
        const by = 1 + rnd(3)
        add(`ch:${key}`, by)
        await until200(`${base}/v1/counter/ch/${key}/increment`, { method: 'POST', body: JSON.stringify({ by }), headers: { 'idempotency-key': `w${w}-${serial++}` } }, () => givingUp)
        result.acked++
      }
    }
    // Increments naming actors: the unique count must end at the number of distinct actors.
    const actors = new Set<string>()
    const actorWorker = async (): Promise<void> => {
      while (!stopping) {
        const actor = `a${rnd(100)}`
        actors.add(actor)
        add('ch:uniq', 1)
        await until200(`${base}/v1/counter/ch/uniq/increment`, { method: 'POST', body: JSON.stringify({ by: 1, actor }), headers: { 'idempotency-key': `act-${serial++}` } }, () => givingUp)
        result.acked++
      }
    }
    // Likes: a user likes an item once; retried likes are idempotent per user.
    const likers = new Map<string, Set<string>>() // item → users
    const likeWorker = async (): Promise<void> => {
      while (!stopping) {
        const item = `i${rnd(5)}`
        const user = `u${rnd(300)}`
        if (!likers.has(item)) likers.set(item, new Set())
        ;(likers.get(item) as Set<string>).add(user)
        await until200(`${base}/v1/like`, { method: 'POST', body: JSON.stringify({ user_id: user, item_id: item, item_type: 'ch' }) }, () => givingUp)
        result.acked++
      }
    }
    // Resets: increments then a reset, over and over; a reset retried is still a reset.
    const resetWorker = async (): Promise<void> => {
      while (!stopping) {
        const key = `r${rnd(3)}`
        if (rnd(4) === 0) {
          expected.set(`ch:${key}`, 0)
          await until200(`${base}/v1/counter/ch/${key}`, { method: 'DELETE' }, () => givingUp)
        } else {
          add(`ch:${key}`, 1)
          await until200(`${base}/v1/counter/ch/${key}/increment`, { method: 'POST', headers: { 'idempotency-key': `rs-${serial++}` } }, () => givingUp)
        }
        result.acked++
      }
    }
    // The stream: the client resends unacked frames under the same clientId and seq.
    const stream = new CounterStream({ url: base, clientId: `chaos-${process.pid}-${Date.now()}`, maxOpsPerFrame: 200, reconnectMinMs: 10, reconnectMaxMs: 100 })
    const streamWorker = async (): Promise<void> => {
      while (!stopping) {
        for (let i = 0; i < 200; i++) {
          const key = `s${rnd(50)}`
          add(`ch:${key}`, 1)
          if (!stream.add('ch', key, 1)) await new Promise(resolve => stream.once('drain', resolve))
        }
        await sleep(5)
      }
    }

    const workers = [
      ...Array.from({ length: 4 }, async (_, w) => await httpWorker(w)),
      actorWorker(), likeWorker(), resetWorker(), streamWorker()
    ]
    const [lo, hi] = o.killAfterMs
    result.killedAtMs = lo + rnd(hi - lo + 1)
    await sleep(result.killedAtMs)
    node.proc.kill('SIGKILL')
    await node.exited
    const restarted = Date.now()
    node = startNode(port, dataDir, env)
    await waitReady(base, node)
    result.recoveryMs = Date.now() - restarted
    await sleep(300) // load goes on against the recovered node
    stopping = true
    const stuck = setTimeout(() => { givingUp = true }, 60_000)
    await Promise.all(workers)
    await stream.flush()
    result.acked += stream.stats.ackedOps
    await stream.close()
    clearTimeout(stuck)

    // Every counter, the unique count and the likes, against what was sent.
    const keys = [...expected.keys()]
    const values = (await until200(`${base}/v1/counters/query`, { method: 'POST', body: JSON.stringify({ keys: keys.slice(0, 1000) }) }, () => true)).values as Record<string, number>
    for (const key of keys) {
      const want = expected.get(key) ?? 0
      const got = values[key]
      if (got === want) continue
      result.problems.push(`${key}: ${got} instead of ${want}`)
      if (got < want) result.lost += want - got
      else result.double += got - want
    }
    const unique = (await until200(`${base}/v1/counter/ch/uniq/unique`, {}, () => true)).unique as number
    // Exact while the HyperLogLog keeps its exact set; a node restarted from a snapshot answers the
    // estimate (the snapshot keeps registers only), within about 0.81% standard error.
    const tolerance = Math.max(1, Math.ceil(0.03 * actors.size))
    if (Math.abs(unique - actors.size) > tolerance) result.problems.push(`ch:uniq: ${unique} unique actors instead of ${actors.size} (± ${tolerance})`)
    for (const [item, users] of likers) {
      const count = (await until200(`${base}/v1/count?item_type=ch&item_id=${item}`, {}, () => true)).count as number
      if (count !== users.size) {
        result.problems.push(`likes of ch:${item}: ${count} instead of ${users.size}`)
        if (count < users.size) result.lost += users.size - count
        else result.double += count - users.size
      }
    }
    return result
  } finally {
    stopping = true
    givingUp = true
    node.proc.kill('SIGKILL')
    await node.exited
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
}
