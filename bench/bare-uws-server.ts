// The HTTP ceiling for the http-wrk suite: counterd's counter routes on bare uWS, counts in an
// in-memory Map per thread, no durability, no messages between threads on the request path. What
// counterd does beyond this (routing to the owning shard, the WAL, group commit) is what the
// ratio counterd ÷ bare peer measures. Run as its own process:
//   WORKERS=2 PORT=0 node dist/bench/bare-uws-server.js
// WORKERS threads (default: one per core), each its own uws.App() on one shared port (see
// bench/uws-threads.ts).
//
// Routes, with counterd's validation (type and id through src/core/keys, `by` a safe integer)
// and its reply shapes:
//   POST /v1/counter/:type/:id/increment   body optional {"by": n} → {"type","id","value"}
//   GET  /v1/counter/:type/:id             → {"type","id","value"}
//   POST /v1/counters/query                {"keys": ["type:id", …]} → {"values": {key: value}}
//   POST /v1/bench/load                    {"values": {key: value}} → {"loaded": n}  (bench only)
// Errors: {"error":{"code","message"}} with counterd's codes and statuses; anything else is 404.
//
// Shared-nothing: each thread counts the increments it received in its own Map. The value of a
// key is the sum over threads, so an increment's reply and a GET show this thread's share only.
// The exact value is what the batch query answers: the thread that got the query asks the main
// thread, which asks every thread for its counts of those keys and adds them up. The query is
// only used to read counts back after a run, never measured, so this crossing costs nothing
// that is measured. Values to read (the GET benchmark) are loaded through /v1/bench/load, which
// the main thread copies into every thread ("base" values), so a GET on any thread answers them.
import { isMainThread, parentPort, workerData, type MessagePort, type Worker } from 'node:worker_threads'
import { isValidId, isValidType, splitKey } from '../src/core/keys'
import { listenAndReport, startThreads, uws, type ThreadData } from './uws-threads'
import type { HttpResponse } from '@trufflesuite/uws-js-unofficial'

const MAX_BODY_BYTES = 64 * 1024
const MAX_QUERY_KEYS = 10_000

// Messages between threads. Worker → main: gather, load (on behalf of an HTTP request), counted,
// baseSet (answers to the main thread). Main → worker: count, setBase (requests), answer.
type ToMain =
  | { kind: 'gather', req: number, keys: string[] }
  | { kind: 'load', req: number, entries: Array<[string, number]> }
  | { kind: 'counted', req: number, values: Float64Array }
  | { kind: 'baseSet', req: number }
type ToWorker =
  | { kind: 'count', req: number, keys: string[] }
  | { kind: 'setBase', req: number, entries: Array<[string, number]> }
  | Answer
type Answer = { kind: 'answer', req: number, values?: Float64Array, loaded?: number }

interface State { aborted: boolean }

function reply (res: HttpResponse, state: State, status: string, body: string, close = false): void {
  if (state.aborted) return
  state.aborted = true
  res.cork(() => {
    res.writeStatus(status)
    res.writeHeader('content-type', 'application/json')
    res.end(body, close)
  })
}

function fail (res: HttpResponse, state: State, status: string, code: string, message: string): void {
  reply(res, state, status, JSON.stringify({ error: { code, message } }), status.startsWith('413'))
}

const BAD = '400 Bad Request'

/** The whole body as text; answers 413 past the limit. */
function readBody (res: HttpResponse, state: State, done: (body: string) => void): void {
  let parts: Buffer[] | null = null
  let size = 0
  res.onData((chunk, isLast) => {
    if (state.aborted) return
    size += chunk.byteLength
    if (size > MAX_BODY_BYTES) { fail(res, state, '413 Payload Too Large', 'payload_too_large', `body is larger than ${MAX_BODY_BYTES} bytes`); return }
    // The usual case, one chunk: decode it now, before uWS reuses its memory.
    if (isLast && parts === null) { done(Buffer.from(chunk).toString('utf8')); return }
    parts ??= []
    parts.push(Buffer.from(chunk.slice(0)))
    if (isLast) done(Buffer.concat(parts).toString('utf8'))
  })
}

