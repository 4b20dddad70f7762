// Beyond plain counts, against a real node: likes (with rate limits), unique counts, samples,
// top-K, and that all of it survives kill -9 like the counts do.
import t from 'tap'
import { getValue, startNode } from './support/node-process'
import { StreamClient } from './support/stream-client'

async function call (base: string, method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number, json: any, headers: Headers }> {
  const r = await fetch(base + path, { method, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body), headers })
  return { status: r.status, json: await r.json(), headers: r.headers }
}

t.test('features', async (t) => {
  let node = await startNode(t, { env: { LIKES_PER_MINUTE: '10', SAMPLE_SIZE: '8' } })
  const like = async (user: string, item: string, headers?: Record<string, string>): Promise<any> =>
    await call(node.base, 'POST', '/v1/like', { user_id: user, item_type: 'post', item_id: item }, headers)

  t.test('likes count once per user; unlike undoes only a real like', async (t) => {
    t.same((await like('alice', 'p1')).json, { user_id: 'alice', item_id: 'p1', item_type: 'post', liked: true, count: 1 })
    t.equal((await like('alice', 'p1')).json.count, 1, 'a second like by the same user changes nothing')
    t.equal((await like('bob', 'p1')).json.count, 2)
    const un = await call(node.base, 'POST', '/v1/unlike', { user_id: 'carol', item_type: 'post', item_id: 'p1' })
    t.same(un.json, { user_id: 'carol', item_id: 'p1', item_type: 'post', liked: false, count: 2 }, 'unlike without a like changes nothing')
    t.equal((await call(node.base, 'POST', '/v1/unlike', { user_id: 'bob', item_type: 'post', item_id: 'p1' })).json.count, 1)
    t.same((await call(node.base, 'GET', '/v1/count?item_id=p1&item_type=post')).json, { item_id: 'p1', item_type: 'post', count: 1 })
    t.equal((await call(node.base, 'GET', '/v1/has-liked?user_id=alice&item_id=p1&item_type=post')).json.liked, true)
    t.equal((await call(node.base, 'GET', '/v1/has-liked?user_id=bob&item_id=p1&item_type=post')).json.liked, false)
    t.equal((await call(node.base, 'GET', '/v1/has-liked?user_id=nobody&item_id=none&item_type=post')).json.liked, false)
    const batch = await call(node.base, 'POST', '/v1/counts', { items: [{ item_type: 'post', item_id: 'p1' }, { item_type: 'post', item_id: 'never' }] })
    t.same(batch.json, { counts: { 'post:p1': 1, 'post:never': 0 } })
  })

  t.test('concurrent likes, repeats and unlikes from many users count exactly', async (t) => {
    const items = ['c0', 'c1', 'c2', 'c3']
    const users = Array.from({ length: 120 }, (_, i) => `cu${i}`)
    // Every user likes every item twice, concurrently; users with an even number then unlike c0.
    await Promise.all(users.map(async (u) => {
      for (const item of items) {
        const [a, b] = await Promise.all([like(u, item), like(u, item)])
        t.equal(a.status + b.status, 400, `${u} ${item}: both accepted`)
      }
    }))
    await Promise.all(users.filter((_, i) => i % 2 === 0).map(async (u) =>
      await call(node.base, 'POST', '/v1/unlike', { user_id: u, item_type: 'post', item_id: 'c0' })))
    const counts = (await call(node.base, 'POST', '/v1/counts', { items: items.map((id) => ({ item_type: 'post', item_id: id })) })).json.counts
    t.same(counts, { 'post:c0': 60, 'post:c1': 120, 'post:c2': 120, 'post:c3': 120 })
  })

  t.test('rate limit per user: 429 with Retry-After; an idempotent retry costs nothing', async (t) => {
    const h = { 'Idempotency-Key': 'dave-like-1' }
    const first = await like('dave', 'r1', h)
    t.equal(first.status, 200)
    for (let i = 2; i <= 10; i++) t.equal((await like('dave', `r${i}`)).status, 200, `like ${i} of 10 is within the limit`)
    const over = await like('dave', 'r11')
    t.equal(over.status, 429)
    t.equal(over.json.error.code, 'rate_limited')
    t.ok(Number(over.headers.get('retry-after')) >= 1, 'Retry-After is given')
    const retry = await like('dave', 'r1', h)
    t.same([retry.status, retry.json.count], [200, 1], 'the retry is answered, not limited, and counted once')
    t.equal((await call(node.base, 'GET', '/v1/count?item_id=r11&item_type=post')).json.count, 0, 'the limited like was not applied')
    t.same((await call(node.base, 'GET', '/v1/quota?user_id=dave')).json, { user_id: 'dave', limit_per_minute: 10, remaining: 0, retry_after_ms: 6000 })
    t.equal((await call(node.base, 'GET', '/v1/quota?user_id=erin')).json.remaining, 10, 'the quota check takes nothing')
  })

  t.test('unique counts: exact while small, ~0.81% error beyond', async (t) => {
    const c = await StreamClient.connect(node.base)
    t.teardown(() => c.close())
    const actors = (n: number, prefix: string): Array<{ type: string, id: string, by: number, actor: string }> =>
      Array.from({ length: n }, (_, i) => ({ type: 'video', id: prefix, by: 1, actor: `user-${i % (n / 2)}` }))
    t.ok((await c.sendBinary(1, actors(200, 'small'))).ok)
    t.same((await call(node.base, 'GET', '/v1/counter/video/small/unique')).json, { type: 'video', id: 'small', unique: 100 })
    t.equal(await getValue(node.base, 'video', 'small'), 200, 'the actor ops count too')
    for (let f = 0; f < 8; f++) {
      const ops = Array.from({ length: 5000 }, (_, i) => ({ type: 'video', id: 'big', by: 1, actor: `u${f * 5000 + i}` }))
      t.ok((await c.sendBinary(10 + f, ops)).ok)
    }
    t.ok((await c.sendJson(30, [['video', 'big', 1, 'u0'], ['video', 'big', 1, 'someone-new']])).ok, 'JSON ops name actors too')
    const est = (await call(node.base, 'GET', '/v1/counter/video/big/unique')).json.unique
    t.ok(Math.abs(est - 40001) / 40001 < 0.03, `estimate ${est} of 40001 distinct actors is within 3%`)
    const inc = await call(node.base, 'POST', '/v1/counter/video/small/increment', { by: 1, actor: 'brand-new' })
    t.equal(inc.status, 200)
    t.equal((await call(node.base, 'GET', '/v1/counter/video/small/unique')).json.unique, 101, 'HTTP increments name actors too')
  })

  t.test('samples are drawn from the actors, at most SAMPLE_SIZE', async (t) => {
    const s = await call(node.base, 'GET', '/v1/counter/video/big/sample?n=5')
    t.equal(s.json.sample.length, 5)
    t.ok(s.json.sample.every((a: string) => /^u\d+$|^someone-new$/.test(a)), 'every sampled actor is one that was seen')
    t.equal((await call(node.base, 'GET', '/v1/counter/video/big/sample')).json.sample.length, 8)
    t.same((await call(node.base, 'GET', '/v1/counter/video/untouched/sample')).json.sample, [])
  })

  t.test('top-K: the fastest-rising counters, by type', async (t) => {
    const c = await StreamClient.connect(node.base)
    t.teardown(() => c.close())
    const ops = [...Array.from({ length: 300 }, () => ({ type: 'clip', id: 'hot', by: 1 })), ...Array.from({ length: 30 }, () => ({ type: 'clip', id: 'warm', by: 1 })), { type: 'clip', id: 'cold', by: 1 }]
    t.ok((await c.sendBinary(1, ops)).ok)
    await new Promise((resolve) => setTimeout(resolve, 50)) // rates are updated at the next group commit
    const top = (await call(node.base, 'GET', '/v1/top?type=clip&k=2')).json
    t.same(top.top.map((e: any) => e.key), ['clip:hot', 'clip:warm'])
    t.ok(top.top[0].rate_per_sec > top.top[1].rate_per_sec)
    const rate = (await call(node.base, 'GET', '/v1/counter/clip/hot/rate')).json
    t.ok(rate.rate_per_sec > 0, 'a key exposes its recent rate')
  })

  t.test('errors', async (t) => {
    const cases: Array<[string, string, string, unknown, number, string]> = [
      ['like: bad user', 'POST', '/v1/like', { user_id: 'a b', item_type: 'post', item_id: '1' }, 400, 'invalid_user_id'],
      ['like: no user', 'POST', '/v1/like', { item_type: 'post', item_id: '1' }, 400, 'invalid_user_id'],
      ['like: bad item type', 'POST', '/v1/like', { user_id: 'u', item_type: 'Post', item_id: '1' }, 400, 'invalid_type'],
      ['like: bad item id', 'POST', '/v1/like', { user_id: 'u', item_type: 'post', item_id: '' }, 400, 'invalid_id'],
      ['like: not JSON', 'POST', '/v1/like', '{', 400, 'malformed_json'],
      ['like: not an object', 'POST', '/v1/like', '[]', 400, 'invalid_body'],
      ['count: missing item', 'GET', '/v1/count?item_type=post', undefined, 400, 'invalid_id'],
      ['has-liked: bad user', 'GET', '/v1/has-liked?user_id=%20&item_id=1&item_type=post', undefined, 400, 'invalid_user_id'],
      ['counts: bad item', 'POST', '/v1/counts', { items: [{ item_type: 'x', item_id: 'a/b' }] }, 400, 'invalid_id'],
      ['counts: no items', 'POST', '/v1/counts', {}, 400, 'invalid_body'],
      ['increment: bad actor', 'POST', '/v1/counter/post/1/increment', { actor: 'a b' }, 400, 'invalid_actor'],
      ['increment: actor not a string or integer', 'POST', '/v1/counter/post/1/increment', { actor: true }, 400, 'invalid_actor'],
      ['increment: actor a fractional number', 'POST', '/v1/counter/post/1/increment', { actor: 7.5 }, 400, 'invalid_actor'],
      ['sample: n = 0', 'GET', '/v1/counter/post/1/sample?n=0', undefined, 400, 'invalid_argument'],
      ['sample: n over SAMPLE_SIZE', 'GET', '/v1/counter/post/1/sample?n=9', undefined, 400, 'invalid_argument'],
      ['sample: n not a number', 'GET', '/v1/counter/post/1/sample?n=x', undefined, 400, 'invalid_argument'],
      ['top: bad type', 'GET', '/v1/top?type=A', undefined, 400, 'invalid_type'],
      ['top: k too big', 'GET', '/v1/top?k=1001', undefined, 400, 'invalid_argument'],
      ['quota: bad user', 'GET', '/v1/quota?user_id=', undefined, 400, 'invalid_user_id'],
      ['unique: bad id', 'GET', '/v1/counter/post/a*b/unique', undefined, 400, 'invalid_id'],
      ['like: GET', 'GET', '/v1/like', undefined, 405, 'method_not_allowed']
    ]
    for (const [name, method, path, body, status, code] of cases) {
      const r = await call(node.base, method, path, body)
      t.equal(r.status, status, `${name}: status`)
      t.equal(r.json.error?.code, code, `${name}: code`)
    }
    t.equal(await getValue(node.base, 'post', '1'), 0, 'no bad request changed a count')
  })

  t.test('all of it survives kill -9', async (t) => {
    const before = {
      count: (await call(node.base, 'GET', '/v1/count?item_id=p1&item_type=post')).json,
      liked: (await call(node.base, 'GET', '/v1/has-liked?user_id=alice&item_id=p1&item_type=post')).json,
      unique: (await call(node.base, 'GET', '/v1/counter/video/big/unique')).json,
      sample: (await call(node.base, 'GET', '/v1/counter/video/big/sample')).json,
      small: (await call(node.base, 'GET', '/v1/counter/video/small/unique')).json
    }
    node = await node.restart()
    t.same((await call(node.base, 'GET', '/v1/count?item_id=p1&item_type=post')).json, before.count)
    t.same((await call(node.base, 'GET', '/v1/has-liked?user_id=alice&item_id=p1&item_type=post')).json, before.liked)
    t.same((await call(node.base, 'GET', '/v1/counter/video/big/unique')).json, before.unique)
    t.same((await call(node.base, 'GET', '/v1/counter/video/big/sample')).json, before.sample, 'the sample is the same sample')
    t.same((await call(node.base, 'GET', '/v1/counter/video/small/unique')).json, before.small)
    t.equal((await like('alice', 'p1')).json.count, 1, 'a recovered like still counts once')
  })
})
