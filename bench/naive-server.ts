// The textbook counter service, as a baseline: node:http, one Redis INCRBY per request through
// ioredis, nothing batched. Same routes and replies as counterd for the two calls the benchmark
// makes, so autocannon drives both identically. Run as its own process:
//   PORT=0 REDIS_URL=redis://127.0.0.1:6379 node dist/bench/naive-server.js
// It prints one JSON line {"msg":"listening","port":N}, and exits on SIGTERM.
import http from 'node:http'
import Redis from 'ioredis'
import { isValidId, isValidType } from '../src/core/keys'

const ROUTE = /^\/v1\/counter\/([^/]+)\/([^/]+)(\/increment)?$/

function reply (res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function fail (res: http.ServerResponse, status: number, code: string, message: string): void {
  reply(res, status, { error: { code, message } })
}

export function createNaiveServer (redis: Redis): http.Server {
  return http.createServer((req, res) => {
    const m = ROUTE.exec(req.url ?? '')
    if (m === null) { fail(res, 404, 'not_found', 'no such route'); return }
    const [, type, id, increment] = m
    if (!isValidType(type)) { fail(res, 400, 'invalid_type', 'bad type'); return }
    if (!isValidId(id)) { fail(res, 400, 'invalid_id', 'bad id'); return }
    const key = `${type}:${id}`
    if (increment === undefined) {
      if (req.method !== 'GET') { fail(res, 405, 'method_not_allowed', 'use GET'); return }
      req.resume()
      redis.get(key).then(
        (v) => reply(res, 200, { type, id, value: v === null ? 0 : Number(v) }),
        (e: Error) => fail(res, 503, 'storage_unavailable', e.message))
      return
    }
    if (req.method !== 'POST') { fail(res, 405, 'method_not_allowed', 'use POST'); return }
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => { body += c })
    req.on('end', () => {
      let by = 1
      if (body.length > 0) {
        try {
          const parsed = JSON.parse(body) as { by?: unknown }
          if (parsed.by !== undefined) by = parsed.by as number
        } catch {
          fail(res, 400, 'malformed_json', 'body is not valid JSON')
          return
        }
        if (!Number.isSafeInteger(by)) { fail(res, 400, 'invalid_delta', 'by must be an integer'); return }
      }
      redis.incrby(key, by).then(
        (value) => reply(res, 200, { type, id, value }),
        (e: Error) => fail(res, 503, 'storage_unavailable', e.message))
    })
  })
}

function main (): void {
  const port = Number(process.env.PORT ?? '0')
  const url = process.env.REDIS_URL
  if (url === undefined || url === '') throw new Error('REDIS_URL is required (redis://host:port)')
  const redis = new Redis(url, { lazyConnect: false, enableAutoPipelining: false })
  const server = createNaiveServer(redis)
  server.keepAliveTimeout = 60_000
  server.listen(port, process.env.HOST ?? '127.0.0.1', () => {
    const addr = server.address() as { port: number }
    process.stdout.write(JSON.stringify({ msg: 'listening', port: addr.port }) + '\n')
  })
  process.on('SIGTERM', () => {
    server.close()
    server.closeAllConnections()
    redis.disconnect()
    process.exit(0)
  })
}

if (require.main === module) main()