/** JSON object body, or an error answered (null). */
function parseObject (res: HttpResponse, state: State, body: string, shape: string): Record<string, unknown> | null {
  let parsed: unknown
  try { parsed = JSON.parse(body) } catch { fail(res, state, BAD, 'malformed_json', 'body is not valid JSON'); return null }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) { fail(res, state, BAD, 'invalid_body', `body must be a JSON object such as ${shape}`); return null }
  return parsed as Record<string, unknown>
}

function validTypeId (res: HttpResponse, state: State, type: string, id: string): boolean {
  if (!isValidType(type)) { fail(res, state, BAD, 'invalid_type', 'type must match [a-z0-9_-]{1,32}'); return false }
  if (!isValidId(id)) { fail(res, state, BAD, 'invalid_id', 'id must match [A-Za-z0-9_.:-]{1,128}'); return false }
  return true
}

function worker (data: ThreadData, port: MessagePort): void {
  const counts = new Map<string, number>()
  const base = new Map<string, number>()
  const waiting = new Map<number, (m: Answer) => void>()
  let nextReq = 0
  const ask = (msg: ToMain, done: (m: Answer) => void): void => {
    waiting.set(msg.req, done)
    port.postMessage(msg)
  }
  port.on('message', (m: ToWorker) => {
    if (m.kind === 'count') {
      const values = new Float64Array(m.keys.length)
      for (let i = 0; i < m.keys.length; i++) values[i] = counts.get(m.keys[i]) ?? 0
      port.postMessage({ kind: 'counted', req: m.req, values } satisfies ToMain)
    } else if (m.kind === 'setBase') {
      for (const [k, v] of m.entries) base.set(k, v)
      port.postMessage({ kind: 'baseSet', req: m.req } satisfies ToMain)
    } else {
      const done = waiting.get(m.req)
      waiting.delete(m.req)
      done?.(m)
    }
  })

  const app = uws.App()
  app.post('/v1/counter/:type/:id/increment', (res, req) => {
    const type = req.getParameter(0)
    const id = req.getParameter(1)
    const state: State = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    readBody(res, state, (body) => {
      if (!validTypeId(res, state, type, id)) return
      let by = 1
      if (body.length > 0) {
        const parsed = parseObject(res, state, body, '{"by": 5}')
        if (parsed === null) return
        if (parsed.by !== undefined) {
          if (!Number.isSafeInteger(parsed.by)) { fail(res, state, BAD, 'invalid_delta', 'by must be an integer between -(2^53-1) and 2^53-1'); return }
          by = parsed.by as number
        }
      }
      const key = type + ':' + id
      const own = (counts.get(key) ?? 0) + by
      counts.set(key, own)
      reply(res, state, '200 OK', `{"type":"${type}","id":"${id}","value":${(base.get(key) ?? 0) + own}}`)
    })
  })

  app.get('/v1/counter/:type/:id', (res, req) => {
    const type = req.getParameter(0)
    const id = req.getParameter(1)
    const state: State = { aborted: false }
    if (!validTypeId(res, state, type, id)) return
    const key = type + ':' + id
    reply(res, state, '200 OK', `{"type":"${type}","id":"${id}","value":${(base.get(key) ?? 0) + (counts.get(key) ?? 0)}}`)
  })

  app.post('/v1/counters/query', (res) => {
    const state: State = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    readBody(res, state, (body) => {
      const parsed = parseObject(res, state, body, '{"keys": ["type:id", ...]}')
      if (parsed === null) return
      const keys = parsed.keys
      if (!Array.isArray(keys)) { fail(res, state, BAD, 'invalid_body', 'body must be {"keys": ["type:id", ...]}'); return }
      if (keys.length > MAX_QUERY_KEYS) { fail(res, state, BAD, 'too_many_keys', `at most ${MAX_QUERY_KEYS} keys per query, got ${keys.length}`); return }
      for (let i = 0; i < keys.length; i++) {
        if (typeof keys[i] !== 'string' || splitKey(keys[i] as string) === null) { fail(res, state, BAD, 'invalid_key', `keys[${i}] must be "type:id"`); return }
      }
      ask({ kind: 'gather', req: nextReq++, keys: keys as string[] }, (m) => {
        const values = m.values as Float64Array
        const out: Record<string, number> = {}
        for (let i = 0; i < keys.length; i++) out[keys[i] as string] = values[i]
        reply(res, state, '200 OK', JSON.stringify({ values: out }))
      })
    })
  })

  app.post('/v1/bench/load', (res) => {
    const state: State = { aborted: false }
    res.onAborted(() => { state.aborted = true })
    readBody(res, state, (body) => {
      const parsed = parseObject(res, state, body, '{"values": {"type:id": 5}}')
      if (parsed === null) return
      const values = parsed.values
      if (values === null || typeof values !== 'object' || Array.isArray(values)) { fail(res, state, BAD, 'invalid_body', 'body must be {"values": {"type:id": n, ...}}'); return }
      const entries = Object.entries(values as Record<string, unknown>)
      if (entries.length > MAX_QUERY_KEYS) { fail(res, state, BAD, 'too_many_keys', `at most ${MAX_QUERY_KEYS} keys per load`); return }
      for (const [k, v] of entries) {
        if (splitKey(k) === null) { fail(res, state, BAD, 'invalid_key', `${JSON.stringify(k)} is not "type:id"`); return }
        if (!Number.isSafeInteger(v)) { fail(res, state, BAD, 'invalid_delta', `value of ${k} must be a safe integer`); return }
      }
      ask({ kind: 'load', req: nextReq++, entries: entries as Array<[string, number]> }, (m) => {
        reply(res, state, '200 OK', JSON.stringify({ loaded: m.loaded }))
      })
    })
  })

  app.any('/*', (res, req) => {
    fail(res, { aborted: false }, '404 Not Found', 'not_found', `no route for ${req.getUrl()}`)
  })

  listenAndReport(app, data, (m) => port.postMessage(m))
}

