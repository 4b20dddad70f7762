// Reads what a cluster-mode node left in its servers, the way another service would (the record
// format, key layout and queries of docs/cluster-storage.md), so end-to-end tests can compare the
// Kafka log, the Redis checkpoints and the ClickHouse history with the acknowledged totals.
import { createClient } from '@clickhouse/client'
import { Cluster, Redis } from 'ioredis'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { partitionOf } from '../../src/core/keys'
import { decodeRecord } from '../../src/core/record-codec'
import { sleep } from './process-control'

export const PARTITIONS = 64 // the node's default; the tests do not change it

let uniqueN = 0
/** A name no other test (or test process) uses: Kafka topics, client ids, stream client ids. */
export function uniqueName (prefix: string): string {
  return `${prefix}-${process.pid}-${++uniqueN}-${randomBytes(3).toString('hex')}`
}

export interface KafkaLogContents {
  totals: Map<string, number> // key → sum of deltas over distinct records
  records: number // distinct (partition, epoch, seq)
  copies: number // messages that repeated a (partition, epoch, seq) already read (retry copies)
  replicas: Set<string>
  kafkaPartitions: number
  /** Messages breaking the documented layout (key, Kafka partition, counter partition, seq order). */
  layoutErrors: string[]
  /** A key is in a record of its own counter partition only. */
  misplacedKeys: number
  /**
   * Kafka partitions whose log no longer starts at offset 0: retention dropped records, so the
   * totals miss them. (librdkafka's mock keeps only a few MB per partition in memory.)
   */
  truncated: number[]
}

/**
 * Reads the whole topic from the beginning to its end with `kcat` (librdkafka, no consumer group:
 * another client than the node's own), decodes every record and adds up the deltas of each
 * counter, dropping copies by (partition, epoch, seq) as the documented consumer does.
 */
export async function readKafkaLog (brokers: string[], topic: string): Promise<KafkaLogContents> {
  const meta = JSON.parse((await kcat(['-b', brokers.join(','), '-L', '-J', '-t', topic])).toString('utf8')) as { topics: Array<{ topic: string, partitions: unknown[] }> }
  const n = meta.topics.find((x) => x.topic === topic)?.partitions.length ?? 0
  const out: KafkaLogContents = { totals: new Map(), records: 0, copies: 0, replicas: new Set(), kafkaPartitions: n, layoutErrors: [], misplacedKeys: 0, truncated: [] }
  const firstOffset = new Map<number, number>()
  if (n === 0) throw new Error(`Kafka topic ${topic} has no partitions`)
  const raw = await kcat(['-b', brokers.join(','), '-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '@%p %o %T %k %S\n%s\n'])
  const seen = new Set<string>()
  const last = new Map<number, { epoch: number, seq: number }>()
  let o = 0
  while (o < raw.length) {
    const nl = raw.indexOf(10, o)
    const header = raw.toString('latin1', o, nl)
    const m = /^@(\d+) (\d+) (-?\d+) (\S*) (-?\d+)$/.exec(header)
    if (m === null) throw new Error(`unexpected kcat output at byte ${o}: ${JSON.stringify(header.slice(0, 200))}`)
    const [kp, offset, timestamp, key, size] = [Number(m[1]), Number(m[2]), Number(m[3]), m[4], Number(m[5])]
    o = nl + 1
    const value = raw.subarray(o, o + Math.max(size, 0))
    o += Math.max(size, 0) + 1
    if (!firstOffset.has(kp)) {
      firstOffset.set(kp, offset)
      if (offset > 0) out.truncated.push(kp)
    }
    if (size < 0) { out.layoutErrors.push(`${kp}@${offset}: null value`); continue }
    const r = decodeRecord(value)
    if (r.partition % n !== kp) out.layoutErrors.push(`${kp}@${offset}: counter partition ${r.partition} in Kafka partition ${kp} of ${n}`)
    if (key !== String(r.partition)) out.layoutErrors.push(`${kp}@${offset}: message key ${key} for partition ${r.partition}`)
    if (Number(timestamp) !== r.ts) out.layoutErrors.push(`${kp}@${offset}: timestamp ${timestamp} for ts ${r.ts}`)
    const id = `${r.partition}/${r.epoch}/${r.seq}`
    if (seen.has(id)) {
      out.copies++
      continue
    }
    seen.add(id)
    const prev = last.get(r.partition)
    // Within its Kafka partition, a counter partition's records come in (epoch, seq) order.
    if (prev !== undefined && !(r.epoch > prev.epoch || (r.epoch === prev.epoch && r.seq > prev.seq))) {
      out.layoutErrors.push(`${kp}@${offset}: partition ${r.partition} record (${r.epoch}, ${r.seq}) after (${prev.epoch}, ${prev.seq})`)
    }
    last.set(r.partition, { epoch: r.epoch, seq: r.seq })
    out.records++
    out.replicas.add(r.replica ?? '')
    // Net deltas: one entry per counter per record.
    if (new Set(r.keys).size !== r.keys.length) out.layoutErrors.push(`${kp}@${offset}: a counter appears twice in one record`)
    for (let i = 0; i < r.keys.length; i++) {
      if (partitionOf(r.keys[i], PARTITIONS) !== r.partition) out.misplacedKeys++
      out.totals.set(r.keys[i], (out.totals.get(r.keys[i]) ?? 0) + r.deltas[i])
    }
  }
  return out
}

async function kcat (args: string[]): Promise<Buffer> {
  return await new Promise<Buffer>((resolve, reject) => {
    execFile('kcat', args, { encoding: 'buffer', maxBuffer: 1 << 30, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`kcat ${args.join(' ')} failed: ${err.message} ${stderr.toString()}`))
      else resolve(stdout)
    })
  })
}

