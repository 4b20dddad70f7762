// API keys (AUTH_FILE) against real nodes: every route needs a key with its scope, refusals are
// 401/403 with nothing applied, open routes stay open, the stream takes the key too, SIGHUP
// reloads the file, and a bad file stops the start with a message naming the entry.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import WebSocket from 'ws'
import { digestOf } from '../src/core/api-keys'
import { MAIN, startNode } from './support/node-process'

const READER = 'reader-key-0123456789'
const WRITER = 'writer-key-0123456789'
const ADMIN = 'admin-key-0123456789ab'

function keyFile (t: { teardown: (fn: () => void) => void }, keys: unknown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-auth-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'keys.json')
  fs.writeFileSync(file, JSON.stringify(keys))
  return file
}

const KEYS = {
  keys: [
    { key: `sha256:${digestOf(READER)}`, namespace: 'shop', scopes: ['read'] },
    { key: `sha256:${digestOf(WRITER)}`, namespace: 'shop', scopes: ['read', 'write'] },
    { key: ADMIN, namespace: 'shop', scopes: ['admin'] }
  ]
}

t.test('routes need a key with their scope', async (t) => {
  const node = await startNode(t, { env: { AUTH_FILE: keyFile(t, KEYS) } })
  const call = async (method: string, p: string, key?: string, body?: string): Promise<{ status: number, code?: string }> => {
    const r = await fetch(node.base + p, { method, body, headers: key === undefined ? {} : { authorization: `Bearer ${key}` } })
    const text = await r.text()
    let code: string | undefined
    try { code = JSON.parse(text)?.error?.code } catch {}
    return { status: r.status, code }
  }
  const cases: Array<[string, string, string | undefined, number, string?]> = [
    ['POST', '/v1/counter/au/1/increment', undefined, 401, 'unauthorized'],
    ['POST', '/v1/counter/au/1/increment', 'no-such-key-0000000', 401, 'unauthorized'],
    ['POST', '/v1/counter/au/1/increment', READER, 403, 'forbidden'],
    ['POST', '/v1/counter/au/1/increment', ADMIN, 403, 'forbidden'],
    ['POST', '/v1/counter/au/1/increment', WRITER, 200],
    ['GET', '/v1/counter/au/1', undefined, 401, 'unauthorized'],
    ['GET', '/v1/counter/au/1', READER, 200],
    ['DELETE', '/v1/counter/au/2', READER, 403, 'forbidden'],
    ['POST', '/v1/like', READER, 403, 'forbidden'],
    ['POST', '/v1/counters/query', READER, 200],
    ['GET', '/v1/replication/state', WRITER, 403, 'forbidden'],
    ['GET', '/v1/replication/state', ADMIN, 200],
    ['GET', '/metrics', READER, 403, 'forbidden'],
    ['GET', '/metrics', ADMIN, 200],
    ['GET', '/health', undefined, 200],
    ['GET', '/ready', undefined, 200],
    ['GET', '/openapi.json', undefined, 200],
    ['GET', '/', undefined, 200],
    ['GET', '/v2/nothing', undefined, 404, 'not_found']
  ]
  for (const [method, p, key, status, code] of cases) {
    const r = await call(method, p, key, method === 'POST' && p.includes('query') ? '{"keys":["au:1"]}' : undefined)
    t.equal(r.status, status, `${method} ${p} with ${key === undefined ? 'no key' : key.slice(0, 6)}`)
    if (code !== undefined) t.equal(r.code, code)
  }
  const value = await fetch(`${node.base}/v1/counter/au/1`, { headers: { authorization: `Bearer ${READER}` } })
  t.equal((await value.json() as { value: number }).value, 1, 'only the authorized increment was applied')

  // The stream: the key in the Authorization header or ?token=, with the write scope.
  const upgrade = async (query: string, headers: Record<string, string> = {}): Promise<number> => await new Promise((resolve) => {
    const ws = new WebSocket(`${node.base.replace('http', 'ws')}/v1/stream${query}`, { headers })
    ws.once('open', () => { ws.close(); resolve(101) })
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
    ws.once('error', () => {})
  })
  t.equal(await upgrade(''), 401)
  t.equal(await upgrade(`?token=${READER}`), 403)
  t.equal(await upgrade(`?token=${WRITER}`), 101)
  t.equal(await upgrade('', { authorization: `Bearer ${WRITER}` }), 101)
  t.match(node.output(), /plain text/, 'a plain key in the file is warned about')
  t.notMatch(node.output(), new RegExp(WRITER), 'keys are never logged')
})

