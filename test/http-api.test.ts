// HTTP API v1 against a real node process: happy paths, then every error path, table-driven.
import t from 'tap'
import { startNode, getValue } from './support/node-process'

t.test('HTTP API', async (t) => {
  const node = await startNode(t, { env: { MAX_BODY_BYTES: '1024', MAX_QUERY_KEYS: '5' } })
  const url = (p: string): string => node.base + p
  const post = async (p: string, body?: string, headers?: Record<string, string>): Promise<{ status: number, json: any }> => {
    const r = await fetch(url(p), { method: 'POST', body, headers })
    return { status: r.status, json: await r.json() }
  }

  t.test('increment, get, query, reset', async (t) => {
    t.same((await post('/v1/counter/post/a1/increment')).json, { type: 'post', id: 'a1', value: 1 })
    t.same((await post('/v1/counter/post/a1/increment', '{"by":41}')).json, { type: 'post', id: 'a1', value: 42 })
    t.same((await post('/v1/counter/post/a1/increment', '{"by":-2}')).json, { type: 'post', id: 'a1', value: 40 })
    t.equal(await getValue(node.base, 'post', 'a1'), 40)
    t.equal(await getValue(node.base, 'video', 'never-touched'), 0, 'an unknown counter is 0')
    const q = await post('/v1/counters/query', JSON.stringify({ keys: ['post:a1', 'video:none', 'post:a1'] }))
    t.same(q, { status: 200, json: { values: { 'post:a1': 40, 'video:none': 0 } } })
    const del = await fetch(url('/v1/counter/post/a1'), { method: 'DELETE' })
    t.same(await del.json(), { type: 'post', id: 'a1', value: 0 })
    t.equal(await getValue(node.base, 'post', 'a1'), 0)
    t.same((await post('/v1/counter/post/a1/increment')).json.value, 1, 'counting resumes from 0 after a reset')
  })

  t.test('ids may use every allowed character', async (t) => {
    const id = 'Az09_.:-x'
    t.same((await post(`/v1/counter/a-b_9/${id}/increment`, '{"by":3}')).json, { type: 'a-b_9', id, value: 3 })
    t.equal(await getValue(node.base, 'a-b_9', id), 3)
  })

  t.test('values stay exact up to ±(2^53−1)', async (t) => {
    const max = Number.MAX_SAFE_INTEGER
    t.equal((await post('/v1/counter/big/1/increment', JSON.stringify({ by: max }))).json.value, max)
    const over = await post('/v1/counter/big/1/increment', '{"by":1}')
    t.equal(over.status, 400)
    t.equal(over.json.error.code, 'value_out_of_range')
    t.equal(await getValue(node.base, 'big', '1'), max, 'a refused op changes nothing')
    t.equal((await post('/v1/counter/big/2/increment', JSON.stringify({ by: -max }))).json.value, -max)
    t.equal((await post('/v1/counter/big/2/increment', '{"by":-1}')).json.error.code, 'value_out_of_range')
  })

  t.test('Idempotency-Key: a retried request is counted once', async (t) => {
    const h = { 'Idempotency-Key': 'req-7f3a' }
    const first = await post('/v1/counter/like/idem1/increment', '{"by":5}', h)
    const retry = await post('/v1/counter/like/idem1/increment', '{"by":5}', h)
    t.same(first.json, { type: 'like', id: 'idem1', value: 5 })
    t.same(retry.json, first.json, 'the retry gets the first answer')
    t.equal(await getValue(node.base, 'like', 'idem1'), 5)
    await post('/v1/counter/like/idem1/increment', '{"by":5}', { 'Idempotency-Key': 'req-other' })
    t.equal(await getValue(node.base, 'like', 'idem1'), 10, 'another key is another request')
    const same = await Promise.all(Array.from({ length: 20 }, async () => await post('/v1/counter/like/idem2/increment', '{"by":2}', { 'Idempotency-Key': 'burst' })))
    t.ok(same.every((r) => r.json.value === 2), 'concurrent duplicates all see the one application')
    t.equal(await getValue(node.base, 'like', 'idem2'), 2)
  })

  t.test('health, ready, metrics', async (t) => {
    t.same(await (await fetch(url('/health'))).json(), { status: 'ok' })
    const ready = await fetch(url('/ready'))
    t.equal(ready.status, 200)
    t.equal((await ready.json() as any).status, 'ready')
    const metrics = await (await fetch(url('/metrics'))).text()
    t.match(metrics, /counterd_http_requests_total \d+/)
    t.match(metrics, /counterd_http_errors_total\{code="value_out_of_range"\} 2/)
  })

  t.test('errors', async (t) => {
    const big = JSON.stringify({ by: 1, pad: 'x'.repeat(2000) })
    const cases: Array<{ name: string, method: string, path: string, body?: string, headers?: Record<string, string>, status: number, code: string }> = [
      { name: 'type with upper case', method: 'POST', path: '/v1/counter/Post/1/increment', status: 400, code: 'invalid_type' },
      { name: 'type too long', method: 'POST', path: `/v1/counter/${'a'.repeat(33)}/1/increment`, status: 400, code: 'invalid_type' },
      { name: 'id with a space', method: 'POST', path: '/v1/counter/post/a%20b/increment', status: 400, code: 'invalid_id' },
      { name: 'id too long', method: 'GET', path: `/v1/counter/post/${'i'.repeat(129)}`, status: 400, code: 'invalid_id' },
      { name: 'id with a slash-free bad char', method: 'DELETE', path: '/v1/counter/post/a*b', status: 400, code: 'invalid_id' },
      { name: 'fractional by', method: 'POST', path: '/v1/counter/post/e1/increment', body: '{"by":1.5}', status: 400, code: 'invalid_delta' },
      { name: 'string by', method: 'POST', path: '/v1/counter/post/e1/increment', body: '{"by":"5"}', status: 400, code: 'invalid_delta' },
      { name: 'by beyond 2^53', method: 'POST', path: '/v1/counter/post/e1/increment', body: '{"by":9007199254740992}', status: 400, code: 'invalid_delta' },
      { name: 'malformed JSON', method: 'POST', path: '/v1/counter/post/e1/increment', body: '{"by":', status: 400, code: 'malformed_json' },
      { name: 'body not an object', method: 'POST', path: '/v1/counter/post/e1/increment', body: '[1]', status: 400, code: 'invalid_body' },
      { name: 'body over the limit', method: 'POST', path: '/v1/counter/post/e1/increment', body: big, status: 413, code: 'payload_too_large' },
      { name: 'bad Idempotency-Key', method: 'POST', path: '/v1/counter/post/e1/increment', headers: { 'Idempotency-Key': 'x'.repeat(129) }, status: 400, code: 'invalid_idempotency_key' },
      { name: 'query without keys', method: 'POST', path: '/v1/counters/query', body: '{}', status: 400, code: 'invalid_body' },
      { name: 'query with a bad key', method: 'POST', path: '/v1/counters/query', body: '{"keys":["post:1","nocolon"]}', status: 400, code: 'invalid_key' },
      { name: 'query over the key limit', method: 'POST', path: '/v1/counters/query', body: JSON.stringify({ keys: ['a:1', 'a:2', 'a:3', 'a:4', 'a:5', 'a:6'] }), status: 400, code: 'too_many_keys' },
      { name: 'query body over the limit', method: 'POST', path: '/v1/counters/query', body: big, status: 413, code: 'payload_too_large' },
      { name: 'unknown path', method: 'GET', path: '/v2/counter/post/1', status: 404, code: 'not_found' },
      { name: 'GET on increment', method: 'GET', path: '/v1/counter/post/1/increment', status: 405, code: 'method_not_allowed' },
      { name: 'PUT on a counter', method: 'PUT', path: '/v1/counter/post/1', status: 405, code: 'method_not_allowed' },
      { name: 'GET on query', method: 'GET', path: '/v1/counters/query', status: 405, code: 'method_not_allowed' }
    ]
    for (const c of cases) {
      const r = await fetch(url(c.path), { method: c.method, body: c.body, headers: c.headers })
      const json = await r.json() as any
      t.equal(r.status, c.status, `${c.name}: status`)
      t.equal(json.error?.code, c.code, `${c.name}: code`)
      t.type(json.error?.message, 'string', `${c.name}: message`)
    }
    const r405 = await fetch(url('/v1/counter/post/1'), { method: 'PUT' })
    t.equal(r405.headers.get('allow'), 'GET, DELETE', '405 says what is allowed')
    t.equal(await getValue(node.base, 'post', 'e1'), 0, 'no bad request changed a count')
  })
})
