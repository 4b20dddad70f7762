// The seeds' JSON, unchanged: ids and types may be JSON numbers (non-negative integers up to
// 2^53−1), taken as their decimal strings, on every body, batch query and JSON stream frame.
// First the one rule (src/core/json-ids.ts) as a table, then the seeds' exact examples against a
// real node, and that 456 and "456" name the same counter and the same like.
import t from 'tap'
import { CounterdError } from '../src/core/errors'
import { jsonIdString, type IdKind } from '../src/core/json-ids'
import { getValue, startNode } from './support/node-process'
import { StreamClient } from './support/stream-client'

async function call (base: string, method: string, path: string, body?: unknown): Promise<{ status: number, json: any }> {
  const r = await fetch(base + path, { method, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) })
  return { status: r.status, json: await r.json() }
}

t.test('jsonIdString: one rule for every JSON id and type', async (t) => {
  const accepted: Array<[unknown, IdKind, string]> = [
    [456, 'id', '456'],
    ['456', 'id', '456'],
    [123, 'user', '123'],
    [1, 'type', '1'],
    ['post', 'type', 'post'],
    [0, 'id', '0'],
    [-0, 'id', '0'], // -0 is zero, not a negative number
    [456.0, 'id', '456'], // JSON 456.0 is the number 456
    [4.56e2, 'id', '456'],
    [Number.MAX_SAFE_INTEGER, 'id', '9007199254740991'], // plain decimal, no exponent
    [Number.MAX_SAFE_INTEGER, 'type', '9007199254740991'],
    [42, 'actor', '42'],
    ['user-42', 'actor', 'user-42']
  ]
  for (const [v, kind, want] of accepted) t.equal(jsonIdString(v, kind, 'f'), want, `${kind} ${JSON.stringify(v)} → "${want}"`)

  const refused: Array<[unknown, IdKind, string]> = [
    [-1, 'id', 'invalid_id'],
    [1.5, 'id', 'invalid_id'],
    [Number.MAX_SAFE_INTEGER + 1, 'id', 'invalid_id'], // 2^53: no longer exact
    [1e21, 'id', 'invalid_id'],
    [Infinity, 'id', 'invalid_id'],
    [-Infinity, 'user', 'invalid_user_id'],
    [NaN, 'type', 'invalid_type'],
    [-3, 'type', 'invalid_type'],
    [2.5, 'actor', 'invalid_actor'],
    [-7, 'user', 'invalid_user_id'],
    [true, 'id', 'invalid_id'],
    [null, 'id', 'invalid_id'],
    [[1], 'id', 'invalid_id'],
    [{}, 'type', 'invalid_type'],
    [undefined, 'user', 'invalid_user_id'],
    ['', 'id', 'invalid_id'],
    ['Post', 'type', 'invalid_type'], // strings keep their alphabet
    ['a b', 'user', 'invalid_user_id'],
    ['x'.repeat(129), 'id', 'invalid_id']
  ]
  for (const [v, kind, code] of refused) {
    const r = jsonIdString(v, kind, 'item_id')
    t.ok(r instanceof CounterdError, `${kind} ${String(v)} is refused`)
    t.equal((r as CounterdError).code, code, `${kind} ${String(v)}: ${code}`)
    t.match((r as CounterdError).message, /^item_id /, 'the message names the field')
  }
  t.match((jsonIdString(-1, 'id', 'item_id') as CounterdError).message, /non-negative integer up to 2\^53-1, got -1/)
  t.match((jsonIdString(undefined, 'id', 'item_id') as CounterdError).message, /item_id is missing/)
})

