// Per-user token buckets: default 100 a minute, refill arithmetic, retry-after, read-only peek,
// refunds, bounded memory (full buckets dropped), encode/decode and bad input.
import t from 'tap'
import { CounterdError } from '../src/core/errors'
import { TokenBuckets } from '../actors/features/token-bucket'

function codeOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    return err instanceof CounterdError ? err.code : `not a CounterdError: ${String(err)}`
  }
  return 'no error'
}

const T0 = 1_700_000_000_000

t.test('default: 100 a minute, then one every 600 ms', async (t) => {
  const tb = new TokenBuckets()
  t.equal(tb.peek('alice', T0), 100)
  let ok = 0
  for (let i = 0; i < 100; i++) if (tb.take('alice', T0) === 0) ok++
  t.equal(ok, 100, 'a full bucket gives 100 at once')
  t.equal(tb.take('alice', T0), 600, 'the 101st waits for one refill')
  t.equal(tb.take('alice', T0 + 599), 1)
  t.equal(tb.peek('alice', T0 + 599), 0)
  t.equal(tb.take('alice', T0 + 600), 0, 'one token after 600 ms')
  t.equal(tb.take('alice', T0 + 600), 600)
  t.equal(tb.peek('alice', T0 + 600 + 30_000), 50, 'half a minute refills 50')
  t.equal(tb.peek('alice', T0 + 10 * 60_000), 100, 'never more than the capacity')
  t.equal(tb.take('bob', T0), 0, 'users are independent')
  t.equal(tb.peek('bob', T0), 99)
})

t.test('configurable capacity, refill and cost', async (t) => {
  const tb = new TokenBuckets({ capacity: 7, refillTokens: 7, refillIntervalMs: 1000 }) // fractional ms per token
  let ok = 0
  for (let i = 0; i < 7; i++) if (tb.take('u', T0) === 0) ok++
  t.equal(ok, 7, 'rounding does not cost the last token')
  t.equal(tb.take('u', T0), 143, 'ceil(1000 / 7) ms')
  const burst = new TokenBuckets({ capacity: 10, refillTokens: 1, refillIntervalMs: 100 })
  t.equal(burst.take('u', T0, 4), 0)
  t.equal(burst.take('u', T0, 4), 0)
  t.equal(burst.take('u', T0, 4), 200, 'needs 2 more tokens: 200 ms')
  t.equal(burst.peek('u', T0), 2)
  t.equal(burst.take('u', T0, 2), 0)
  t.equal(burst.take('u', T0 - 5000), 5100, 'a clock stepping back gives nothing extra')
  burst.refund('u', T0, 2)
  t.equal(burst.peek('u', T0), 2, 'refund gives tokens back')
  burst.refund('u', T0, 10)
  t.equal(burst.peek('u', T0), 10, 'up to a full bucket')
  t.equal(burst.size, 0, 'a refunded-to-full bucket is dropped')
})

t.test('peek changes nothing', async (t) => {
  const tb = new TokenBuckets()
  tb.take('a', T0)
  const before = tb.encode()
  for (let i = 0; i < 10; i++) tb.peek('a', T0 + i * 1000)
  tb.peek('stranger', T0)
  t.same(tb.encode(), before)
  t.equal(tb.size, 1, 'peeking at an unknown user stores nothing')
})

t.test('memory is bounded: full buckets are dropped', async (t) => {
  const tb = new TokenBuckets()
  for (let i = 0; i < 10_000; i++) tb.take(`wave1-${i}`, T0, 100) // empty until T0 + 60 s
  t.equal(tb.size, 10_000)
  t.equal(tb.sweep(T0 + 59_999), 0, 'nothing is full yet')
  // Once every wave-1 bucket has refilled, new arrivals push them out as they come.
  for (let i = 0; i < 10_000; i++) tb.take(`wave2-${i}`, T0 + 60_000, 100)
  t.ok(tb.size <= 10_000 + 100, `size after the second wave: ${tb.size}`)
  t.equal(tb.peek('wave1-5', T0 + 60_000), 100, 'a dropped user simply has a full bucket')
  const left = tb.size
  t.equal(tb.sweep(T0 + 120_000), left, 'sweep drops the rest once full')
  t.equal(tb.size, 0)
  const partial = new TokenBuckets()
  for (let i = 0; i < 100; i++) partial.take(`p${i}`, T0 + i * 500, 100) // all within one refill period
  t.equal(partial.size, 100)
  t.equal(partial.sweep(T0 + 60_000 + 24_750, 1000), 50, 'only those already full')
  t.equal(partial.size, 50)
  t.equal(partial.sweep(T0 + 200_000, 10), 10, 'limit caps the work of one call')
  t.equal(partial.sweep(T0 + 200_000, 100), 40, 'the next call carries on')
})

