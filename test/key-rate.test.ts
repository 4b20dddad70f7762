// Per-API-key rate limit (KEY_OPS_PER_SECOND): the limiter's arithmetic on a given clock, then a
// real node: a burst over the rate through HTTP, the stream and the Redis protocol is partly
// refused (429 rate_limited + Retry-After, an error ack, an -ERR reply), and the counter holds
// exactly the ops that were accepted.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { digestOf } from '../src/core/api-keys'
import { KeyRateLimiter } from '../src/core/key-rate'
import { startNode } from './support/node-process'
import { connectResp } from './support/resp-client'
import { StreamClient } from './support/stream-client'

t.test('the limiter: a second\'s worth at once, then one op per 1/rate', async (t) => {
  const l = new KeyRateLimiter(KeyRateLimiter.allocate(), 10)
  const T = 1_000_000_000 // ms: any clock
  // [slot, ops, at ms, expected wait ms (0 = admitted)]
  const steps: Array<[number, number, number, number]> = [
    [0, 10, T, 0], // a full second's worth at once
    [0, 1, T, 100], // then the next op waits 1/rate
    [0, 1, T + 50, 50],
    [0, 1, T + 100, 0],
    [0, 2, T + 150, 150], // refused: nothing charged
    [0, 1, T + 200, 0],
    [1, 1, T, 0], // another key is not charged for slot 0's ops
    [2, 50, T, 0], // more than a second's worth: admitted only with the whole rate unused …
    [2, 1, T + 1000, 3100], // … and it counts against the next seconds
    [2, 1, T + 4100, 0]
  ]
  for (const [slot, n, at, wait] of steps) t.equal(l.take(slot, n, at), wait, `slot ${slot}: ${n} ops at +${at - T} ms`)
})

const KEY = 'limited-key-0123456789'
const READER = 'reader-key-0123456789'

t.test('over the rate: refused with rate_limited, nothing applied; the counter equals what was accepted', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-rate-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'keys.json')
  fs.writeFileSync(file, JSON.stringify({
    keys: [
      { key: `sha256:${digestOf(KEY)}`, namespace: 'app', scopes: ['read', 'write'] },
      { key: `sha256:${digestOf(READER)}`, namespace: 'app', scopes: ['read'] }
    ]
  }))
  // A rate the reader's few GETs never reach, and a burst far past it for the limited key.
  const node = await startNode(t, { env: { AUTH_FILE: file, KEY_OPS_PER_SECOND: '5', RESP_PORT: '0', WORKERS: '2', PARTITIONS: '8' } })
  const read = async (id: string): Promise<number> => {
    const r = await fetch(`${node.base}/v1/counter/rl/${id}`, { headers: { authorization: `Bearer ${READER}` } })
    t.equal(r.status, 200)
    return (await r.json() as { value: number }).value
  }

  // HTTP: 40 increments at once.
  const replies = await Promise.all(Array.from({ length: 40 }, async () => {
    const r = await fetch(`${node.base}/v1/counter/rl/http/increment`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` } })
    return { status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.json() as { error?: { code: string } } }
  }))
  const ok = replies.filter(r => r.status === 200).length
  const limited = replies.filter(r => r.status === 429)
  t.ok(limited.length > 0, `some of the burst were refused (${limited.length} of 40)`)
  t.equal(ok + limited.length, 40, 'every reply is 200 or 429')
  for (const r of limited) {
    t.equal(r.body.error?.code, 'rate_limited')
    t.match(r.retryAfter, /^\d+$/, 'Retry-After given')
  }
  t.equal(await read('http'), ok, 'the counter holds exactly the accepted increments')

  // The stream: 30 frames of one op each, sent at once.
  const s = await StreamClient.connect(node.base, `rl&token=${KEY}`)
  t.teardown(() => s.ws.close())
  const acks = await Promise.all(Array.from({ length: 30 }, async (_, i) => await s.sendBinary(i + 1, [{ type: 'rl', id: 'stream', by: 1 }])))
  const acked = acks.filter(a => a.ok).length
  const refused = acks.filter(a => !a.ok)
  t.ok(refused.length > 0, `some frames were refused (${refused.length} of 30)`)
  for (const a of refused) t.equal(a.error?.code, 'rate_limited')
  t.equal(await read('stream'), acked, 'the counter holds exactly the acked ops')

  // The Redis protocol: 30 INCRs pipelined.
  const c = await connectResp(t, node.respPort)
  t.same(await c.call('AUTH', KEY), { ok: 'OK' })
  const answers = await c.pipeline(Array.from({ length: 30 }, () => ['INCR', 'rl:resp']))
  const incremented = answers.filter(a => typeof a === 'number').length
  const errors = answers.filter(a => typeof a !== 'number')
  t.ok(errors.length > 0, `some commands were refused (${errors.length} of 30)`)
  for (const e of errors) t.match(e, { err: /^ERR rate_limited: this API key is over 5 ops per second/ })
  t.equal(await read('resp'), incremented, 'the counter holds exactly the INCRs answered with a value')
})
