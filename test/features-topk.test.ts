// Hot keys: Space-Saving top-K over decayed rates (checked against exact decayed counts, with
// more keys than counters), merging partition summaries, landmark rescaling, and the per-key
// sliding-window rate.
import t from 'tap'
import { CounterdError } from '../src/errors'
import { Prng } from '../actors/features/prng'
import { SlidingRate } from '../actors/features/sliding-rate'
import { SpaceSaving } from '../actors/features/space-saving'

function codeOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    return err instanceof CounterdError ? err.code : `not a CounterdError: ${String(err)}`
  }
  return 'no error'
}

const T0 = 1_700_000_000_000
const TAU = 60_000

/** Exact decayed rates per second, kept the slow way for comparison. */
class ExactRates {
  private readonly events: Array<[string, number, number]> = []
  add (key: string, t: number, w = 1): void { this.events.push([key, t, w]) }
  rates (now: number): Map<string, number> {
    const m = new Map<string, number>()
    for (const [k, t, w] of this.events) m.set(k, (m.get(k) ?? 0) + w * Math.exp(-(now - t) / TAU) * 1000 / TAU)
    return m
  }
}

function near (a: number, b: number, rel: number): boolean {
  return Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b))
}

t.test('steady rates are measured and ranked exactly while keys fit', async (t) => {
  const ss = new SpaceSaving({ capacity: 10 })
  const per = { a: 100, b: 50, c: 10 } // events per second
  for (let ms = 0; ms < 600_000; ms += 10) {
    const now = T0 + ms
    if (ms % 10 === 0) ss.add('a', now)
    if (ms % 20 === 0) ss.add('b', now)
    if (ms % 100 === 0) ss.add('c', now)
  }
  const top = ss.top(3, T0 + 600_000)
  t.same(top.map(e => e.key), ['a', 'b', 'c'])
  for (const e of top) {
    t.ok(near(e.rate, per[e.key as 'a' | 'b' | 'c'], 0.01), `${e.key}: ${e.rate.toFixed(2)}/s`)
    t.equal(e.error, 0, 'no evictions, no error')
  }
  t.equal(ss.top(2, T0 + 600_000).length, 2)
  t.equal(ss.rate('nope', T0), 0)
})

t.test('a burst fades: a key that stopped falls behind a steady one', async (t) => {
  const ss = new SpaceSaving({ capacity: 4 })
  for (let s = 0; s < 60; s++) {
    ss.add('burst', T0 + s * 1000, 500) // 500/s for a minute
    ss.add('steady', T0 + s * 1000, 20)
  }
  const early = ss.top(2, T0 + 60_000)
  t.same(early.map(e => e.key), ['burst', 'steady'])
  for (let s = 60; s < 300; s++) ss.add('steady', T0 + s * 1000, 20)
  const late = ss.top(2, T0 + 300_000)
  t.same(late.map(e => e.key), ['steady', 'burst'])
  t.ok(late[1].rate < 0.05 * early[0].rate, `burst decayed to ${late[1].rate.toFixed(2)}/s`)
})

t.test('with more keys than counters: heavy keys found, estimates bound the truth', async (t) => {
  const rng = new Prng(3)
  const ss = new SpaceSaving({ capacity: 100 })
  const exact = new ExactRates()
  let now = T0
  for (let i = 0; i < 100_000; i++) {
    now += rng.below(5)
    // Ten hot keys with 5% of the traffic each, far above total/capacity (1%); the other half
    // spread over 5000 cold keys, which keep evicting each other.
    const key = rng.below(2) === 0 ? `hot${rng.below(10)}` : `cold${rng.below(5000)}`
    ss.add(key, now)
    exact.add(key, now)
  }
  const truth = [...exact.rates(now)].sort((a, b) => b[1] - a[1])
  const top = ss.top(10, now)
  t.same(new Set(top.map(e => e.key)), new Set(truth.slice(0, 10).map(e => e[0])), 'the true top 10')
  t.ok(top.every(e => e.key.startsWith('hot')), 'which are the hot keys')
  const truthOf = new Map(truth)
  let violations = 0
  for (const e of ss.top(100, now)) {
    const real = truthOf.get(e.key) ?? 0
    if (e.rate < real * (1 - 1e-9) || e.rate - e.error > real * (1 + 1e-9)) violations++
  }
  t.equal(violations, 0, 'every estimate e satisfies e − error <= true <= e')
  const total = truth.reduce((s, e) => s + e[1], 0)
  const missed = truth.filter(([k, r]) => r > total / 100 && ss.rate(k, now) === 0)
  t.equal(missed.length, 0, 'every key above total/capacity is tracked')
})

