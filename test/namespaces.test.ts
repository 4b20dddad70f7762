// Namespaces (AUTH_FILE): two keys of two namespaces write the same counter names through HTTP,
// the stream and the Redis protocol; each reads only its own values, top-K lists only its own
// counters, likes, unique counts, history and batch queries are apart, and a kill -9 + restart
// keeps them apart. An open node keeps keys as they were (no prefix), so its data reads the same.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { digestOf } from '../src/core/api-keys'
import { startNode, type NodeProcess } from './support/node-process'
import { connectResp } from './support/resp-client'
import { StreamClient } from './support/stream-client'

const SHOP = 'shop-key-0123456789abc'
const BLOG = 'blog-key-0123456789abc'

function keyFile (t: { teardown: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-ns-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'keys.json')
  fs.writeFileSync(file, JSON.stringify({
    keys: [
      { key: `sha256:${digestOf(SHOP)}`, namespace: 'shop', scopes: ['read', 'write'] },
      { key: `sha256:${digestOf(BLOG)}`, namespace: 'blog', scopes: ['read', 'write'] }
    ]
  }))
  return file
}

async function call (node: NodeProcess, key: string | null, method: string, p: string, body?: unknown): Promise<{ status: number, body: any }> {
  const r = await fetch(node.base + p, {
    method,
    headers: key === null ? {} : { authorization: `Bearer ${key}` },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await r.text()
  return { status: r.status, body: text === '' ? null : JSON.parse(text) }
}

async function value (node: NodeProcess, key: string, type: string, id: string): Promise<number> {
  const r = await call(node, key, 'GET', `/v1/counter/${type}/${id}`)
  if (r.status !== 200) throw new Error(`GET ${type}/${id}: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body.value
}

t.test('two namespaces write the same names and never see each other', async (t) => {
  let node = await startNode(t, { env: { AUTH_FILE: keyFile(t), RESP_PORT: '0', WORKERS: '2', PARTITIONS: '8' } })

  // HTTP: the same counter name, different amounts per namespace.
  t.equal((await call(node, SHOP, 'POST', '/v1/counter/post/1/increment', { by: 5, actor: 'alice' })).body.value, 5)
  t.equal((await call(node, BLOG, 'POST', '/v1/counter/post/1/increment', { by: 7 })).body.value, 7, 'blog starts from 0')
  t.equal((await call(node, SHOP, 'POST', '/v1/counter/shoponly/1/increment', { by: 1 })).status, 200)
  // Idempotency keys are per namespace too: the same key in blog is a different request.
  const idem = { 'idempotency-key': 'order-1' }
  for (const key of [SHOP, BLOG]) {
    const r = await fetch(`${node.base}/v1/counter/post/idem/increment`, { method: 'POST', headers: { authorization: `Bearer ${key}`, ...idem } })
    t.equal((await r.json() as { value: number }).value, 1, 'first use of the idempotency key in each namespace applies')
  }

  // The stream: both namespaces use the same clientId and seq; neither frame is taken for a resend.
  const shopStream = await StreamClient.connect(node.base, `c1&token=${SHOP}`)
  const blogStream = await StreamClient.connect(node.base, `c1&token=${BLOG}`)
  t.teardown(() => { shopStream.ws.close(); blogStream.ws.close() })
  t.same(await shopStream.sendBinary(1, [{ type: 'post', id: '1', by: 10 }, { type: 'video', id: '9', by: 1 }]), { seq: 1, ok: true })
  t.same(await blogStream.sendJson(1, [['post', '1', 20]]), { seq: 1, ok: true, error: undefined })

  // The Redis protocol.
  const shopResp = await connectResp(t, node.respPort)
  const blogResp = await connectResp(t, node.respPort)
  t.same(await shopResp.call('AUTH', SHOP), { ok: 'OK' })
  t.same(await blogResp.call('AUTH', BLOG), { ok: 'OK' })
  t.equal(await shopResp.call('INCRBY', 'post:1', 100), 115)
  t.equal(await blogResp.call('INCRBY', 'post:1', 200), 227)
  t.equal(await blogResp.call('PFADD', 'post:1', 'bob', 'carol'), 1)

  // Each reads its own.
  t.equal(await value(node, SHOP, 'post', '1'), 115)
  t.equal(await value(node, BLOG, 'post', '1'), 227)
  t.equal(await value(node, BLOG, 'video', '9'), 0, 'a counter only shop touched is 0 for blog')
  t.equal(await value(node, BLOG, 'shoponly', '1'), 0)
  t.same(await shopResp.call('MGET', 'post:1', 'video:9'), ['115', '1'])
  t.same(await blogResp.call('MGET', 'post:1', 'video:9'), ['227', null])
  t.same((await call(node, SHOP, 'POST', '/v1/counters/query', { keys: ['post:1', 'video:9'] })).body, { values: { 'post:1': 115, 'video:9': 1 } })
  t.same((await call(node, BLOG, 'POST', '/v1/counters/query', { keys: ['post:1', 'video:9'] })).body, { values: { 'post:1': 227, 'video:9': 0 } })
  t.equal((await call(node, SHOP, 'GET', '/v1/counter/post/1/unique')).body.unique, 1, 'shop saw alice only')
  t.equal((await call(node, BLOG, 'GET', '/v1/counter/post/1/unique')).body.unique, 2, 'blog saw bob and carol')
  t.same((await call(node, SHOP, 'GET', '/v1/counter/post/1/sample')).body.sample, ['alice'])

  // Likes: the same user and item in two namespaces.
  const like = { user_id: 'u1', item_id: '1', item_type: 'post' }
  t.equal((await call(node, SHOP, 'POST', '/v1/like', like)).body.count, 1)
  t.equal((await call(node, BLOG, 'GET', '/v1/count?item_id=1&item_type=post')).body.count, 0)
  t.equal((await call(node, BLOG, 'GET', '/v1/has-liked?user_id=u1&item_id=1&item_type=post')).body.liked, false)
  t.equal((await call(node, BLOG, 'POST', '/v1/like', like)).body.count, 1, 'blog\'s u1 likes blog\'s post:1 once')
  t.same((await call(node, SHOP, 'POST', '/v1/counts', { items: [{ item_type: 'post', item_id: '1' }] })).body, { counts: { 'post:1': 1 } })

  // Top-K: each lists its own counters, spelled as the caller spells them.
  const top = async (key: string): Promise<string[]> => ((await call(node, key, 'GET', '/v1/top?k=100')).body.top as Array<{ key: string, type: string }>).map(e => e.key).sort()
  t.same(await top(SHOP), ['post:1', 'post:idem', 'shoponly:1', 'video:9'])
  t.same(await top(BLOG), ['post:1', 'post:idem'])
  const topEntry = (await call(node, SHOP, 'GET', '/v1/top?type=shoponly')).body.top
  t.same(topEntry.map((e: { key: string, type: string, id: string }) => [e.key, e.type, e.id]), [['shoponly:1', 'shoponly', '1']])

  // History (the partitions' own minutes): each namespace's net changes sum to its value.
  const historySum = async (key: string): Promise<number> =>
    ((await call(node, key, 'GET', '/v1/counter/post/1/history')).body.points as Array<{ value: number }>).reduce((a, p) => a + p.value, 0)
  t.equal(await historySum(SHOP), 115)
  t.equal(await historySum(BLOG), 227)

  // A stored key cannot be spelled by a user: '/' is outside every key alphabet.
  const cases: Array<[string, string, string, number, string]> = [
    ['GET', '/v1/counter/shop%2Fpost/1', BLOG, 400, 'invalid_type'],
    ['GET', '/v1/counter/shop/post%2F1', BLOG, 400, 'invalid_id'],
    ['POST', '/v1/counter/shop%2Fpost/1/increment', BLOG, 400, 'invalid_type']
  ]
  for (const [method, p, key, status, code] of cases) {
    const r = await call(node, key, method, p)
    t.equal(r.status, status, `${method} ${p}`)
    t.equal(r.body?.error?.code, code, `${method} ${p}`)
  }
  t.same((await call(node, BLOG, 'POST', '/v1/counters/query', { keys: ['shop/post:1'] })).body.error.code, 'invalid_key')
  t.match(await blogResp.call('GET', 'shop/post:1'), { err: /^ERR invalid key 'shop\/post:1'/ })
  t.equal(await value(node, SHOP, 'post', '1'), 115, 'nothing changed')

  // kill -9 and restart: still apart.
  node = await node.restart()
  t.equal(await value(node, SHOP, 'post', '1'), 115)
  t.equal(await value(node, BLOG, 'post', '1'), 227)
  t.equal(await value(node, SHOP, 'video', '9'), 1)
  t.equal(await value(node, BLOG, 'video', '9'), 0)
  t.equal((await call(node, BLOG, 'GET', '/v1/count?item_id=1&item_type=post')).body.count, 1)
  t.same(await top(BLOG), ['post:1', 'post:idem'])
})

t.test('an open node keeps keys unprefixed: its data reads the same, and no namespace sees it', async (t) => {
  const open = await startNode(t, { env: { WORKERS: '1', PARTITIONS: '4' } })
  const dataDir = open.dataDir
  t.equal((await call(open, null, 'POST', '/v1/counter/post/1/increment', { by: 3 })).body.value, 3)
  await open.kill9()
  const secured = await startNode(t, { dataDir, env: { AUTH_FILE: keyFile(t), WORKERS: '1', PARTITIONS: '4' } })
  t.equal(await value(secured, SHOP, 'post', '1'), 0, 'the open node\'s counter is not in namespace shop')
  t.equal((await call(secured, SHOP, 'POST', '/v1/counter/post/1/increment', { by: 4 })).body.value, 4)
  t.same((await call(secured, SHOP, 'GET', '/v1/top')).body.top.map((e: { key: string }) => e.key), ['post:1'])
  await secured.kill9()
  const reopened = await startNode(t, { dataDir, env: { WORKERS: '1', PARTITIONS: '4' } })
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  t.equal(await value(reopened, '', 'post', '1'), 3, 'open again: the same value as before')
  // (shop's increment was replayed from the log, so it has a rate; rates are not kept in snapshots)
  t.equal((await call(reopened, null, 'POST', '/v1/counter/post/1/increment')).body.value, 4)
  t.same((await call(reopened, null, 'GET', '/v1/top')).body.top.map((e: { key: string }) => e.key), ['post:1'], 'top of an open node lists no namespaced counter')
})
