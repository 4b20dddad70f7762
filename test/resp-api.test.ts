// The Redis-protocol front of a real node (two shards, ack=durable, RESP_PORT=0) through raw
// sockets: command replies, the error table (nothing changes on an error), malformed streams,
// pipelines of any depth answered in order with exact values, RESP3, and agreement with HTTP.
import t, { type Test } from 'tap'
import { getValue, startNode, type NodeProcess } from './support/node-process'
import { connectResp, encodeCommand, type Reply, type RespClient } from './support/resp-client'

const MAX = 9007199254740991

let node: NodeProcess

t.before(async () => {
  node = await startNode(t, { env: { RESP_PORT: '0', WORKERS: '2', ACK_MODE: 'durable' } })
})

async function client (t: Test): Promise<RespClient> {
  return await connectResp(t, node.respPort)
}

async function httpIncrement (type: string, id: string, by: number): Promise<number> {
  const r = await fetch(`${node.base}/v1/counter/${type}/${id}/increment`, { method: 'POST', body: JSON.stringify({ by }) })
  return ((await r.json()) as { value: number }).value
}

t.test('the node says where it listens for the Redis protocol', async (t) => {
  t.ok(node.respPort > 0 && node.respPort !== node.port, `RESP on ${node.respPort}, HTTP on ${node.port}`)
})

t.test('counter commands answer as Redis does', async (t) => {
  const c = await client(t)
  t.same(await c.call('PING'), { ok: 'PONG' })
  t.same(await c.call('PING', 'hi'), 'hi')
  t.same(await c.call('ECHO', 'a b\r\nc'), 'a b\r\nc')
  t.equal(await c.call('GET', 'cmd:a'), null, 'a counter at 0 does not exist: nil')
  t.equal(await c.call('INCR', 'cmd:a'), 1)
  t.equal(await c.call('INCRBY', 'cmd:a', 41), 42)
  t.equal(await c.call('DECR', 'cmd:a'), 41)
  t.equal(await c.call('DECRBY', 'cmd:a', -9), 50)
  t.equal(await c.call('incrby', 'cmd:b', -3), -3, 'command names in any case; negative values')
  t.equal(await c.call('GET', 'cmd:a'), '50', 'GET answers a bulk string, as Redis does for integers')
  t.same(await c.call('MGET', 'cmd:a', 'cmd:none', 'cmd:b'), ['50', null, '-3'])
  t.equal(await c.call('EXISTS', 'cmd:a', 'cmd:none', 'cmd:b', 'cmd:a'), 3, 'EXISTS counts non-zero counters, repeats included')
  t.equal(await c.call('DEL', 'cmd:a', 'cmd:none'), 1, 'DEL answers how many were not 0')
  t.equal(await c.call('GET', 'cmd:a'), null)
  t.equal(await c.call('DEL', 'cmd:a'), 0, 'a second DEL finds nothing')
  t.equal(await getValue(node.base, 'cmd', 'a'), 0, 'HTTP sees the reset')
  t.equal(await c.call('INCRBY', 'cmd:c:with:colons', 5), 5, 'an id may hold colons')
  t.same(await c.call('SELECT', '0'), { ok: 'OK' })
  t.same(await c.call('AUTH', 'default', 'anything'), { ok: 'OK' }, 'no password configured: the default user takes any')
  t.match(await c.call('DBSIZE'), Number)
})

t.test('PFADD / PFCOUNT are the unique actors of the HTTP API', async (t) => {
  const c = await client(t)
  t.equal(await c.call('PFADD', 'uniq:1', 'u1', 'u2', 'u3'), 1)
  t.equal(await c.call('PFADD', 'uniq:1', 'u2'), 0, 'nothing new: 0')
  t.equal(await c.call('PFCOUNT', 'uniq:1'), 3)
  t.equal(await c.call('GET', 'uniq:1'), null, 'PFADD does not change the count')
  await fetch(`${node.base}/v1/counter/uniq/1/increment`, { method: 'POST', body: JSON.stringify({ by: 1, actor: 'u9' }) })
  t.equal(await c.call('PFCOUNT', 'uniq:1'), 4, 'an HTTP increment with an actor is seen by PFCOUNT')
  const http = (await (await fetch(`${node.base}/v1/counter/uniq/1/unique`)).json()) as { unique: number }
  t.equal(http.unique, 4, 'and PFADD by the HTTP unique count')
  t.equal(await c.call('PFCOUNT', 'uniq:never'), 0)
})

