// autocannon runner for the HTTP suites. Runs a fixed number of requests (autocannon's `amount`)
// rather than a fixed time: a connection then sends its next request only after the previous
// answer, and stops with nothing in flight, so the 2xx count is exactly the number of operations
// the server acknowledged and can be checked against the values read back.
import autocannon from 'autocannon'

export interface HttpLoadOptions {
  port: number
  connections: number
  /** total requests over all connections (exact counts), or */
  amount?: number
  /** a duration instead (warm-ups: requests in flight at the end are abandoned, so counts are not exact) */
  durationSec?: number
  method: 'GET' | 'POST'
  /** request paths to cycle through (prebuilt: autocannon's own work is the load generator's cost) */
  paths: string[]
  body?: string
  /** per-response check; return false to count a mismatch (a wrong answer) */
  verify?: (status: number, body: string) => boolean
  timeoutSec?: number
}

export interface HttpLoadResult {
  ok2xx: number
  non2xx: number
  errors: number
  timeouts: number
  mismatches: number
  /** requests per second over the run (2xx / elapsed) */
  rps: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  elapsedMs: number
  statusCodes: Record<string, number>
}

export async function runHttpLoad (o: HttpLoadOptions): Promise<HttpLoadResult> {
  if (o.paths.length === 0) throw new RangeError('paths must not be empty')
  if ((o.amount === undefined) === (o.durationSec === undefined)) throw new RangeError('give exactly one of amount and durationSec')
  if (o.amount !== undefined && o.amount < o.connections) throw new RangeError(`amount (${o.amount}) must be at least connections (${o.connections})`)
  let cursor = 0
  let mismatches = 0
  const paths = o.paths
  const verify = o.verify
  const headers: Record<string, string> = o.body === undefined ? {} : { 'content-type': 'application/json' }
  const started = process.hrtime.bigint()
  const result = await autocannon({
    url: `http://127.0.0.1:${o.port}`,
    connections: o.connections,
    pipelining: 1,
    ...(o.amount === undefined ? { duration: o.durationSec } : { amount: o.amount }),
    timeout: o.timeoutSec ?? 10,
    requests: [{
      method: o.method,
      headers,
      ...(o.body === undefined ? {} : { body: o.body }),
      setupRequest: (req) => {
        req.path = paths[cursor]
        cursor = cursor + 1 === paths.length ? 0 : cursor + 1
        return req
      },
      ...(verify === undefined
        ? {}
        : { onResponse: (status: number, body: string) => { if (!verify(status, body)) mismatches++ } })
    }]
  })
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6
  const statusCodes: Record<string, number> = {}
  for (const [code, s] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = s.count
  return {
    ok2xx: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    mismatches,
    rps: result['2xx'] / (elapsedMs / 1000),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    maxMs: result.latency.max,
    elapsedMs,
    statusCodes
  }
}
