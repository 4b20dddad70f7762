// Unchanged Redis tools and client libraries against a real node's RESP port: the redis-cli
// binary (commands, RESP3, --pipe, interactive help from COMMAND DOCS), redis-benchmark
// (pipelined, then every count read back exactly), ioredis and node-redis.
import { spawn, spawnSync } from 'node:child_process'
import t from 'tap'
import Redis from 'ioredis'
import { createClient } from 'redis'
import { getValue, queryValues, startNode, type NodeProcess } from './support/node-process'

let node: NodeProcess

t.before(async () => {
  node = await startNode(t, { env: { RESP_PORT: '0', WORKERS: '2', ACK_MODE: 'durable' } })
})

function cli (...args: string[]): string {
  const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(node.respPort), ...args], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')} exited ${String(r.status)}: ${r.stderr}`)
  return r.stdout
}

async function cliWithInput (args: string[], input: string): Promise<string> {
  const p = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(node.respPort), ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  p.stdout.on('data', (c: Buffer) => { out += c.toString() })
  p.stderr.on('data', (c: Buffer) => { out += c.toString() })
  p.stdin.end(input)
  const code = await new Promise<number | null>((resolve) => p.on('close', resolve))
  if (code !== 0) throw new Error(`redis-cli ${args.join(' ')} exited ${String(code)}: ${out}`)
  return out
}