t.test('RESP and HTTP agree on values', async (t) => {
  const c = await client(t)
  for (let i = 0; i < 20; i++) {
    t.equal(await c.call('INCRBY', `agree:${i}`, i + 1), i + 1)
    t.equal(await getValue(node.base, 'agree', String(i)), i + 1, `agree:${i} via HTTP after RESP`)
    t.equal(await httpIncrement('agree', String(i), 100), i + 101)
    t.equal(await c.call('GET', `agree:${i}`), String(i + 101), `agree:${i} via RESP after HTTP`)
  }
})

t.test('errors: the usual Redis replies, and nothing changes', async (t) => {
  const c = await client(t)
  t.equal(await c.call('INCRBY', 'err:v', 10), 10)
  t.equal(await c.call('INCRBY', 'err:max', MAX), MAX)
  const cases: Array<[string, Array<string | number>, RegExp]> = [
    ['key without a colon', ['INCR', 'errv'], /^ERR invalid key 'errv': a key must be "type:id"/],
    ['upper-case type', ['INCR', 'Err:v'], /^ERR invalid key 'Err:v'/],
    ['empty id', ['INCRBY', 'err:', 1], /^ERR invalid key 'err:'/],
    ['id with a space', ['GET', 'err:a b'], /^ERR invalid key/],
    ['id too long', ['INCR', 'err:' + 'x'.repeat(129)], /^ERR invalid key/],
    ['one bad key of several', ['DEL', 'err:v', 'bad'], /^ERR invalid key 'bad'/],
    ['one bad key in MGET', ['MGET', 'err:v', 'bad key'], /^ERR invalid key/],
    ['unknown command', ['FLUSHALL', 'x', 'y'], /^ERR unknown command 'FLUSHALL', with args beginning with: 'x' 'y' $/],
    ['unknown command, no args', ['SET'], /^ERR unknown command 'SET', with args beginning with: $/],
    ['non-integer increment', ['INCRBY', 'err:v', 'abc'], /^ERR value is not an integer or out of range$/],
    ['fractional increment', ['INCRBY', 'err:v', '1.5'], /^ERR value is not an integer or out of range$/],
    ['increment with a plus sign', ['INCRBY', 'err:v', '+1'], /^ERR value is not an integer or out of range$/],
    ['increment past 2^53', ['DECRBY', 'err:v', '9007199254740992'], /^ERR value is not an integer or out of range$/],
    ['overflow', ['INCR', 'err:max'], /^ERR increment or decrement would overflow$/],
    ['overflow by DECRBY', ['DECRBY', 'err:max', -1], /^ERR increment or decrement would overflow$/],
    ['wrong arity: INCR', ['INCR'], /^ERR wrong number of arguments for 'incr' command$/],
    ['wrong arity: INCR two keys', ['INCR', 'err:v', 'err:w'], /^ERR wrong number of arguments for 'incr' command$/],
    ['wrong arity: INCRBY', ['INCRBY', 'err:v'], /^ERR wrong number of arguments for 'incrby' command$/],
    ['wrong arity: GET', ['GET'], /^ERR wrong number of arguments for 'get' command$/],
    ['wrong arity: PING', ['PING', 'a', 'b'], /^ERR wrong number of arguments for 'ping' command$/],
    ['wrong arity: ECHO', ['ECHO'], /^ERR wrong number of arguments for 'echo' command$/],
    ['another type\'s command', ['HSET', 'err:v', 'f', '1'], /^WRONGTYPE Operation against a key holding the wrong kind of value$/],
    ['another type\'s command, bad key', ['LPUSH', 'nokey', '1'], /^ERR invalid key 'nokey'/],
    ['SELECT another db', ['SELECT', 1], /^ERR DB index is out of range$/],
    ['AUTH with a password', ['AUTH', 'secret'], /^ERR AUTH <password> called without any password configured/],
    ['AUTH as another user', ['AUTH', 'bob', 'secret'], /^WRONGPASS/],
    ['HELLO 4', ['HELLO', 4], /^NOPROTO/],
    ['PFCOUNT of two keys', ['PFCOUNT', 'err:v', 'err:w'], /^ERR PFCOUNT of several keys/],
    ['PFADD a bad actor', ['PFADD', 'err:v', 'ok', 'not ok'], /^ERR invalid element 'not ok'/],
    ['CLIENT unknown subcommand', ['CLIENT', 'KILL', 'x'], /^ERR unknown subcommand 'KILL'/]
  ]
  for (const [what, args, re] of cases) {
    const r = await c.call(...args) as { err?: string }
    t.ok(typeof r === 'object' && r !== null && typeof r.err === 'string', `${what}: an error reply`)
    t.match(r.err, re, what)
  }
  t.same(await c.call('MGET', 'err:v', 'err:max', 'err:w'), ['10', String(MAX), null], 'no error changed a counter')
  t.equal(await c.call('PFCOUNT', 'err:v'), 0, 'a refused PFADD added no actor')
  t.equal(await getValue(node.base, 'err', 'v'), 10)
  t.equal(await c.call('INCR', 'err:v'), 11, 'the connection goes on after errors')
})

