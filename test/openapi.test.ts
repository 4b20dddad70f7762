// The OpenAPI contract (src/front/openapi.ts): the served document is a valid OpenAPI 3.1
// document, it names exactly the routes the node serves, and the real answers of a running node
// (every operation, success and error paths) have a documented status and the documented shape.
import { Validator } from '@seriousme/openapi-schema-validator'
import Ajv2020 from 'ajv/dist/2020'
import t from 'tap'
import WebSocket from 'ws'
import { ERROR_CODES } from '../src/core/errors'
import { ALLOW } from '../src/front/node-routes'
import { startClickHouse } from './support/clickhouse'
import { startNode } from './support/node-process'

type Json = Record<string, any>

interface Case {
  name: string
  method: 'GET' | 'POST' | 'DELETE' | 'PUT'
  path: string
  body?: string | Buffer
  headers?: Record<string, string>
  status: number
}

const COMPONENTS_ID = 'https://counterd.invalid/openapi/components'

/** `#/components/schemas/X` → the same schema inside the one ajv schema holding all components. */
function rewriteRefs (v: unknown): unknown {
  if (Array.isArray(v)) return v.map(rewriteRefs)
  if (v === null || typeof v !== 'object') return v
  const out: Json = {}
  for (const [k, x] of Object.entries(v)) {
    out[k] = k === '$ref' && typeof x === 'string' && x.startsWith('#/components/schemas/')
      ? `${COMPONENTS_ID}#/$defs/${x.slice('#/components/schemas/'.length)}`
      : rewriteRefs(x)
  }
  return out
}

/** Checks answers against the document: status documented, headers and body as documented. */
class Contract {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true })
  private readonly templates: Array<{ re: RegExp, path: string }>
  readonly exercised = new Set<string>()

  constructor (readonly doc: Json) {
    this.ajv.addSchema({ $id: COMPONENTS_ID, $defs: rewriteRefs(doc.components.schemas) as Json })
    this.templates = Object.keys(doc.paths).map(p => ({ path: p, re: new RegExp('^' + p.replace(/\{[^}]+\}/g, '[^/]+') + '$') }))
  }

  operation (method: string, url: string): { path: string, op: Json } | null {
    const pathname = new URL(url, 'http://x').pathname
    const hit = this.templates.find(x => x.re.test(pathname))
    if (hit === undefined) return null
    const op = this.doc.paths[hit.path][method.toLowerCase()]
    return op === undefined ? null : { path: hit.path, op }
  }

  response (op: Json, status: number): Json | undefined {
    const r = op.responses[String(status)]
    if (r?.$ref === undefined) return r
    return this.doc.components.responses[r.$ref.slice('#/components/responses/'.length)]
  }

  /** Problems with one answer, or [] when it keeps the contract. */
  check (method: string, url: string, status: number, headers: Headers, body: Buffer): string[] {
    const found = this.operation(method, url)
    if (found === null) return [`${method} ${url} is not in the document`]
    const documented = this.response(found.op, status)
    if (documented === undefined) return [`${method} ${found.path} answered ${status}, which the document does not list (${Object.keys(found.op.responses).join(', ')})`]
    if (status < 300) this.exercised.add(`${method} ${found.path}`)
    const problems: string[] = []
    for (const name of Object.keys(documented.headers ?? {})) {
      if (headers.get(name) === null) problems.push(`${method} ${found.path} ${status}: header ${name} missing`)
    }
    if (documented.content === undefined) return problems
    const type = (headers.get('content-type') ?? '').split(';')[0].trim()
    const media = documented.content[type]
    if (media === undefined) return [...problems, `${method} ${found.path} ${status}: content-type ${type} is not documented (${Object.keys(documented.content).join(', ')})`]
    if (type !== 'application/json') return problems
    const validate = this.ajv.compile(rewriteRefs(media.schema) as Json)
    let parsed: unknown
    try { parsed = JSON.parse(body.toString('utf8')) } catch { return [...problems, `${method} ${found.path} ${status}: body is not JSON`] }
    if (!validate(parsed)) problems.push(`${method} ${found.path} ${status}: ${this.ajv.errorsText(validate.errors)} in ${body.toString('utf8').slice(0, 300)}`)
    return problems
  }
}

