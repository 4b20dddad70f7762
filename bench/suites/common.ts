// Pieces the suites share: sizing runs to a duration, the Redis peer run with its exactness
// check, the autocannon increment run with its read-back check, and the Zipf key table.
import { runHttpLoad, type HttpLoadResult } from '../http-load'
import { CpuMeter } from '../proc-stats'
import { flushRedis, readCounterd, sumRedis } from '../readback'
import { runRedisBenchmark, type RedisBenchOptions } from '../redis-benchmark'
import type { RedisInstance } from '../redis-launcher'
import type { Run } from '../suite'
import { ZipfKeys } from '../zipf'

export const CONNECTIONS = 64
export const KEY_SPACE = 100_000
export const ZIPF_S = 0.99

/** Zipf-picked ids over KEY_SPACE, the same sequence on every run (seeded). */
export function zipfIds (count: number, seed = 42): Uint32Array {
  return new ZipfKeys({ n: KEY_SPACE, s: ZIPF_S, seed }).table(count)
}

/** Turns a measured rate into a request count that lasts about `seconds`. */
export class Pacer {
  private readonly rates = new Map<string, number>()
  constructor (private readonly seconds: number, private readonly min: number, private readonly max: number) {}

  record (system: string, opsPerSec: number): void {
    if (Number.isFinite(opsPerSec) && opsPerSec > 0) this.rates.set(system, opsPerSec)
  }

  amount (system: string, fallbackRate: number): number {
    const rate = this.rates.get(system) ?? fallbackRate
    return Math.max(this.min, Math.min(this.max, Math.round(rate * this.seconds)))
  }
}

export function round3 (x: number): number {
  return Math.round(x * 1000) / 1000
}

/** redis-benchmark INCR over `counter:<12-digit id>`, then every value summed must equal -n. */
export async function redisIncrRun (redis: RedisInstance, round: number, opts: Omit<RedisBenchOptions, 'port'>): Promise<Run> {
  // redis-benchmark issues whole pipelines: it sends -n rounded up to a multiple of -P.
  const pipeline = opts.pipeline ?? 1
  const o = { ...opts, requests: Math.ceil(opts.requests / pipeline) * pipeline }
  await flushRedis(redis.url)
  const meter = new CpuMeter({ redis: redis.pid })
  const r = await runRedisBenchmark({ ...o, port: redis.port })
  const { wallMs, usage, reapedChildren } = meter.stop()
  const { sum, keys } = await sumRedis(redis.url, 'counter:')
  const exact = sum === o.requests
  return {
    round,
    value: r.row.rps,
    p50Ms: r.row.p50Ms,
    p99Ms: r.row.p99Ms,
    exact,
    check: `requests ${o.requests} ${exact ? '=' : '≠'} sum of ${keys} counters read back ${sum}`,
    cpu: { ...usage, 'redis-benchmark': reapedChildren },
    details: { elapsedMs: Math.round(r.elapsedMs), wallMs: Math.round(wallMs), maxMs: r.row.maxMs }
  }
}

export function httpExactness (load: HttpLoadResult, readBack: number): { exact: boolean, check: string } {
  const clean = load.non2xx === 0 && load.errors === 0 && load.timeouts === 0 && load.mismatches === 0
  const exact = clean && readBack === load.ok2xx
  let check = `2xx ${load.ok2xx} ${readBack === load.ok2xx ? '=' : '≠'} sum read back ${readBack}`
  if (!clean) check += `; non-2xx ${load.non2xx} ${JSON.stringify(load.statusCodes)}, errors ${load.errors}, timeouts ${load.timeouts}, mismatches ${load.mismatches}`
  return { exact, check }
}

/** An unmeasured warm-up (JIT, connections, caches) of `seconds`; returns the rate it reached. */
export async function warmUpHttp (port: number, method: 'GET' | 'POST', paths: string[], seconds = 1): Promise<number> {
  const r = await runHttpLoad({ port, connections: CONNECTIONS, durationSec: seconds, method, paths })
  return r.rps
}

export function incrementPaths (type: string, ids: Uint32Array): string[] {
  return Array.from(ids, id => `/v1/counter/${type}/${id}/increment`)
}

/**
 * autocannon POST increments on `type` (fresh per run), then the sum of that type's counters is
 * read back with `readSum` and must equal the 2xx count.
 */
export async function httpIncrementRun (o: {
  round: number
  port: number
  type: string
  ids: Uint32Array
  amount: number
  pids: Record<string, number>
  readSum: () => Promise<number>
}): Promise<Run> {
  const paths = incrementPaths(o.type, o.ids)
  const meter = new CpuMeter({ ...o.pids, autocannon: process.pid })
  const load = await runHttpLoad({ port: o.port, connections: CONNECTIONS, amount: o.amount, method: 'POST', paths })
  const { usage } = meter.stop()
  const sum = await o.readSum()
  const { exact, check } = httpExactness(load, sum)
  return {
    round: o.round,
    value: load.rps,
    p50Ms: load.p50Ms,
    p99Ms: load.p99Ms,
    exact,
    check,
    cpu: usage,
    details: { requests: load.ok2xx, elapsedMs: Math.round(load.elapsedMs), maxMs: load.maxMs }
  }
}

export async function sumCounterdType (port: number, type: string): Promise<number> {
  const values = await readCounterd(port, type, KEY_SPACE)
  let sum = 0
  for (let i = 0; i < values.length; i++) sum += values[i]
  return sum
}

export async function sumRedisType (url: string, type: string): Promise<number> {
  return (await sumRedis(url, `${type}:`)).sum
}