t.test('merging partition summaries', async (t) => {
  const a = new SpaceSaving({ capacity: 20 })
  const b = new SpaceSaving({ capacity: 20 })
  const all = new SpaceSaving({ capacity: 40 })
  const rng = new Prng(11)
  for (let i = 0; i < 20_000; i++) {
    const now = T0 + i * 3
    const n = rng.below(30)
    const key = `p${n}`
    ;(n % 2 === 0 ? a : b).add(key, now + (n % 2 === 0 ? 0 : 7_000)) // b runs later: landmarks differ
    all.add(key, now + (n % 2 === 0 ? 0 : 7_000))
  }
  const now = T0 + 70_000
  const disjoint = SpaceSaving.decode(a.encode())
  disjoint.merge(b, { disjoint: true })
  const want = all.top(10, now)
  const got = disjoint.top(10, now)
  t.same(got.map(e => e.key), want.map(e => e.key), 'disjoint merge ranks like one summary')
  t.ok(got.every((e, i) => near(e.rate, want[i].rate, 1e-9)), 'with the same rates')
  // Overlapping keys and full summaries: merged estimates still never under-count.
  const c = new SpaceSaving({ capacity: 5 })
  const d = new SpaceSaving({ capacity: 5 })
  const exact = new ExactRates()
  for (let i = 0; i < 5000; i++) {
    const key = `o${rng.below(12)}`
    const side = rng.below(2) === 0 ? c : d
    side.add(key, T0 + i)
    exact.add(key, T0 + i)
  }
  c.merge(d)
  const truth = exact.rates(T0 + 5000)
  const under = c.top(5, T0 + 5000).filter(e => e.rate < (truth.get(e.key) ?? 0) * (1 - 1e-9))
  t.equal(under.length, 0, 'conservative merge keeps upper bounds')
  t.equal(codeOf(() => c.merge(new SpaceSaving({ windowMs: 1000 }))), 'invalid_argument', 'different windows do not merge')
})

t.test('hours of traffic: the landmark moves, rates stay right', async (t) => {
  const ss = new SpaceSaving({ capacity: 4, windowMs: 10_000 }) // 360 windows in an hour
  for (let ms = 0; ms <= 3_600_000; ms += 100) ss.add('x', T0 + ms) // 10/s
  t.ok(near(ss.rate('x', T0 + 3_600_000), 10, 0.01), `rate ${ss.rate('x', T0 + 3_600_000).toFixed(3)}/s`)
  const back = SpaceSaving.decode(ss.encode())
  t.ok(near(back.rate('x', T0 + 3_600_000), ss.rate('x', T0 + 3_600_000), 1e-12), 'encoded summary agrees')
})

t.test('SpaceSaving encode/decode and bad input', async (t) => {
  const ss = new SpaceSaving({ capacity: 3 })
  for (let i = 0; i < 50; i++) ss.add(`é${i % 7}`, T0 + i * 100, 1 + (i % 3))
  const back = SpaceSaving.decode(ss.encode())
  t.same(back.top(3, T0 + 6000), ss.top(3, T0 + 6000))
  back.add('new', T0 + 7000)
  ss.add('new', T0 + 7000)
  t.same(back.encode(), ss.encode(), 'continues identically')
  const bad: Array<[string, unknown]> = [
    ['capacity 0', { capacity: 0 }],
    ['capacity 100001', { capacity: 100_001 }],
    ['windowMs 0', { windowMs: 0 }],
    ['windowMs NaN', { windowMs: NaN }],
    ['unknown', { k: 5 }]
  ]
  for (const [name, o] of bad) t.equal(codeOf(() => new SpaceSaving(o as never)), 'invalid_option', name)
  const args: Array<[string, () => unknown]> = [
    ['key not a string', () => ss.add(1 as never, T0)],
    ['weight 0', () => ss.add('a', T0, 0)],
    ['weight NaN', () => ss.add('a', T0, NaN)],
    ['now NaN', () => ss.add('a', NaN)],
    ['top k -1', () => ss.top(-1, T0)],
    ['top now NaN', () => ss.top(1, NaN)],
    ['merge a non-summary', () => ss.merge({} as never)]
  ]
  for (const [name, fn] of args) t.equal(codeOf(fn), 'invalid_argument', name)
  const one = new SpaceSaving({ capacity: 2 })
  one.add('k', T0)
  const enc = one.encode() // 5 | 4 capacity | 8 window | 8 landmark | 4 n | 2+1 key | 8 count | 8 error
  const two = new SpaceSaving({ capacity: 2 })
  two.add('k', T0)
  two.add('j', T0)
  const patch = (at: number, bytes: Buffer): Buffer => { const b = Buffer.from(enc); bytes.copy(b, at); return b }
  const f64 = (v: number): Buffer => { const b = Buffer.alloc(8); b.writeDoubleLE(v); return b }
  const corrupt: Array<[string, Buffer]> = [
    ['truncated', enc.subarray(0, enc.length - 1)],
    ['trailing', Buffer.concat([enc, Buffer.from([0])])],
    ['magic', patch(0, Buffer.from('Q'))],
    ['capacity 0', patch(5, Buffer.from([0, 0, 0, 0]))],
    ['more keys than capacity', (() => { const b = two.encode(); b.writeUInt32LE(1, 5); return b })()],
    ['landmark NaN', patch(17, f64(NaN))],
    ['count negative', patch(32, f64(-1))],
    ['error above count', patch(40, f64(1e300))],
    ['key twice', Buffer.concat([patch(25, Buffer.from([2, 0, 0, 0])), enc.subarray(29)])]
  ]
  for (const [name, b] of corrupt) t.equal(codeOf(() => SpaceSaving.decode(b)), 'corrupt_state', name)
})

