// WebSocket /v1/stream against a real node: JSON and binary frames, acks, resend dedup, and every
// malformed-frame path (error ack or close code), none of which may change a count.
import t from 'tap'
import WebSocket from 'ws'
import { encodeBinaryFrame } from '../src/core/binary-frame'
import { getValue, startNode } from './support/node-process'
import { StreamClient } from './support/stream-client'

t.test('stream', async (t) => {
  const node = await startNode(t, { env: { MAX_FRAME_BYTES: '2048', MAX_OPS_PER_FRAME: '50' } })

  t.test('JSON and binary frames are acked and counted', async (t) => {
    const c = await StreamClient.connect(node.base)
    t.teardown(() => c.close())
    t.same(await c.sendJson(1, [['post', 's1', 2], ['post', 's1'], ['video', 's2', -4]]), { seq: 1, ok: true, error: undefined })
    t.same(await c.sendBinary(2, [{ type: 'post', id: 's1', by: 10 }, { type: 'video', id: 's2', by: -1 }]), { seq: 2, ok: true })
    t.same(await c.sendBinary(3, [{ type: 'big', id: 's3', by: Number.MAX_SAFE_INTEGER }]), { seq: 3, ok: true })
    t.equal(await getValue(node.base, 'post', 's1'), 13)
    t.equal(await getValue(node.base, 'video', 's2'), -5)
    t.equal(await getValue(node.base, 'big', 's3'), Number.MAX_SAFE_INTEGER, 'a 2^53−1 delta survives the varint')
  })

  t.test('with a clientId, a resent frame counts once', async (t) => {
    const c = await StreamClient.connect(node.base, 'client-A')
    t.teardown(() => c.close())
    const ops = [{ type: 'post', id: 'd1', by: 1 }, { type: 'share', id: 'd2', by: 7 }]
    t.ok((await c.sendBinary(100, ops)).ok)
    t.ok((await c.sendBinary(100, ops)).ok, 'the resend is acked')
    t.ok((await c.sendJson(101, [['post', 'd1', 1]])).ok)
    t.ok((await c.sendJson(101, [['post', 'd1', 1]])).ok)
    // A reconnect with the same clientId resends: still once.
    const again = await StreamClient.connect(node.base, 'client-A')
    t.teardown(() => again.close())
    t.ok((await again.sendBinary(100, ops)).ok)
    t.ok((await again.sendBinary(102, ops)).ok, 'a new seq is new work')
    t.equal(await getValue(node.base, 'post', 'd1'), 3)
    t.equal(await getValue(node.base, 'share', 'd2'), 14)
    // Without a clientId there is nothing to dedup on.
    const anon = await StreamClient.connect(node.base)
    t.teardown(() => anon.close())
    await anon.sendJson(100, [['post', 'd3']])
    await anon.sendJson(100, [['post', 'd3']])
    t.equal(await getValue(node.base, 'post', 'd3'), 2)
  })

  t.test('an op that would overflow is refused, the rest of its frame applies', async (t) => {
    const c = await StreamClient.connect(node.base)
    t.teardown(() => c.close())
    await c.sendJson(1, [['ovf', 'x', Number.MAX_SAFE_INTEGER]])
    const ack = await c.sendJson(2, [['ovf', 'x', 1], ['ovf', 'y', 1]])
    t.equal(ack.ok, false)
    t.equal(ack.error?.code, 'value_out_of_range')
    t.equal(await getValue(node.base, 'ovf', 'x'), Number.MAX_SAFE_INTEGER)
    t.equal(await getValue(node.base, 'ovf', 'y'), 1)
  })

  t.test('invalid frames get an error ack and change nothing', async (t) => {
    const c = await StreamClient.connect(node.base)
    t.teardown(() => c.close())
    const good = encodeBinaryFrame(0, [{ type: 'bad', id: 'x', by: 1 }])
    const withKind = (seq: number, kind: number): Buffer => { const b = Buffer.from(good); b[0] = kind; b.writeUInt32LE(seq, 1); return b }
    const withSeq = (b: Buffer, seq: number): Buffer => { b.writeUInt32LE(seq, 1); return b }
    const manyOps = Array.from({ length: 51 }, (_, i) => ({ type: 'bad', id: `x${i}`, by: 1 }))
    const cases: Array<{ name: string, frame: Buffer | string, seq: number, code: string }> = [
      { name: 'JSON: bad type', frame: JSON.stringify({ seq: 10, ops: [['bad', 'x', 1], ['BAD', 'x', 1]] }), seq: 10, code: 'invalid_type' },
      { name: 'JSON: bad id', frame: JSON.stringify({ seq: 11, ops: [['bad', 'x y', 1]] }), seq: 11, code: 'invalid_id' },
      { name: 'JSON: fractional delta', frame: JSON.stringify({ seq: 12, ops: [['bad', 'x', 0.5]] }), seq: 12, code: 'invalid_delta' },
      { name: 'JSON: delta beyond 2^53', frame: JSON.stringify({ seq: 13, ops: [['bad', 'x', 2 ** 53]] }), seq: 13, code: 'invalid_delta' },
      { name: 'JSON: empty ops', frame: JSON.stringify({ seq: 14, ops: [] }), seq: 14, code: 'malformed_frame' },
      { name: 'JSON: op not an array', frame: JSON.stringify({ seq: 15, ops: [{ type: 'bad' }] }), seq: 15, code: 'malformed_frame' },
      { name: 'JSON: too many ops', frame: JSON.stringify({ seq: 16, ops: manyOps.map((o) => [o.type, o.id, 1]) }), seq: 16, code: 'too_many_ops' },
      { name: 'binary: unknown kind', frame: withKind(20, 0x07), seq: 20, code: 'malformed_frame' },
      { name: 'binary: too many ops', frame: encodeBinaryFrame(21, manyOps), seq: 21, code: 'too_many_ops' },
      { name: 'binary: bad type byte', frame: withSeq(Buffer.from(encodeBinaryFrame(0, [{ type: 'baD', id: 'x', by: 1 }])), 22), seq: 22, code: 'invalid_type' },
      { name: 'binary: bad id byte', frame: withSeq(Buffer.from(encodeBinaryFrame(0, [{ type: 'bad', id: 'x/', by: 1 }])), 23), seq: 23, code: 'invalid_id' },
      { name: 'binary: truncated op', frame: withSeq(Buffer.from(good.subarray(0, good.length - 1)), 24), seq: 24, code: 'malformed_frame' },
      { name: 'binary: trailing bytes', frame: withSeq(Buffer.concat([good, Buffer.from([0])]), 25), seq: 25, code: 'malformed_frame' },
      { name: 'binary: actor flag without an actor', frame: (() => { const b = withSeq(Buffer.from(good), 26); b[7] |= 0x40; return b })(), seq: 26, code: 'malformed_frame' },
      { name: 'binary: bad actor', frame: withSeq(encodeBinaryFrame(0, [{ type: 'bad', id: 'x', by: 1, actor: 'no spaces' }]), 31), seq: 31, code: 'invalid_actor' },
      { name: 'JSON: bad actor', frame: JSON.stringify({ seq: 32, ops: [['bad', 'x', 1, 'a b']] }), seq: 32, code: 'invalid_actor' },
      { name: 'binary: zero ops', frame: withSeq(Buffer.from([1, 0, 0, 0, 0, 0, 0]), 27), seq: 27, code: 'malformed_frame' },
      { name: 'binary: varint over 8 bytes', frame: withSeq(Buffer.concat([good.subarray(0, good.length - 1), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])]), 28), seq: 28, code: 'invalid_delta' },
      { name: 'binary: delta of 2^53', frame: withSeq(Buffer.concat([good.subarray(0, good.length - 1), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10])]), 29), seq: 29, code: 'invalid_delta' }
    ]
    for (const c2 of cases) {
      const ack = await c.sendRaw(c2.frame, c2.seq)
      t.equal(ack.ok, false, `${c2.name}: refused`)
      t.equal(ack.error?.code, c2.code, `${c2.name}: code`)
    }
    t.equal(await getValue(node.base, 'bad', 'x'), 0, 'no invalid frame applied anything, not even its valid ops')
    t.ok((await c.sendJson(30, [['bad', 'ok']])).ok, 'the connection still works')
  })

  const closeCases: Array<{ name: string, frame: Buffer | string, code: number, reason: RegExp }> = [
    { name: 'malformed JSON', frame: '{"seq":1,"ops":', code: 1007, reason: /malformed_json/ },
    { name: 'JSON without a seq', frame: '{"ops":[["a","b",1]]}', code: 1007, reason: /invalid_seq/ },
    { name: 'binary shorter than its header', frame: Buffer.from([1, 2, 3]), code: 1007, reason: /shorter than its 7-byte header/ },
    { name: 'frame over the size limit', frame: Buffer.alloc(3000, 1), code: 1009, reason: /over the 2048-byte limit/ }
  ]
  for (const cc of closeCases) {
    t.test(`close: ${cc.name}`, async (t) => {
      const c = await StreamClient.connect(node.base)
      t.ok((await c.sendJson(1, [['closing', 'x', 1]])).ok)
      c.ws.send(cc.frame)
      const closed = await c.closed
      t.equal(closed.code, cc.code)
      t.match(closed.reason, cc.reason)
      t.equal(await getValue(node.base, 'closing', 'x') >= 1, true, 'what was acked before the close is kept')
    })
  }

  t.test('a bad clientId is refused at upgrade with 400', async (t) => {
    const ws = new WebSocket(node.base.replace('http', 'ws') + '/v1/stream?clientId=bad%20id')
    const status = await new Promise<number>((resolve) => ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)))
    t.equal(status, 400)
  })
})