t.test('a malformed stream: earlier commands answered, then one error reply, then the close', async (t) => {
  const c = await client(t)
  c.sendRaw('*2\r\n$4\r\nINCR\r\n$9\r\nmalform:1\r\n' + '*2\r\n$4\r\nINCR\r\n+malform:1\r\n' + '*2\r\n$4\r\nINCR\r\n$9\r\nmalform:1\r\n')
  await c.closed
  t.equal(c.received().toString('latin1'), ":1\r\n-ERR Protocol error: expected '$', got '+'\r\n", 'the reply before, the error, nothing after')
  const d = await client(t)
  t.equal(await d.call('GET', 'malform:1'), '1', 'nothing after the malformed part was applied')

  const e = await client(t)
  e.sendRaw('*-x\r\n')
  await e.closed
  t.equal(e.received().toString('latin1'), '-ERR Protocol error: invalid multibulk length\r\n')
})

t.test('pipelines of any depth are answered in order with exact values', async (t) => {
  for (const depth of [1, 2, 16, 1000, 20000]) {
    const c = await client(t)
    const keys = Array.from({ length: 7 }, (_, i) => `pipe${depth}:k${i}`) // spread over both shards
    const cmds = Array.from({ length: depth }, (_, i) => ['INCR', keys[i % keys.length]])
    const replies = await c.pipeline(cmds)
    const want = Array.from({ length: depth }, (_, i) => Math.floor(i / keys.length) + 1)
    t.same(replies, want, `depth ${depth}: every INCR answered with its own value, in order`)
    const total = await c.call('MGET', ...keys) as string[]
    t.equal(total.reduce((s, v) => s + Number(v ?? 0), 0), depth, `depth ${depth}: the counts add up`)
  }
})