t.test('the seeds\' JSON against a real node', async (t) => {
  const node = await startNode(t, { env: { WORKERS: '2' } })

  t.test('likes API: {"user_id": 123, "item_id": 456, "item_type": "post"}, exactly as the seed sends it', async (t) => {
    // The seed's body, byte for byte.
    const seed = '{"user_id": 123, "item_id": 456, "item_type": "post"}'
    const first = await call(node.base, 'POST', '/v1/like', seed)
    t.equal(first.status, 200)
    t.same(first.json, { user_id: '123', item_id: '456', item_type: 'post', liked: true, count: 1 }, 'ids answered as their decimal strings')
    const again = await call(node.base, 'POST', '/v1/like', { user_id: '123', item_id: '456', item_type: 'post' })
    t.equal(again.json.count, 1, '"123" liking "456" is the same like as 123 liking 456')
    t.equal((await call(node.base, 'GET', '/v1/has-liked?user_id=123&item_id=456&item_type=post')).json.liked, true)
    t.same((await call(node.base, 'GET', '/v1/count?item_id=456&item_type=post')).json, { item_id: '456', item_type: 'post', count: 1 })
    t.same((await call(node.base, 'POST', '/v1/counts', { items: [{ item_type: 'post', item_id: 456 }, { item_type: 'post', item_id: '456' }] })).json,
      { counts: { 'post:456': 1 } }, 'a batch query takes numeric ids; both spellings name one item')
    t.equal((await call(node.base, 'POST', '/v1/like', { user_id: 124, item_id: '456', item_type: 'post' })).json.count, 2, 'another user counts')
    const un = await call(node.base, 'POST', '/v1/unlike', '{"user_id": 123, "item_id": 456, "item_type": "post"}')
    t.same(un.json, { user_id: '123', item_id: '456', item_type: 'post', liked: false, count: 1 })
  })

  t.test('the like event\'s shape: numeric item_type, extra fields ignored', async (t) => {
    const event = '{"event_id": "uuid", "user_id": 123, "item_id": 456, "item_type": 1, "action": "like", "timestamp": "2024-01-15T10:30:00Z"}'
    const r = await call(node.base, 'POST', '/v1/like', event)
    t.equal(r.status, 200)
    t.same(r.json, { user_id: '123', item_id: '456', item_type: '1', liked: true, count: 1 }, 'item_type 1 is the type "1"')
    t.equal((await call(node.base, 'GET', '/v1/count?item_id=456&item_type=1')).json.count, 1)
  })

  t.test('456 and "456" name the same counter (actor too)', async (t) => {
    t.equal((await call(node.base, 'POST', '/v1/counter/video/456/increment', { by: 2, actor: 123 })).json.value, 2)
    t.equal((await call(node.base, 'POST', '/v1/counter/video/456/increment', { by: 3, actor: '123' })).json.value, 5)
    t.equal((await call(node.base, 'GET', '/v1/counter/video/456/unique')).json.unique, 1, 'actor 123 and "123" are one actor')
    const c = await StreamClient.connect(node.base)
    t.teardown(() => c.close())
    const frame = await c.sendRaw('{"seq":1,"ops":[["video",456,1],["video","456",1],["video",456,1,123],[7,8]]}', 1)
    t.same(frame, { seq: 1, ok: true, error: undefined }, 'JSON stream ops take numeric types, ids and actors')
    t.equal(await getValue(node.base, 'video', '456'), 8)
    t.equal(await getValue(node.base, '7', '8'), 1)
    t.equal((await call(node.base, 'GET', '/v1/counter/video/456/unique')).json.unique, 1)
  })

  t.test('negative, fractional, too large or non-numbers: 400 with a code, no state touched', async (t) => {
    const cases: Array<[string, string, string, string, string]> = [
      ['like: negative user', 'POST', '/v1/like', '{"user_id": -123, "item_id": 999, "item_type": "post"}', 'invalid_user_id'],
      ['like: fractional item', 'POST', '/v1/like', '{"user_id": 123, "item_id": 999.5, "item_type": "post"}', 'invalid_id'],
      ['like: item over 2^53-1', 'POST', '/v1/like', '{"user_id": 123, "item_id": 9007199254740992, "item_type": "post"}', 'invalid_id'],
      ['like: item 1e400 (Infinity)', 'POST', '/v1/like', '{"user_id": 123, "item_id": 1e400, "item_type": "post"}', 'invalid_id'],
      ['like: negative type', 'POST', '/v1/like', '{"user_id": 123, "item_id": 999, "item_type": -1}', 'invalid_type'],
      ['unlike: fractional user', 'POST', '/v1/unlike', '{"user_id": 0.5, "item_id": 456, "item_type": "post"}', 'invalid_user_id'],
      ['like: boolean item', 'POST', '/v1/like', '{"user_id": 123, "item_id": true, "item_type": "post"}', 'invalid_id'],
      ['counts: negative item', 'POST', '/v1/counts', '{"items":[{"item_type":"post","item_id":-456}]}', 'invalid_id'],
      ['counts: fractional type', 'POST', '/v1/counts', '{"items":[{"item_type":1.5,"item_id":456}]}', 'invalid_type'],
      ['increment: negative actor', 'POST', '/v1/counter/video/999/increment', '{"by": 1, "actor": -5}', 'invalid_actor']
    ]
    for (const [name, method, path, body, code] of cases) {
      const r = await call(node.base, method, path, body)
      t.equal(r.status, 400, `${name}: 400`)
      t.equal(r.json.error?.code, code, `${name}: ${code}`)
    }
    const c = await StreamClient.connect(node.base)
    t.teardown(() => c.close())
    const frames: Array<[string, string]> = [
      ['{"seq":2,"ops":[["video",999,1],["video",-999,1]]}', 'invalid_id'],
      ['{"seq":3,"ops":[["video",999,1],[1.5,"999",1]]}', 'invalid_type'],
      ['{"seq":4,"ops":[["video",999,1,-1]]}', 'invalid_actor']
    ]
    for (const [frame, code] of frames) {
      const seq = (JSON.parse(frame) as { seq: number }).seq
      const ack = await c.sendRaw(frame, seq)
      t.same([ack.ok, ack.error?.code], [false, code], `stream frame ${seq}: ${code}`)
    }
    t.equal(await getValue(node.base, 'video', '999'), 0, 'no refused request or frame changed a count (its good ops neither)')
    t.equal((await call(node.base, 'GET', '/v1/count?item_id=999&item_type=post')).json.count, 0, 'nor a like')
    t.equal((await call(node.base, 'GET', '/v1/has-liked?user_id=123&item_id=999&item_type=post')).json.liked, false)
  })
})