/** Main thread: relays the query and load requests to every thread and adds up the answers. */
async function main (): Promise<void> {
  const base = new Map<string, number>()
  const pending = new Map<number, { origin: number, originReq: number, remaining: number, values?: Float64Array, loaded?: number }>()
  let nextReq = 0
  let workers: Worker[] = []
  const finish = (req: number): void => {
    const p = pending.get(req)
    if (p === undefined || --p.remaining > 0) return
    pending.delete(req)
    workers[p.origin].postMessage({ kind: 'answer', req: p.originReq, ...(p.values === undefined ? { loaded: p.loaded } : { values: p.values }) } satisfies ToWorker)
  }
  workers = await startThreads(__filename, (index, raw) => {
    const m = raw as ToMain
    if (m.kind === 'gather') {
      const req = nextReq++
      // The base values count once; every thread adds what it counted itself.
      const values = new Float64Array(m.keys.length)
      for (let i = 0; i < m.keys.length; i++) values[i] = base.get(m.keys[i]) ?? 0
      pending.set(req, { origin: index, originReq: m.req, remaining: workers.length, values })
      for (const w of workers) w.postMessage({ kind: 'count', req, keys: m.keys } satisfies ToWorker)
    } else if (m.kind === 'load') {
      const req = nextReq++
      for (const [k, v] of m.entries) base.set(k, v)
      pending.set(req, { origin: index, originReq: m.req, remaining: workers.length, loaded: m.entries.length })
      for (const w of workers) w.postMessage({ kind: 'setBase', req, entries: m.entries } satisfies ToWorker)
    } else if (m.kind === 'counted') {
      const p = pending.get(m.req)
      if (p?.values !== undefined) for (let i = 0; i < p.values.length; i++) p.values[i] += m.values[i]
      finish(m.req)
    } else {
      finish(m.req)
    }
  })
}

if (isMainThread) {
  if (require.main === module) {
    main().catch((e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`)
      process.exit(1)
    })
  }
} else if (parentPort !== null) {
  worker(workerData as ThreadData, parentPort)
}