t.test('a client that stops reading: the deep pipeline waits (backpressure), then every reply arrives in order', async (t) => {
  const c = await client(t)
  const depth = 200_000 // about 7 MB of commands, 1 MB of replies
  c.socket.pause() // read nothing for a while
  c.sendRaw(Buffer.concat(Array.from({ length: depth }, (_, i) => encodeCommand(['INCR', `deep:${i % 3}`]))))
  await new Promise((resolve) => setTimeout(resolve, 300))
  c.socket.resume()
  const replies = await c.read(depth)
  let inOrder = 0
  let firstWrong = -1
  for (let i = 0; i < depth; i++) {
    if (replies[i] === Math.floor(i / 3) + 1) inOrder++
    else if (firstWrong < 0) firstWrong = i
  }
  t.equal(inOrder, depth, `every reply is its INCR's value, in order${firstWrong < 0 ? '' : `; the first that is not: #${firstWrong} ${JSON.stringify(replies[firstWrong])}`}`)
  t.same(await c.call('MGET', 'deep:0', 'deep:1', 'deep:2'), ['66667', '66667', '66666'])
})

t.test('with small rings and a small in-flight bound, deep pipelines wait instead of being refused', async (t) => {
  const small = await startNode(t, { env: { RESP_PORT: '0', WORKERS: '2', SHARD_RING_BYTES: '65536', MAX_INFLIGHT_OPS: '4000' } })
  const clients = await Promise.all(Array.from({ length: 4 }, async () => await connectResp(t, small.respPort)))
  const depth = 30_000
  const results = await Promise.all(clients.map(async (c, n) => {
    c.sendRaw(Buffer.concat(Array.from({ length: depth }, (_, i) => encodeCommand(['INCR', `small${n}:${i % 5}`]))))
    const replies = await c.read(depth)
    return replies.filter((r, i) => r === Math.floor(i / 5) + 1).length
  }))
  t.same(results, [depth, depth, depth, depth], 'every INCR answered with its value, none refused')
})

t.test('reads and writes mixed in one pipeline see exactly the writes before them', async (t) => {
  const c = await client(t)
  const k = Array.from({ length: 6 }, (_, i) => `mix:${i}`)
  const cmds: Array<Array<string | number>> = []
  const want: Reply[] = []
  const v = [0, 0, 0, 0, 0, 0]
  for (let round = 0; round < 50; round++) {
    const i = round % 6
    const j = (round * 5 + 1) % 6
    cmds.push(['INCRBY', k[i], round + 1]); v[i] += round + 1; want.push(v[i])
    cmds.push(['GET', k[i]]); want.push(String(v[i]))
    cmds.push(['PING']); want.push({ ok: 'PONG' })
    cmds.push(['MGET', k[i], k[j]]); want.push([String(v[i]), v[j] === 0 ? null : String(v[j])])
    cmds.push(['INCRBY', k[j], 'x']); want.push({ err: 'ERR value is not an integer or out of range' })
    if (round % 10 === 9) {
      cmds.push(['DEL', k[j]]); want.push(v[j] !== 0 ? 1 : 0); v[j] = 0
      cmds.push(['EXISTS', ...k]); want.push(v.filter((x) => x !== 0).length)
    }
  }
  t.same(await c.pipeline(cmds), want)
})

t.test('pipelines split at every byte boundary still answer exactly', async (t) => {
  const c = await client(t)
  const bytes = Buffer.from(Array.from({ length: 30 }, () => '*3\r\n$6\r\nINCRBY\r\n$7\r\nsplit:1\r\n$1\r\n2\r\n').join(''))
  for (let i = 0; i < bytes.length; i += 7) {
    c.sendRaw(bytes.subarray(i, i + 7))
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.same(await c.read(30), Array.from({ length: 30 }, (_, i) => 2 * (i + 1)))
})

t.test('HELLO 3 switches to RESP3; RESET goes back to RESP2', async (t) => {
  const c = await client(t)
  const hello = await c.call('HELLO', 3) as Map<string, Reply>
  t.ok(hello instanceof Map, 'a RESP3 map')
  t.equal(hello.get('proto'), 3)
  t.equal(hello.get('server'), 'redis')
  t.equal(hello.get('version'), '7.0.0')
  c.sendRaw('*2\r\n$3\r\nGET\r\n$8\r\nresp3:no\r\n')
  await c.read(1)
  t.match(c.received().toString('latin1'), /_\r\n$/, 'nil is `_` in RESP3')
  t.equal(await c.call('INCR', 'resp3:a'), 1)
  t.same(await c.call('RESET'), { ok: 'RESET' })
  c.sendRaw('*2\r\n$3\r\nGET\r\n$8\r\nresp3:no\r\n')
  await c.read(1)
  t.match(c.received().toString('latin1'), /\$-1\r\n$/, 'nil is `$-1` again')
  const h2 = await c.call('HELLO', 2, 'AUTH', 'default', 'pw', 'SETNAME', 'me') as Reply[]
  t.ok(Array.isArray(h2) && h2.includes('proto'), 'HELLO 2 answers a flat array')
  t.equal(await c.call('CLIENT', 'GETNAME'), 'me')
})

t.test('connection and server commands', async (t) => {
  const c = await client(t)
  t.same(await c.call('CLIENT', 'SETNAME', 'counter-app'), { ok: 'OK' })
  t.equal(await c.call('CLIENT', 'GETNAME'), 'counter-app')
  t.same(await c.call('CLIENT', 'SETINFO', 'LIB-NAME', 'tests'), { ok: 'OK' })
  t.match(await c.call('CLIENT', 'ID'), Number)
  t.match(await c.call('CLIENT', 'INFO'), /name=counter-app .*lib-name=tests/)
  t.equal(await c.call('COMMAND', 'COUNT'), 22)
  const info = await c.call('COMMAND', 'INFO', 'incrby', 'nosuch') as Reply[]
  t.same((info[0] as Reply[]).slice(0, 6), ['incrby', 3, [{ ok: 'write' }, { ok: 'denyoom' }, { ok: 'fast' }], 1, 1, 1])
  t.equal(info[1], null)
  const docs = await c.call('COMMAND', 'DOCS', 'get') as Reply[]
  t.equal(docs[0], 'get')
  t.ok((docs[1] as Reply[]).includes('summary'))
  t.ok(Array.isArray(await c.call('COMMAND')))
  await c.call('INCR', 'info:1')
  const text = await c.call('INFO') as string
  for (const section of ['# Server', '# Clients', '# Stats', '# Keyspace']) t.match(text, section)
  t.match(text, /connected_clients:\d+/)
  t.match(text, /total_commands_processed:\d+/)
  t.match(text, /db0:keys=\d+/)
  const only = await c.call('INFO', 'clients') as string
  t.notMatch(only, '# Server')
  t.same(await c.call('CONFIG', 'GET', 'appendonly'), ['appendonly', 'yes'], 'ack=durable reads as appendonly yes')
  t.same(await c.call('QUIT'), { ok: 'OK' })
  await c.closed
  t.pass('QUIT closes the connection')
})

t.test('/metrics counts RESP connections and commands', async (t) => {
  const text = await (await fetch(`${node.base}/metrics`)).text()
  t.match(text, /counterd_resp_commands_total [1-9]\d*/)
  t.match(text, /counterd_resp_connections \d+/)
})