t.test('SlidingRate counts the last window', async (t) => {
  const r = new SlidingRate() // 60 s in 1 s buckets
  for (let ms = 0; ms < 120_000; ms += 10) r.add(T0 + ms) // 100/s for two minutes
  const end = T0 + 119_999
  t.ok(r.count(end) >= 5900 && r.count(end) <= 6000, `count ${r.count(end)}`)
  t.ok(near(r.perSecond(end), 100, 0.02), `${r.perSecond(end)}/s`)
  t.equal(r.count(end + 30_000), 3000, 'half a minute later: the newer half remains')
  t.equal(r.count(end + 61_000), 0, 'a minute of silence: nothing')
  r.add(end - 70_000, 5)
  t.equal(r.count(end), 6000, 'events older than the window are ignored')
  r.add(end - 30_000, 5)
  t.equal(r.count(end), 6005, 'late events inside the window count')
  r.add(end + 61_000, 2)
  t.equal(r.count(end + 61_000), 2, 'a jump past the window clears it')
  const fine = new SlidingRate({ windowMs: 1000, buckets: 10 })
  fine.add(T0, 3)
  fine.add(T0 + 950, 4)
  t.equal(fine.count(T0 + 999), 7)
  t.equal(fine.count(T0 + 1000), 4, 'the oldest bucket leaves first')
  const back = SlidingRate.decode(r.encode())
  t.equal(back.count(end + 61_000), 2)
  t.same(back.encode(), r.encode())
})

t.test('SlidingRate bad input', async (t) => {
  const bad: Array<[string, unknown]> = [
    ['windowMs 0', { windowMs: 0 }],
    ['buckets 0', { buckets: 0 }],
    ['buckets 3601', { buckets: 3601 }],
    ['buckets 1.5', { buckets: 1.5 }],
    ['unknown', { size: 1 }]
  ]
  for (const [name, o] of bad) t.equal(codeOf(() => new SlidingRate(o as never)), 'invalid_option', name)
  const r = new SlidingRate({ windowMs: 1000, buckets: 2 })
  t.equal(codeOf(() => r.add(NaN)), 'invalid_argument')
  t.equal(codeOf(() => r.add(T0, -1)), 'invalid_argument')
  t.equal(codeOf(() => r.count(-5)), 'invalid_argument')
  r.add(T0, 1)
  const enc = r.encode() // 5 | 8 window | 4 buckets | 8 head | 2 × 8
  const patch = (at: number, bytes: Buffer): Buffer => { const b = Buffer.from(enc); bytes.copy(b, at); return b }
  const f64 = (v: number): Buffer => { const b = Buffer.alloc(8); b.writeDoubleLE(v); return b }
  const corrupt: Array<[string, Buffer]> = [
    ['truncated', enc.subarray(0, enc.length - 1)],
    ['trailing', Buffer.concat([enc, Buffer.from([0])])],
    ['magic', patch(1, Buffer.from('Q'))],
    ['window 0', patch(5, f64(0))],
    ['buckets 0', patch(13, Buffer.from([0, 0, 0, 0]))],
    ['head fractional', patch(17, f64(1.5))],
    ['bucket negative', patch(25, f64(-2))],
    ['counts without head', patch(17, f64(-1))]
  ]
  for (const [name, b] of corrupt) t.equal(codeOf(() => SlidingRate.decode(b)), 'corrupt_state', name)
})