type AnyRedis = Redis | Cluster

/** A client for one Redis URL, or for a Redis Cluster given its nodes' URLs. */
export function redisClient (urls: string[], cluster: boolean): AnyRedis {
  if (!cluster) return new Redis(urls[0], { maxRetriesPerRequest: 1 })
  return new Cluster(urls.map((u) => ({ host: new URL(u).hostname, port: Number(new URL(u).port) })), { scaleReads: 'master' })
}

export interface RedisCheckpoints {
  values: Map<string, number> // every partition's checkpointed counter values
  seqs: Map<number, { epoch: number, seq: number }> // meta of each partition's stored checkpoint
  owners: Map<number, number>
}

/** Every partition's checkpoint, read as documented: HGETALL counterd:{p<p>}:values and :meta. */
export async function readRedisCheckpoints (client: AnyRedis): Promise<RedisCheckpoints> {
  const out: RedisCheckpoints = { values: new Map(), seqs: new Map(), owners: new Map() }
  await Promise.all(Array.from({ length: PARTITIONS }, async (_, p) => {
    const [values, meta] = await Promise.all([client.hgetall(`counterd:{p${p}}:values`), client.hgetall(`counterd:{p${p}}:meta`)])
    for (const [key, v] of Object.entries(values)) out.values.set(key, Number(v))
    if (meta.seq !== undefined) out.seqs.set(p, { epoch: Number(meta.epoch), seq: Number(meta.seq) })
    if (meta.owner !== undefined) out.owners.set(p, Number(meta.owner))
  }))
  return out
}

export interface ClickHouseContents {
  totals: Map<string, number> // key → net change, rows collapsed by identity as documented
  rows: number // raw counter rows (key != ''), duplicates included
  identities: number // distinct (key, minute, partition, epoch, seq) of counter rows
  progressRows: number
}

/** The history table read with the documented duplicate-collapsing form. */
export async function readClickHouseHistory (url: string): Promise<ClickHouseContents> {
  const c = createClient({ url })
  try {
    const q = async <T>(query: string): Promise<T[]> => await (await c.query({ query, format: 'JSONEachRow' })).json<T>()
    const sums = await q<{ key: string, delta: string | number }>(`SELECT key, sum(d) AS delta FROM (
        SELECT key, minute, partition, epoch, seq, any(delta) AS d FROM counter_history
        WHERE key != '' GROUP BY key, minute, partition, epoch, seq
      ) GROUP BY key`)
    const [counts] = await q<{ rows: string, identities: string, progress: string }>(`SELECT
        countIf(key != '') AS rows,
        uniqExactIf((key, minute, partition, epoch, seq), key != '') AS identities,
        countIf(key = '') AS progress
      FROM counter_history`)
    return {
      totals: new Map(sums.map((r) => [r.key, Number(r.delta)])),
      rows: Number(counts.rows),
      identities: Number(counts.identities),
      progressRows: Number(counts.progress)
    }
  } finally {
    await c.close()
  }
}

/** Runs one SQL statement (SELECT in JSONEachRow) against a ClickHouse server. */
export async function clickhouseQuery<T> (url: string, query: string): Promise<T[]> {
  const c = createClient({ url })
  try {
    return await (await c.query({ query, format: 'JSONEachRow' })).json<T>()
  } finally {
    await c.close()
  }
}

/** The sum of a counter's history points over the last hour (and the next minute), through HTTP. */
export async function historySum (base: string, key: string): Promise<{ status: number, sum: number, body: unknown }> {
  const [type, id] = key.split(':')
  const to = Date.now() + 60_000
  const r = await fetch(`${base}/v1/counter/${type}/${id}/history?from=${to - 3_600_000}&to=${to}&step=minute`)
  const body = await r.json() as { points?: Array<{ ts: number, value: number }> }
  const sum = (body.points ?? []).reduce((s, p) => s + p.value, 0)
  return { status: r.status, sum, body }
}

export interface Readiness { status: number, retryAfter: string | null, body: Record<string, unknown> }

export async function readiness (base: string): Promise<Readiness> {
  const r = await fetch(`${base}/ready`)
  return { status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.json() as Record<string, unknown> }
}

/**
 * Polls `probe` until `done` holds for its result; returns the last result either way (the caller
 * asserts on it, so a timeout fails with the observed value rather than a bare "timed out").
 */
export async function pollUntil<T> (probe: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let v: T | undefined
    try {
      v = await probe()
      if (done(v)) return v
    } catch (err) {
      if (Date.now() > deadline) throw err
    }
    if (Date.now() > deadline && v !== undefined) return v
    await sleep(everyMs)
  }
}

/** Keys whose values differ between two maps (a missing key counts as 0), for compact messages. */
export function differences (expected: ReadonlyMap<string, number>, actual: ReadonlyMap<string, number> | Record<string, number>, keys?: Iterable<string>): string[] {
  const get = (k: string): number => (actual instanceof Map ? actual.get(k) : (actual as Record<string, number>)[k]) ?? 0
  const out: string[] = []
  const all = new Set<string>(keys ?? expected.keys())
  if (keys === undefined && actual instanceof Map) for (const k of actual.keys()) all.add(k)
  for (const k of all) {
    const want = expected.get(k) ?? 0
    const got = get(k)
    if (want !== got) out.push(`${k}: expected ${want}, got ${got}`)
  }
  return out.sort()
}