async function call (base: string, c: Case): Promise<{ status: number, headers: Headers, body: Buffer }> {
  const r = await fetch(base + c.path, { method: c.method, body: c.body, headers: c.headers })
  return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) }
}

t.test('the document is valid OpenAPI 3.1 and names exactly the served routes', async (t) => {
  const node = await startNode(t)
  const r = await fetch(node.base + '/openapi.json')
  t.equal(r.status, 200)
  t.match(r.headers.get('content-type'), /^application\/json/)
  const doc = await r.json() as Json
  t.equal(doc.openapi, '3.1.0')
  const result = await new Validator().validate(structuredClone(doc))
  t.same(result.errors, undefined, 'no validation errors')
  t.equal(result.valid, true, 'valid OpenAPI')

  const served = new Map(ALLOW.map(([p, methods]) => [p.replace(/:([a-z]+)/g, '{$1}'), methods.split(', ').sort()]))
  const documented = new Map(Object.entries(doc.paths as Json).map(([p, item]) => [p, Object.keys(item).filter(k => k !== 'parameters').map(m => m.toUpperCase()).sort()]))
  t.same([...documented.entries()].sort(), [...served.entries()].sort(), 'paths and methods match the routes the node serves')
  t.same(doc.components.schemas.ErrorBody.properties.code.enum, ERROR_CODES, 'every error code is in the document')
})

