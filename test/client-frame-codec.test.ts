// The client's binary stream codec (client/frame-codec.ts): decodes what it encodes, matches the byte
// layout of the spec, and refuses what the server would refuse.
import t from 'tap'
import {
  ACK_ERROR, ACK_OK, decodeAck, decodeFrame, encodeAck, encodedFrameLength, encodeFrame,
  setFrameSeq, type Op
} from '../client/frame-codec'
import { clientFrame } from '../bench/ws-raw-client'

const MAX = Number.MAX_SAFE_INTEGER

t.test('round trip keeps seq, order, signs and magnitudes', async (t) => {
  const ops: Op[] = [
    ['post', '123', 1],
    ['video', '9', -5],
    ['a', 'x', 0],
    ['t'.repeat(32), 'i'.repeat(128), MAX],
    ['like_s-1', 'A.b:c-D_9', -MAX],
    ['p', '1', 127],
    ['p', '2', 128],
    ['p', '3', 16384]
  ]
  for (const seq of [0, 17, 0xffffffff]) {
    const buf = encodeFrame(seq, ops)
    t.equal(buf.length, encodedFrameLength(ops), 'length is predicted')
    t.same(decodeFrame(buf), { seq, ops }, `seq ${seq}`)
  }
})

t.test('byte layout follows the spec', async (t) => {
  const buf = encodeFrame(0x01020304, [['post', '12', 300], ['v', '9', -1]])
  t.same([...buf], [
    0x01, 0x04, 0x03, 0x02, 0x01, 0x02, 0x00, // kind, seq LE, nOps LE
    0x04, 0x70, 0x6f, 0x73, 0x74, 0x02, 0x31, 0x32, 0xac, 0x02, // "post" "12" 300 = LEB128 ac 02
    0x81, 0x76, 0x01, 0x39, 0x01 // negative, "v" "9" 1
  ])
  const max = encodeFrame(1, [['a', 'b', MAX]])
  t.equal(max.length - 7 - 4, 8, '2^53-1 takes 8 varint bytes')
})

t.test('setFrameSeq rewrites only the seq', async (t) => {
  const buf = encodeFrame(1, [['post', '1', 2]])
  setFrameSeq(buf, 99)
  t.same(decodeFrame(buf), { seq: 99, ops: [['post', '1', 2]] })
})

t.test('encoder refuses what the server would refuse', async (t) => {
  const cases: Array<[string, () => unknown, string]> = [
    ['empty type', () => encodeFrame(1, [['', '1', 1]]), 'invalid_type'],
    ['type too long', () => encodeFrame(1, [['t'.repeat(33), '1', 1]]), 'invalid_type'],
    ['upper-case type', () => encodeFrame(1, [['Post', '1', 1]]), 'invalid_type'],
    ['empty id', () => encodeFrame(1, [['p', '', 1]]), 'invalid_id'],
    ['id too long', () => encodeFrame(1, [['p', 'i'.repeat(129), 1]]), 'invalid_id'],
    ['id with slash', () => encodeFrame(1, [['p', 'a/b', 1]]), 'invalid_id'],
    ['fractional delta', () => encodeFrame(1, [['p', '1', 1.5]]), 'invalid_delta'],
    ['delta past 2^53-1', () => encodeFrame(1, [['p', '1', MAX + 2]]), 'invalid_delta'],
    ['no ops', () => encodeFrame(1, []), 'too_many_ops'],
    ['negative seq', () => encodeFrame(-1, [['p', '1', 1]]), 'invalid_seq'],
    ['seq past u32', () => encodeFrame(2 ** 32, [['p', '1', 1]]), 'invalid_seq']
  ]
  for (const [name, fn, code] of cases) {
    t.throws(fn, { name: 'CounterdClientError', code }, name)
  }
})

t.test('decoder refuses malformed frames', async (t) => {
  const good = encodeFrame(5, [['post', '1', 1]])
  const nineByteVarint = Buffer.concat([Buffer.from([0x01, 5, 0, 0, 0, 1, 0, 0x01, 0x70, 0x01, 0x31]), Buffer.alloc(8, 0xff), Buffer.from([0x01])])
  const cases: Array<[string, Buffer]> = [
    ['short header', good.subarray(0, 6)],
    ['unknown kind', Buffer.concat([Buffer.from([0x02]), good.subarray(1)])],
    ['zero ops', Buffer.from([0x01, 5, 0, 0, 0, 0, 0])],
    ['truncated op', good.subarray(0, good.length - 1)],
    ['trailing bytes', Buffer.concat([good, Buffer.from([0])])],
    ['reserved bit', Buffer.from([0x01, 5, 0, 0, 0, 1, 0, 0x41, 0x70, 0x01, 0x31, 0x01])],
    ['bad type byte', Buffer.from([0x01, 5, 0, 0, 0, 1, 0, 0x01, 0x50, 0x01, 0x31, 0x01])],
    ['varint longer than 8 bytes', nineByteVarint]
  ]
  for (const [name, buf] of cases) {
    t.throws(() => decodeFrame(buf), { name: 'CounterdClientError', code: 'malformed_frame' }, name)
  }
})

t.test('acks decode from the spec bytes', async (t) => {
  t.same(decodeAck(Buffer.from([ACK_OK, 7, 0, 0, 0])), { seq: 7, ok: true })
  const err = encodeAck(9, { code: 'overloaded', message: 'too much work' })
  t.equal(err[0], ACK_ERROR)
  t.same(decodeAck(err), { seq: 9, ok: false, code: 'overloaded', message: 'too much work' })
  t.throws(() => decodeAck(Buffer.from([0x83, 1, 0, 0, 0])), { code: 'malformed_frame' })
  t.throws(() => decodeAck(Buffer.from([ACK_OK, 1, 0, 0])), { code: 'malformed_frame' })
})

t.test('client frames carry a zero mask and the right length encoding', async (t) => {
  for (const [len, headerLen, code] of [[5, 6, 5], [126, 8, 126], [70000, 14, 127]] as const) {
    const payload = Buffer.alloc(len, 0xab)
    const f = clientFrame(payload)
    t.equal(f[0], 0x82, 'FIN + binary')
    t.equal(f[1], 0x80 | code, `length code ${code}`)
    t.same([...f.subarray(headerLen - 4, headerLen)], [0, 0, 0, 0], 'mask key is zero')
    t.equal(f.length, headerLen + len)
    t.ok(f.subarray(headerLen).equals(payload), 'payload unchanged')
  }
})