t.test('METRICS_OPEN opens /metrics only', async (t) => {
  const node = await startNode(t, { env: { AUTH_FILE: keyFile(t, KEYS), METRICS_OPEN: 'true' } })
  t.equal((await fetch(`${node.base}/metrics`)).status, 200)
  t.equal((await fetch(`${node.base}/v1/counter/au/1`)).status, 401)
})

t.test('SIGHUP reloads the keys; a broken file is refused and the old keys stay', async (t) => {
  const file = keyFile(t, { keys: [KEYS.keys[0]] })
  const node = await startNode(t, { env: { AUTH_FILE: file } })
  const status = async (key: string): Promise<number> => (await fetch(`${node.base}/v1/counter/au/1/increment`, { method: 'POST', headers: { authorization: `Bearer ${key}` } })).status
  t.equal(await status(WRITER), 401)
  fs.writeFileSync(file, JSON.stringify(KEYS))
  node.proc.kill('SIGHUP')
  for (let i = 0; i < 200 && await status(WRITER) !== 200; i++) await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(await status(WRITER), 200, 'the new key works after SIGHUP')
  fs.writeFileSync(file, '{"keys": [')
  node.proc.kill('SIGHUP')
  for (let i = 0; i < 200 && !/AUTH_FILE not reloaded/.test(node.output()); i++) await new Promise(resolve => setTimeout(resolve, 20))
  t.match(node.output(), /AUTH_FILE not reloaded/)
  t.equal(await status(WRITER), 200, 'the keys in use stay')
})

t.test('no AUTH_FILE: open, and said once at start', async (t) => {
  const node = await startNode(t)
  t.equal((await fetch(`${node.base}/v1/counter/au/1/increment`, { method: 'POST' })).status, 200)
  t.match(node.output(), /AUTH_FILE is not set/)
})

t.test('a bad AUTH_FILE stops the start with exit 2, naming the entry', async (t) => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['not JSON', '{', /not JSON/],
    ['no list', { key: 'x' }, /must be \{"keys":\[\.\.\.\]\}/],
    ['short plain key', { keys: [{ key: 'short', namespace: 'a', scopes: ['read'] }] }, /keys\[0\]\.key must be at least 16 characters/],
    ['bad digest', { keys: [{ key: 'sha256:abc', namespace: 'a', scopes: ['read'] }] }, /keys\[0\]\.key must have 64 hex digits/],
    ['bad scope', { keys: [KEYS.keys[0], { key: `sha256:${digestOf('another-key-000000')}`, namespace: 'a', scopes: ['root'] }] }, /keys\[1\]\.scopes must be a non-empty list/],
    ['bad namespace', { keys: [{ key: `sha256:${digestOf(READER)}`, namespace: 'a b', scopes: ['read'] }] }, /keys\[0\]\.namespace must match/],
    ['duplicate', { keys: [KEYS.keys[0], KEYS.keys[0]] }, /keys\[1\]\.key appears twice/]
  ]
  for (const [name, content, message] of cases) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-auth-'))
    const file = path.join(dir, 'keys.json')
    fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content))
    const r = spawnSync(process.execPath, [MAIN], { env: { ...process.env, PORT: '0', DATA_DIR: path.join(dir, 'data'), AUTH_FILE: file }, encoding: 'utf8', timeout: 30_000 })
    fs.rmSync(dir, { recursive: true, force: true })
    t.equal(r.status, 2, `${name}: exit 2`)
    t.match(r.stderr, message, `${name}: says what is wrong`)
  }
})
