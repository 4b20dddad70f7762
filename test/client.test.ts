// The TypeScript client (client/) against real nodes: every HTTP call, errors with the server's
// codes, option checks, and the stream's exact totals through backpressure, refused frames and a
// kill -9 of the node in the middle of the stream.
import t from 'tap'
import { CounterdClient, CounterdClientError, CounterStream, RETRIABLE_CODES } from '../client'
import { CounterdError, ERROR_CODES } from '../src/core/errors'
import { freePort } from './support/ports'
import { queryValues, startNode } from './support/node-process'

const MAX = Number.MAX_SAFE_INTEGER

async function rejection (p: Promise<unknown>): Promise<CounterdClientError> {
  try {
    await p
  } catch (err) {
    if (err instanceof CounterdClientError) return err
    throw err
  }
  throw new Error('expected a rejection')
}

t.test('options are checked once, naming the key', async (t) => {
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['url not a URL', () => new CounterdClient({ url: 'localhost:8080' }), /^options\.url must be an http\(s\) URL/],
    ['url of another scheme', () => new CounterdClient({ url: 'ftp://x' }), /^options\.url must be an http\(s\) URL/],
    ['timeout 0', () => new CounterdClient({ url: 'http://x', timeoutMs: 0 }), /^options\.timeoutMs must be a positive integer$/],
    ['stream url', () => new CounterStream({ url: 'tcp://x' }), /^options\.url must be an http\(s\) or ws\(s\) URL/],
    ['bad clientId', () => new CounterStream({ url: 'http://x', clientId: 'a b' }), /^options\.clientId must match/],
    ['frames too big', () => new CounterStream({ url: 'http://x', maxOpsPerFrame: 70_000 }), /^options\.maxOpsPerFrame must be an integer from 1 to 65535, got 70000$/],
    ['no frames in flight', () => new CounterStream({ url: 'http://x', maxInflightFrames: 0 }), /^options\.maxInflightFrames must be an integer from 1 to 1024, got 0$/],
    ['backoff upside down', () => new CounterStream({ url: 'http://x', reconnectMinMs: 500, reconnectMaxMs: 100 }), /^options\.reconnectMaxMs must not be below/]
  ]
  for (const [name, make, message] of cases) t.throws(make, message, name)
})

t.test('retriable codes agree with the server\'s catalogue', async (t) => {
  for (const code of ERROR_CODES) t.equal(RETRIABLE_CODES.has(code), new CounterdError(code).retriable, code)
})

t.test('HTTP calls', async (t) => {
  const node = await startNode(t, { env: { LIKES_PER_MINUTE: '3' } })
  const c = new CounterdClient({ url: node.base })

  t.equal(await c.increment('post', 'h1'), 1)
  t.equal(await c.increment('post', 'h1', { by: 41, actor: 'u1' }), 42)
  t.equal(await c.increment('post', 'h1', { by: 5, idempotencyKey: 'k1' }), 47)
  t.equal(await c.increment('post', 'h1', { by: 5, idempotencyKey: 'k1' }), 47, 'a retry with the same key is counted once')
  t.equal(await c.get('post', 'h1'), 47)
  t.same(await c.replicas('post', 'h1'), { value: 47, replicas: [{ replica: 'main', p: 47, n: 0 }] })
  t.same(await c.query(['post:h1', 'post:none']), { 'post:h1': 47, 'post:none': 0 })
  t.equal(await c.unique('post', 'h1'), 1)
  t.same(await c.sample('post', 'h1'), ['u1'])
  t.ok(await c.rate('post', 'h1') > 0, 'a counter just incremented has a rate')
  t.same((await c.top({ type: 'post', k: 1 })).map(e => e.key), ['post:h1'])
  await c.reset('post', 'h1')
  t.equal(await c.get('post', 'h1'), 0)

  t.same(await c.like('u1', 'post', 'i1'), { user_id: 'u1', item_id: 'i1', item_type: 'post', liked: true, count: 1 })
  t.equal(await c.hasLiked('u1', 'post', 'i1'), true)
  t.equal(await c.likeCount('post', 'i1'), 1)
  t.same(await c.likeCounts([{ itemType: 'post', itemId: 'i1' }, { itemType: 'post', itemId: 'i2' }]), { 'post:i1': 1, 'post:i2': 0 })
  t.equal((await c.unlike('u1', 'post', 'i1')).count, 0)
  t.equal((await c.quota('u1')).remaining, 1)
  t.ok(await c.health())
  t.ok(await c.ready())

  const merged = await c.replicationMerge(await c.replicationState())
  t.equal(merged.countersChanged, 0, 'merging a node\'s own state changes nothing')

  const e1 = await rejection(c.increment('post', 'h1', { by: 1.5 }))
  t.match(e1, { code: 'invalid_delta', status: 400, retriable: false })
  const now = Date.now()
  const h = await c.history('post', 'h1', { from: now - 3_600_000, to: now + 120_000, step: 'hour' })
  t.match(h, { type: 'post', id: 'h1', step: 'hour' })
  t.equal(h.points.reduce((a, p) => a + p.value, 0), 0, 'the hour\'s net change: 47 in, reset to 0')
  const e2 = await rejection(c.history('post', 'h1', { step: 'week' as 'hour' }))
  t.match(e2, { code: 'invalid_argument', status: 400, retriable: false })
  await c.like('u1', 'post', 'i3')
  const e3 = await rejection(c.like('u1', 'post', 'i4'))
  t.match(e3, { code: 'rate_limited', status: 429, retriable: true })
  const e4 = await rejection(c.increment('Post', 'h1'))
  t.match(e4, { code: 'invalid_type', status: null }, 'a bad key fails before anything is sent')
  t.equal(await c.get('post', 'h1'), 0, 'nothing of the refused calls was applied')

  const down = new CounterdClient({ url: `http://127.0.0.1:${await freePort()}`, timeoutMs: 2000 })
  t.match(await rejection(down.get('post', '1')), { code: 'network', retriable: true })
  t.equal(await down.health(), false)
})