t.test('real answers of every operation keep the contract', async (t) => {
  const ch = await startClickHouse(t)
  const node = await startNode(t, { env: { MAX_BODY_BYTES: '1024', MAX_QUERY_KEYS: '5', LIKES_PER_MINUTE: '2', SAMPLE_SIZE: '4', CLICKHOUSE_URL: ch.url, HISTORY_FLUSH_MS: '200' } })
  const doc = await (await fetch(node.base + '/openapi.json')).json() as Json
  const contract = new Contract(doc)
  const big = JSON.stringify({ by: 1, pad: 'x'.repeat(2000) })

  // Something to read back and to merge.
  for (let i = 0; i < 3; i++) await call(node.base, { name: 'seed', method: 'POST', path: '/v1/counter/oa/c1/increment', body: JSON.stringify({ by: 2, actor: `u${i}` }), status: 200 })
  const state = await call(node.base, { name: 'state', method: 'GET', path: '/v1/replication/state', status: 200 })
  // History comes from ClickHouse once the node has flushed the minute's rows.
  const now = Date.now()
  for (let tries = 0; ; tries++) {
    const h = await fetch(`${node.base}/v1/counter/oa/c1/history?from=${now - 3_600_000}&to=${now + 120_000}`)
    const j = await h.json() as Json
    if (h.status === 200 && j.points.length > 0) break
    if (tries > 200) throw new Error(`history never showed the increments: ${JSON.stringify(j)}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }

  const cases: Case[] = [
    { name: 'increment', method: 'POST', path: '/v1/counter/oa/c1/increment', body: '{"by":5}', status: 200 },
    { name: 'increment without a body', method: 'POST', path: '/v1/counter/oa/c2/increment', status: 200 },
    { name: 'increment with an Idempotency-Key', method: 'POST', path: '/v1/counter/oa/c2/increment', headers: { 'Idempotency-Key': 'k-1' }, status: 200 },
    { name: 'increment, fractional by', method: 'POST', path: '/v1/counter/oa/c1/increment', body: '{"by":1.5}', status: 400 },
    { name: 'increment, bad type', method: 'POST', path: '/v1/counter/OA/c1/increment', status: 400 },
    { name: 'increment, body over the limit', method: 'POST', path: '/v1/counter/oa/c1/increment', body: big, status: 413 },
    { name: 'increment, out of range', method: 'POST', path: '/v1/counter/oa/c1/increment', body: JSON.stringify({ by: Number.MAX_SAFE_INTEGER }), status: 400 },
    { name: 'get', method: 'GET', path: '/v1/counter/oa/c1', status: 200 },
    { name: 'get with replicas', method: 'GET', path: '/v1/counter/oa/c1?replicas=true', status: 200 },
    { name: 'get, bad id', method: 'GET', path: '/v1/counter/oa/bad%20id', status: 400 },
    { name: 'unique', method: 'GET', path: '/v1/counter/oa/c1/unique', status: 200 },
    { name: 'rate', method: 'GET', path: '/v1/counter/oa/c1/rate', status: 200 },
    { name: 'sample', method: 'GET', path: '/v1/counter/oa/c1/sample?n=2', status: 200 },
    { name: 'sample, n too large', method: 'GET', path: '/v1/counter/oa/c1/sample?n=5', status: 400 },
    { name: 'history', method: 'GET', path: `/v1/counter/oa/c1/history?from=${now - 3_600_000}&to=${now + 120_000}&step=hour`, status: 200 },
    { name: 'history, bad step', method: 'GET', path: '/v1/counter/oa/c1/history?step=week', status: 400 },
    { name: 'query', method: 'POST', path: '/v1/counters/query', body: '{"keys":["oa:c1","oa:none"]}', status: 200 },
    { name: 'query, too many keys', method: 'POST', path: '/v1/counters/query', body: JSON.stringify({ keys: ['a:1', 'a:2', 'a:3', 'a:4', 'a:5', 'a:6'] }), status: 400 },
    { name: 'query, malformed JSON', method: 'POST', path: '/v1/counters/query', body: '{"keys":', status: 400 },
    { name: 'like', method: 'POST', path: '/v1/like', body: '{"user_id":"u1","item_id":"i1","item_type":"post"}', status: 200 },
    { name: 'unlike', method: 'POST', path: '/v1/unlike', body: '{"user_id":"u1","item_id":"i1","item_type":"post"}', status: 200 },
    { name: 'like over the user\'s quota', method: 'POST', path: '/v1/like', body: '{"user_id":"u1","item_id":"i2","item_type":"post"}', status: 429 },
    { name: 'like, bad user', method: 'POST', path: '/v1/like', body: '{"user_id":"","item_id":"i1","item_type":"post"}', status: 400 },
    { name: 'count', method: 'GET', path: '/v1/count?item_id=i1&item_type=post', status: 200 },
    { name: 'count, no item', method: 'GET', path: '/v1/count?item_type=post', status: 400 },
    { name: 'has-liked', method: 'GET', path: '/v1/has-liked?user_id=u1&item_id=i1&item_type=post', status: 200 },
    { name: 'counts', method: 'POST', path: '/v1/counts', body: '{"items":[{"item_type":"post","item_id":"i1"}]}', status: 200 },
    { name: 'counts, not a list', method: 'POST', path: '/v1/counts', body: '{"items":1}', status: 400 },
    { name: 'top', method: 'GET', path: '/v1/top?type=oa&k=3', status: 200 },
    { name: 'top of every type', method: 'GET', path: '/v1/top', status: 200 },
    { name: 'top, k = 0', method: 'GET', path: '/v1/top?k=0', status: 400 },
    { name: 'the ring (an embedded node is a ring of one)', method: 'GET', path: '/v1/cluster', status: 200 },
    { name: 'quota', method: 'GET', path: '/v1/quota?user_id=u1', status: 200 },
    { name: 'quota, no user', method: 'GET', path: '/v1/quota', status: 400 },
    { name: 'replication state', method: 'GET', path: '/v1/replication/state', status: 200 },
    { name: 'replication merge', method: 'POST', path: '/v1/replication/merge', body: state.body, status: 200 },
    { name: 'replication merge of garbage', method: 'POST', path: '/v1/replication/merge', body: Buffer.from('not records'), status: 400 },
    { name: 'reset', method: 'DELETE', path: '/v1/counter/oa/c2', status: 200 },
    { name: 'reset, bad type', method: 'DELETE', path: '/v1/counter/-*-/c2', status: 400 },
    { name: 'health', method: 'GET', path: '/health', status: 200 },
    { name: 'ready', method: 'GET', path: '/ready', status: 200 },
    { name: 'metrics', method: 'GET', path: '/metrics', status: 200 },
    { name: 'the document itself', method: 'GET', path: '/openapi.json', status: 200 },
    { name: 'the live page', method: 'GET', path: '/', status: 200 }
  ]
  for (const c of cases) {
    const r = await call(node.base, c)
    t.equal(r.status, c.status, `${c.name}: status`)
    t.same(contract.check(c.method, c.path, r.status, r.headers, r.body), [], `${c.name}: as documented`)
  }

  // The stream upgrade: 101 with a good clientId, a documented 400 with a bad one.
  await new Promise<void>((resolve, reject) => {
    const ws = new WebSocket(`${node.base.replace('http', 'ws')}/v1/stream?clientId=oa-1`)
    ws.once('open', () => { contract.check('GET', '/v1/stream', 101, new Headers(), Buffer.alloc(0)); ws.close(); resolve() })
    ws.once('error', reject)
  })
  const refused = await new Promise<{ status: number, headers: Headers, body: Buffer }>((resolve, reject) => {
    const ws = new WebSocket(`${node.base.replace('http', 'ws')}/v1/stream?clientId=${'x'.repeat(65)}`)
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: new Headers(res.headers as Record<string, string>), body: Buffer.concat(chunks) }))
    })
    ws.once('open', () => reject(new Error('a 65-character clientId was accepted')))
    ws.once('error', () => {})
  })
  t.equal(refused.status, 400)
  t.same(contract.check('GET', '/v1/stream', refused.status, refused.headers, refused.body), [], 'the refused upgrade is as documented')
  t.same(JSON.parse(refused.body.toString()).error.code, 'invalid_client_id')

  const operations = Object.entries(doc.paths as Json).flatMap(([p, item]) => Object.keys(item).filter(k => k !== 'parameters').map(m => `${m.toUpperCase()} ${p}`))
  t.same(operations.filter(o => !contract.exercised.has(o)), [], 'every operation was answered with success at least once')

  // Answers outside any operation still use the documented error body.
  const errorBody = contract.doc.components.schemas.Error
  const validate = new Ajv2020({ strict: false }).addSchema({ $id: COMPONENTS_ID, $defs: rewriteRefs(doc.components.schemas) as Json }).compile(rewriteRefs(errorBody) as Json)
  for (const [method, path, status] of [['GET', '/v2/nothing', 404], ['PUT', '/v1/counter/oa/c1', 405]] as const) {
    const r = await fetch(node.base + path, { method })
    t.equal(r.status, status, `${method} ${path}`)
    t.ok(validate(await r.json()), `${method} ${path}: the error body is the documented Error`)
  }
})

t.test('history without ClickHouse keeps the same contract', async (t) => {
  const node = await startNode(t)
  const contract = new Contract(await (await fetch(node.base + '/openapi.json')).json() as Json)
  for (let i = 0; i < 3; i++) await call(node.base, { name: 'seed', method: 'POST', path: '/v1/counter/oa/h1/increment', body: '{"by":4}', status: 200 })
  const now = Date.now()
  const cases: Case[] = [
    { name: 'history by minute', method: 'GET', path: `/v1/counter/oa/h1/history?from=${now - 3_600_000}&to=${now + 120_000}`, status: 200 },
    { name: 'history by day', method: 'GET', path: `/v1/counter/oa/h1/history?from=${now - 3_600_000}&to=${now + 120_000}&step=day`, status: 200 },
    { name: 'history, bad from', method: 'GET', path: '/v1/counter/oa/h1/history?from=yesterday', status: 400 }
  ]
  for (const c of cases) {
    const r = await call(node.base, c)
    t.equal(r.status, c.status, `${c.name}: status`)
    t.same(contract.check(c.method, c.path, r.status, r.headers, r.body), [], `${c.name}: as documented`)
    if (r.status === 200) t.equal((JSON.parse(r.body.toString()) as { points: Array<{ value: number }> }).points.reduce((a, p) => a + p.value, 0), 12, `${c.name}: the increments are there`)
  }
  const off = await startNode(t, { env: { HISTORY_RETENTION_MINUTES: '0' } })
  const r = await call(off.base, { name: 'history off', method: 'GET', path: '/v1/counter/oa/h1/history', status: 404 })
  t.equal(r.status, 404, 'history off: 404')
  t.same(contract.check('GET', '/v1/counter/oa/h1/history', r.status, r.headers, r.body), [], 'history off: as documented')
})