t.test('redis-cli', async (t) => {
  t.equal(cli('PING'), 'PONG\n')
  t.equal(cli('INCR', 'cli:1'), '1\n')
  t.equal(cli('INCRBY', 'cli:1', '9'), '10\n')
  t.equal(cli('GET', 'cli:1'), '10\n')
  t.equal(cli('--no-raw', 'GET', 'cli:none'), '(nil)\n')
  t.equal(cli('--no-raw', 'MGET', 'cli:1', 'cli:none'), '1) "10"\n2) (nil)\n')
  t.equal(cli('--no-raw', 'INCR', 'nokey'), '(error) ERR invalid key \'nokey\': a key must be "type:id" with type [a-z0-9_-]{1,32} and id [A-Za-z0-9_.:-]{1,128}\n')
  t.equal(cli('-3', 'INCR', 'cli:1'), '11\n', 'RESP3 (HELLO 3 first)')
  t.equal(cli('-3', '--no-raw', 'GET', 'cli:none'), '(nil)\n')
  t.equal(cli('DEL', 'cli:1'), '1\n')
  t.match(cli('INFO', 'keyspace'), /# Keyspace/)
  t.equal(await getValue(node.base, 'cli', '1'), 0)

  // Commands from stdin, one per line (the interactive path also loads COMMAND DOCS for its help).
  const out = await cliWithInput([], 'INCR cli:2\nINCR cli:2\nGET cli:2\nHELP INCR\n')
  t.match(out, /^1\n2\n2\n/, 'commands read from stdin')
  t.equal(await getValue(node.base, 'cli', '2'), 2)

  // --pipe: raw protocol from stdin, as bulk loading does; ends with its own ECHO probe.
  const raw = Array.from({ length: 5000 }, (_, i) => `*2\r\n$4\r\nINCR\r\n$${`clipipe:${i % 10}`.length}\r\nclipipe:${i % 10}\r\n`).join('')
  const piped = await cliWithInput(['--pipe'], raw)
  t.match(piped, /errors: 0, replies: 5000/)
  const values = await queryValues(node.base, Array.from({ length: 10 }, (_, i) => `clipipe:${i}`))
  t.same(Object.values(values), Array(10).fill(500), 'every piped INCR counted once')
})

t.test('redis-benchmark -t incr,get, pipelined, then an exact read-back', async (t) => {
  const run = async (args: string[]): Promise<string> => {
    const p = spawn('redis-benchmark', ['-h', '127.0.0.1', '-p', String(node.respPort), '--csv', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (c: Buffer) => { out += c.toString() })
    p.stderr.on('data', (c: Buffer) => { out += c.toString() })
    const code = await new Promise<number | null>((resolve) => p.on('close', resolve))
    t.equal(code, 0, `redis-benchmark ${args.join(' ')} exits 0`)
    return out
  }
  const n = 64 * 16 * 40
  const out = await run(['-t', 'incr,get', '-c', '64', '-P', '16', '-n', String(n), '-r', '1000'])
  t.match(out, /"INCR","[\d.]+"/)
  t.match(out, /"GET","[\d.]+"/)
  t.notMatch(out, /error|WARNING/i, 'no errors or warnings')
  // -r 1000: keys counter:000000000000 … counter:000000000999 (12 digits).
  const keys = Array.from({ length: 1000 }, (_, i) => `counter:${String(i).padStart(12, '0')}`)
  const values = await queryValues(node.base, keys)
  t.equal(Object.values(values).reduce((s, v) => s + v, 0), n, `the INCRs read back sum to exactly ${n}`)

  // Without -r every INCR hits one key, `counter:__rand_int__`; -P 1 this time.
  await run(['-t', 'incr', '-c', '16', '-P', '1', '-n', '2000'])
  t.equal(await getValue(node.base, 'counter', '__rand_int__'), 2000)
})

t.test('ioredis', async (t) => {
  const r = new Redis({ host: '127.0.0.1', port: node.respPort, lazyConnect: true, maxRetriesPerRequest: 0 })
  t.teardown(() => r.disconnect())
  await r.connect()
  t.equal(await r.incr('io:1'), 1)
  t.equal(await r.incrby('io:1', 5), 6)
  t.equal(await r.decr('io:1'), 5)
  t.equal(await r.decrby('io:1', 2), 3)
  t.equal(await r.get('io:1'), '3')
  t.equal(await r.get('io:none'), null)
  t.same(await r.mget('io:1', 'io:none'), ['3', null])
  t.equal(await r.exists('io:1', 'io:none'), 1)
  t.equal(await r.pfadd('io:1', 'a', 'b'), 1)
  t.equal(await r.pfcount('io:1'), 2)
  await t.rejects(r.incr('bad'), /ERR invalid key 'bad'/)
  await t.rejects(r.incrby('io:1', 'x' as unknown as number), /ERR value is not an integer or out of range/)
  const p = r.pipeline()
  for (let i = 0; i < 1000; i++) p.incr(`io:p${i % 3}`)
  const res = await p.exec()
  t.same(res?.map(([err]) => err), Array(1000).fill(null))
  t.same(res?.slice(0, 6).map(([, v]) => v), [1, 1, 1, 2, 2, 2])
  t.equal(await r.del('io:1', 'io:p0'), 2)
  t.equal(await getValue(node.base, 'io', 'p1'), 333)
  t.equal(await r.ping(), 'PONG')
  await r.client('SETNAME', 'io-test')
  t.equal(await r.client('GETNAME'), 'io-test')
})

t.test('node-redis', async (t) => {
  const c = createClient({ url: `redis://127.0.0.1:${node.respPort}` })
  c.on('error', () => {})
  await c.connect()
  t.teardown(async () => { await c.disconnect() })
  t.equal(await c.incr('nr:1'), 1)
  t.equal(await c.incrBy('nr:1', 10), 11)
  t.equal(await c.decrBy('nr:1', 1), 10)
  t.equal(await c.get('nr:1'), '10')
  t.same(await c.mGet(['nr:1', 'nr:none']), ['10', null])
  t.equal(await c.exists(['nr:1', 'nr:none']), 1)
  t.equal(await c.pfAdd('nr:1', ['x', 'y', 'z']), true)
  t.equal(await c.pfCount('nr:1'), 3)
  await t.rejects(c.incr('Nr:1'), /ERR invalid key/)
  // node-redis pipelines every command issued in the same tick.
  const all = await Promise.all(Array.from({ length: 500 }, async () => await c.incr('nr:auto')))
  t.same(all, Array.from({ length: 500 }, (_, i) => i + 1), 'auto-pipelined INCRs answered in order')
  t.equal(await c.del(['nr:1', 'nr:none']), 1)
  t.equal(await getValue(node.base, 'nr', 'auto'), 500)
  t.equal(await c.ping(), 'PONG')
  t.equal(await c.sendCommand(['CLIENT', 'SETINFO', 'LIB-NAME', 'node-redis']), 'OK')
})