t.test('stream: exact totals, backpressure, refused frames', async (t) => {
  const node = await startNode(t)
  const s = new CounterStream({ url: node.base, maxOpsPerFrame: 500, maxInflightFrames: 4, highWaterOps: 5000 })
  t.teardown(async () => await s.close())
  const expected = new Map<string, number>()
  let drains = 0
  let refusedAdds = 0
  s.on('drain', () => drains++)
  for (let i = 0; i < 100_000; i++) {
    const id = String((i * 7919) % 2000)
    const delta = (i % 5) - 1
    expected.set(id, (expected.get(id) ?? 0) + delta)
    if (!s.add('cs', id, delta)) {
      refusedAdds++
      await new Promise(resolve => s.once('drain', resolve))
    }
  }
  await s.flush()
  t.ok(refusedAdds > 0 && drains > 0, `add said wait ${refusedAdds} times and 'drain' came ${drains} times`)
  t.equal(s.stats.ackedOps, 100_000)
  const values = await queryValues(node.base, [...expected.keys()].map(id => `cs:${id}`))
  t.same(Object.entries(values).filter(([k, v]) => v !== expected.get(k.slice(3))), [], 'every counter exact')

  // An op the node refuses for good: its frame is reported, the rest goes on.
  const errors: CounterdClientError[] = []
  s.on('error', (err: CounterdClientError) => errors.push(err))
  s.add('cs', 'big', MAX)
  await s.flush()
  s.add('cs', 'big', 1)
  await s.flush()
  s.add('cs', 'after', 3)
  await s.flush()
  t.equal(errors.length, 1)
  t.match(errors[0], { code: 'value_out_of_range', retriable: false, ops: [['cs', 'big', 1]] })
  t.equal(s.stats.failedFrames, 1)
  t.same(await queryValues(node.base, ['cs:big', 'cs:after']), { 'cs:big': MAX, 'cs:after': 3 })
})

t.test('stream: a node killed mid-stream and restarted; the client resends and every op counts once', async (t) => {
  const port = await freePort()
  let node = await startNode(t, { env: { PORT: String(port), ACK_MODE: 'durable' } })
  const s = new CounterStream({ url: node.base, clientId: 'kill-test', maxOpsPerFrame: 200, maxInflightFrames: 16, highWaterOps: 20_000, reconnectMinMs: 20, reconnectMaxMs: 200 })
  t.teardown(async () => await s.close())
  const expected = new Map<string, number>()
  const TOTAL = 200_000
  const addRange = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) {
      const id = String((i * 104729) % 5000)
      expected.set(id, (expected.get(id) ?? 0) + 1 + (i % 3))
      if (!s.add('ks', id, 1 + (i % 3))) await new Promise(resolve => s.once('drain', resolve))
    }
  }
  await addRange(0, 60_000)
  while (s.stats.ackedOps < 40_000) await new Promise(resolve => setTimeout(resolve, 2))
  const inflightAtKill = 60_000 - s.stats.ackedOps
  const restarted = node.restart().then((n) => { node = n })
  await addRange(60_000, TOTAL) // meanwhile the node is down, then recovering
  await restarted
  await s.flush()
  t.ok(s.stats.reconnects >= 1, `reconnected ${s.stats.reconnects} time(s), resent ${s.stats.framesResent} frame(s); ${inflightAtKill} ops were not yet acked at the kill`)
  t.equal(s.stats.ackedOps, TOTAL, 'every op acknowledged once')
  const values = await queryValues(node.base, [...expected.keys()].map(id => `ks:${id}`))
  const wrong = Object.entries(values).filter(([k, v]) => v !== expected.get(k.slice(3)))
  t.same(wrong.slice(0, 10), [], `every counter exact (${wrong.length} wrong)`)
})
