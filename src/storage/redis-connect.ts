// One way to reach REDIS_URL for every part of counterd that needs Redis (checkpoints, the ring's
// membership): a single server, or Redis Cluster — a comma-separated list of startup nodes, or one
// URL whose server reports cluster_enabled. Commands fail fast (one try); the connection keeps
// reconnecting through an outage, so callers see failing commands, never a dead client.
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { withDeadline } from '../core/deadline'
import { CounterdError } from '../core/errors'

export type RedisClient = Redis | Cluster

export interface RedisConnectOptions {
  /** Per-command timeout. */
  commandTimeoutMs: number
  /** Give up reaching Redis at start after this long. */
  startTimeoutMs: number
  /** true / false: force cluster or single-server mode; absent: detect it. */
  cluster?: boolean
}

/** Connects; unreachable: `storage_unavailable` naming the URL. */
export async function connectRedis (url: string, o: RedisConnectOptions): Promise<{ client: RedisClient, cluster: boolean }> {
  const nodes = url.split(',').map((u) => u.trim())
  let cluster = o.cluster ?? (nodes.length > 1 ? true : undefined)
  const base: RedisOptions = {
    lazyConnect: true,
    commandTimeout: o.commandTimeoutMs,
    connectTimeout: Math.min(o.startTimeoutMs, 10_000),
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000)
  }
  if (cluster === undefined) {
    const probe = new Redis(nodes[0], { ...base, retryStrategy: () => null })
    probe.on('error', () => {})
    try {
      await withDeadline(o.startTimeoutMs, `Redis at ${nodes[0]} not reachable`, async () => { await probe.connect() })
      cluster = /cluster_enabled:1/.test(await probe.info('cluster'))
    } catch (err) {
      throw redisUnavailable(err, `cannot reach Redis at ${nodes[0]}`)
    } finally {
      probe.disconnect()
    }
  }
  let client: RedisClient
  if (cluster) {
    // Credentials of the first URL apply to every node (a cluster shares them).
    const first = new URL(nodes[0])
    const auth: RedisOptions = {}
    if (first.username !== '') auth.username = decodeURIComponent(first.username)
    if (first.password !== '') auth.password = decodeURIComponent(first.password)
    client = new Cluster(nodes.map(parseNode), {
      lazyConnect: true,
      redisOptions: { ...base, ...auth },
      // A partition's keys live on one master; reads go there too (checkpoints must be current).
      scaleReads: 'master',
      clusterRetryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000)
    })
  } else {
    client = new Redis(nodes[0], base)
  }
  client.on('error', () => {}) // surfaced through failing commands
  try {
    await withDeadline(o.startTimeoutMs, `Redis at ${url} not reachable`, async () => { await client.connect() })
  } catch (err) {
    client.disconnect()
    throw redisUnavailable(err, `cannot reach Redis at ${url}`)
  }
  return { client, cluster }
}

/** A Redis failure as `storage_unavailable` (a CounterdError other than internal passes through). */
export function redisUnavailable (err: unknown, what: string): CounterdError {
  if (err instanceof CounterdError && err.code !== 'internal') return err
  return new CounterdError('storage_unavailable', `${what}: ${(err as Error).message}`)
}

function parseNode (url: string): { host: string, port: number } {
  const u = new URL(url)
  return { host: u.hostname, port: u.port === '' ? 6379 : Number(u.port) }
}
