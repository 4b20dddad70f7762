// The RESP codec on its own: commands parsed in place (whole, split at every byte, inline),
// malformed streams refused with Redis' protocol errors, strict integers, and replies encoded
// byte for byte as Redis writes them.
import t from 'tap'
import { CounterdError } from '../src/core/errors'
import { ByteSink } from '../src/core/op-codec'
import {
  argIs, bulkInteger, errorReply, INCOMPLETE, integer, mapHeader, nullReply, parseCommand, parseInteger, RespCommand,
  simpleString, verbatimText, writeValue
} from '../src/core/resp-codec'
import { encodeCommand } from './support/resp-client'

function args (buf: Buffer, cmd: RespCommand): string[] {
  return Array.from({ length: cmd.argc }, (_, i) => buf.toString('latin1', cmd.start[i], cmd.start[i] + cmd.len[i]))
}

function parseAll (buf: Buffer): string[][] {
  const cmd = new RespCommand()
  const out: string[][] = []
  let o = 0
  while (o < buf.length) {
    const next = parseCommand(buf, o, buf.length, cmd)
    if (next === INCOMPLETE) break
    o = next
    if (cmd.argc > 0) out.push(args(buf, cmd))
  }
  return out
}

t.test('a pipeline of multibulk commands parses in order', async (t) => {
  const cmds = [['INCR', 'post:1'], ['INCRBY', 'post:1', '-5'], ['MGET', 'a:1', 'b:2', 'c:3'], ['ECHO', ''], ['PING']]
  t.same(parseAll(Buffer.concat(cmds.map(encodeCommand))), cmds)
})

t.test('a command split at every byte is incomplete until its last byte, then whole', async (t) => {
  const whole = encodeCommand(['INCRBY', 'video:abc', '12345'])
  const cmd = new RespCommand()
  for (let cut = 1; cut < whole.length; cut++) {
    const part = whole.subarray(0, cut)
    const r = parseCommand(part, 0, part.length, cmd)
    t.equal(r, INCOMPLETE, `cut at ${cut} is incomplete`)
    t.ok(cmd.need > cut && cmd.need <= whole.length, `cut at ${cut}: asks for more bytes (${cmd.need}) but no more than the command`)
  }
  t.equal(parseCommand(whole, 0, whole.length, cmd), whole.length)
  t.same(args(whole, cmd), ['INCRBY', 'video:abc', '12345'])
})

t.test('inline commands (telnet) and empty commands', async (t) => {
  t.same(parseAll(Buffer.from('PING\r\nINCR  post:1\r\n\r\nGET post:1\n*0\r\n')), [['PING'], ['INCR', 'post:1'], ['GET', 'post:1']])
})

t.test('malformed streams are protocol errors with Redis\' wording', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['multibulk count not a number', '*x\r\n', /invalid multibulk length/],
    ['multibulk count too large', `*${1024 * 1024 + 1}\r\n`, /invalid multibulk length/],
    ['argument without $', '*1\r\n+PING\r\n', /expected '\$', got '\+'/],
    ['bulk length not a number', '*1\r\n$x\r\n', /invalid bulk length/],
    ['negative bulk length', '*1\r\n$-1\r\n', /invalid bulk length/],
    ['bulk longer than the limit', `*1\r\n$${2 * 1024 * 1024}\r\n`, /invalid bulk length/],
    ['bulk not followed by CRLF', '*1\r\n$4\r\nPINGxx', /not followed by CRLF/],
    ['a number line that never ends', '*1' + '1'.repeat(40), /invalid multibulk length/]
  ]
  for (const [what, text, re] of cases) {
    const buf = Buffer.from(text)
    try {
      parseCommand(buf, 0, buf.length, new RespCommand())
      t.fail(`${what}: parsed`)
    } catch (err) {
      t.ok(err instanceof CounterdError && err.code === 'protocol_error', `${what}: a protocol_error`)
      t.match((err as Error).message, re, what)
      t.match((err as Error).message, /^Protocol error: /, `${what}: Redis' prefix`)
    }
  }
})

t.test('integers: Redis\' strict form within ±(2^53−1)', async (t) => {
  const ok: Array<[string, number]> = [['0', 0], ['7', 7], ['-7', -7], ['9007199254740991', 9007199254740991], ['-9007199254740991', -9007199254740991]]
  for (const [s, v] of ok) t.equal(parseInteger(Buffer.from(s), 0, s.length), v, s)
  for (const s of ['', '-', '+1', '01', '-0', '1.5', '1e3', ' 1', '9007199254740992', '99999999999999999999', 'abc']) {
    t.ok(Number.isNaN(parseInteger(Buffer.from(s), 0, s.length)), `${JSON.stringify(s)} is not an integer here`)
  }
  t.ok(argIs(Buffer.from('iNcR'), 0, 4, 'INCR'))
  t.notOk(argIs(Buffer.from('INCRX'), 0, 5, 'INCR'))
})

t.test('replies are encoded as Redis writes them, in RESP2 and RESP3', async (t) => {
  const enc = (f: (out: ByteSink) => void): string => { const s = new ByteSink(8); f(s); return s.buf.toString('latin1', 0, s.len) }
  t.equal(enc((o) => simpleString(o, 'OK')), '+OK\r\n')
  t.equal(enc((o) => errorReply(o, 'ERR bad\r\nthing')), '-ERR bad thing\r\n')
  t.equal(enc((o) => integer(o, -9007199254740991)), ':-9007199254740991\r\n')
  t.equal(enc((o) => integer(o, 0)), ':0\r\n')
  t.equal(enc((o) => bulkInteger(o, 1234)), '$4\r\n1234\r\n')
  t.equal(enc((o) => bulkInteger(o, -5)), '$2\r\n-5\r\n')
  t.equal(enc((o) => nullReply(o, 2)), '$-1\r\n')
  t.equal(enc((o) => nullReply(o, 3)), '_\r\n')
  t.equal(enc((o) => mapHeader(o, 2, 2)), '*4\r\n')
  t.equal(enc((o) => mapHeader(o, 2, 3)), '%2\r\n')
  t.equal(enc((o) => verbatimText(o, 'a:1', 3)), '=7\r\ntxt:a:1\r\n')
  t.equal(enc((o) => verbatimText(o, 'a:1', 2)), '$3\r\na:1\r\n')
  t.equal(enc((o) => writeValue(o, { proto: 3, ok: '+OK', none: null, list: [1, 'x'], flags: { set: ['+write'] } }, 3)),
    '%5\r\n$5\r\nproto\r\n:3\r\n$2\r\nok\r\n+OK\r\n$4\r\nnone\r\n_\r\n$4\r\nlist\r\n*2\r\n:1\r\n$1\r\nx\r\n$5\r\nflags\r\n~1\r\n+write\r\n')
})