t.test('encode/decode round trip', async (t) => {
  const tb = new TokenBuckets({ capacity: 5, refillTokens: 1, refillIntervalMs: 1000 })
  tb.take('ä-user', T0, 3)
  tb.take('b', T0, 5)
  const back = TokenBuckets.decode(tb.encode())
  t.equal(back.capacity, 5)
  t.equal(back.refillTokens, 1)
  t.equal(back.refillIntervalMs, 1000)
  t.equal(back.peek('ä-user', T0), 2)
  t.equal(back.take('b', T0 + 500), 500)
  t.same(back.encode(), tb.encode())
})

t.test('bad options, arguments and encodings', async (t) => {
  const bad: Array<[string, unknown]> = [
    ['capacity 0', { capacity: 0 }],
    ['capacity 1.5', { capacity: 1.5 }],
    ['refillTokens 0', { refillTokens: 0 }],
    ['refillTokens NaN', { refillTokens: NaN }],
    ['refillIntervalMs -1', { refillIntervalMs: -1 }],
    ['refillIntervalMs Infinity', { refillIntervalMs: Infinity }],
    ['unknown', { rate: 5 }]
  ]
  for (const [name, o] of bad) t.equal(codeOf(() => new TokenBuckets(o as never)), 'invalid_option', name)
  t.match(codeOf(() => new TokenBuckets({ capacity: -3 })), 'invalid_option')
  const tb = new TokenBuckets({ capacity: 3 })
  const args: Array<[string, () => unknown]> = [
    ['user not a string', () => tb.take(5 as never, T0)],
    ['now NaN', () => tb.take('u', NaN)],
    ['now negative', () => tb.take('u', -1)],
    ['cost 0', () => tb.take('u', T0, 0)],
    ['cost above capacity', () => tb.take('u', T0, 4)],
    ['cost fractional', () => tb.take('u', T0, 1.5)],
    ['peek now NaN', () => tb.peek('u', NaN)],
    ['sweep now NaN', () => tb.sweep(NaN)]
  ]
  for (const [name, fn] of args) t.equal(codeOf(fn), 'invalid_argument', name)
  tb.take('u', T0)
  const enc = tb.encode() // 5 | 8 capacity | 8 refill | 8 interval | 4 n | 2 len 'u' | 8 time
  const patch = (at: number, bytes: Buffer): Buffer => { const b = Buffer.from(enc); bytes.copy(b, at); return b }
  const f64 = (v: number): Buffer => { const b = Buffer.alloc(8); b.writeDoubleLE(v); return b }
  const corrupt: Array<[string, Buffer]> = [
    ['truncated', enc.subarray(0, enc.length - 2)],
    ['trailing', Buffer.concat([enc, Buffer.from([0])])],
    ['magic', patch(0, Buffer.from('Z'))],
    ['capacity 0', patch(5, f64(0))],
    ['refill NaN', patch(13, f64(NaN))],
    ['time NaN', patch(enc.length - 8, f64(NaN))],
    ['count too large', patch(29, Buffer.from([0xff, 0xff, 0, 0]))],
    ['user twice', Buffer.concat([patch(29, Buffer.from([2, 0, 0, 0])), enc.subarray(33)])]
  ]
  for (const [name, b] of corrupt) t.equal(codeOf(() => TokenBuckets.decode(b)), 'corrupt_state', name)
})
