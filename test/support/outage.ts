// Shared by the cluster-mode outage tests: requests, waits on /ready and the node's log, paced
// background load, and the final check that the node and every server agree with the acked totals.
import type { Test } from 'tap'
import { differences, pollUntil, readClickHouseHistory, readKafkaLog, readRedisCheckpoints, readiness, redisClient, uniqueName, type Readiness } from './cluster-stores'
import { Tally, runLoad } from './load'
import { getValue, queryValues, type NodeProcess } from './node-process'

export function nonZero (m: ReadonlyMap<string, number>): Map<string, number> {
  return new Map([...m].filter(([, v]) => v !== 0))
}

export async function post (base: string, path: string, body?: unknown): Promise<{ status: number, retryAfter: string | null, body: any }> {
  const r = await fetch(base + path, { method: 'POST', body: body === undefined ? undefined : JSON.stringify(body) })
  return { status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.json() }
}

export async function waitReadiness (base: string, done: (r: Readiness) => boolean): Promise<Readiness> {
  return await pollUntil(async () => await readiness(base), done, 30_000, 50)
}

export async function waitLog (node: NodeProcess, re: RegExp): Promise<boolean> {
  return await pollUntil(async () => re.test(node.output()), (ok) => ok, 20_000, 50)
}

/**
 * HTTP + WebSocket load in the background until stop() (which waits for the last acks). Paced, so
 * that the log of the longest test stays within what the mock broker retains (about 5 MB per
 * Kafka partition, in memory) on any machine.
 */
export function backgroundLoad (base: string, seed: number, tally: Tally): { stop: () => Promise<void> } {
  let stopped = false
  const done = runLoad({ base, keys: 40, httpClients: 4, streams: 2, opsPerFrame: 30, paceMs: 2, until: () => stopped, seed, tally, clientIdPrefix: uniqueName('outage') })
  return { stop: async () => { stopped = true; await done } }
}

/**
 * Right now, on a counter of its own (the load does not touch it): a read is answered, and an
 * increment is acknowledged with the value it made.
 */
export async function stillCounting (t: Test, base: string, key: string, tally: Tally, what: string): Promise<void> {
  const [type, id] = key.split(':')
  const before = await getValue(base, type, id)
  t.equal(before, tally.acked.get(key) ?? 0, `${what}: a read is answered`)
  const inc = await post(base, `/v1/counter/${type}/${id}/increment`, { by: 3 })
  tally.send(key, 3)
  if (inc.status === 200) tally.ack(key, 3)
  t.same(inc.body, { type, id, value: before + 3 }, `${what}: an increment is acknowledged`)
}

/** After the load: node values exactly the acked totals, and every server agrees with them. */
export async function checkAllAgree (t: Test, o: { base: string, tally: Tally, brokers: string[], topic: string, redisUrl: string, redisCluster?: string[], clickhouseUrl?: string }): Promise<Map<string, number>> {
  const values = new Map(Object.entries(await queryValues(o.base, o.tally.keys())))
  t.same(differences(o.tally.acked, values), [], 'every acknowledged increment counted once, nothing else')
  const log = await readKafkaLog(o.brokers, o.topic)
  t.same(differences(values, log.totals, o.tally.keys()), [], `Kafka records add up to the totals (${log.records} records, ${log.copies} retry copies dropped by (epoch, seq))`)
  t.same(log.layoutErrors, [], 'Kafka records of each partition in (epoch, seq) order')
  t.same(log.truncated, [], 'Kafka kept the whole log (nothing dropped by retention)')
  const rc = o.redisCluster === undefined ? redisClient([o.redisUrl], false) : redisClient(o.redisCluster, true)
  try {
    const cps = await pollUntil(async () => await readRedisCheckpoints(rc), (c) => differences(nonZero(values), c.values).length === 0, 10_000)
    t.same(differences(nonZero(values), cps.values), [], 'Redis checkpoints hold the totals')
  } finally {
    rc.disconnect()
  }
  if (o.clickhouseUrl !== undefined) {
    const url = o.clickhouseUrl
    const hist = await pollUntil(async () => await readClickHouseHistory(url), (h) => differences(nonZero(values), h.totals).length === 0, 15_000)
    t.same(differences(nonZero(values), hist.totals), [], `ClickHouse history adds up to the totals, duplicates collapsed (${hist.rows} rows, ${hist.identities} distinct)`)
  }
  return values
}
