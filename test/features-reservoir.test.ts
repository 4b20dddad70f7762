// Reservoir sampling: uniform inclusion (chi-square with fixed seeds, short and long streams),
// determinism, resuming from an encoding mid-stream, and bad input.
import t from 'tap'
import { CounterdError } from '../src/core/errors'
import { Reservoir } from '../actors/features/reservoir'

function codeOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    return err instanceof CounterdError ? err.code : `not a CounterdError: ${String(err)}`
  }
  return 'no error'
}

function chiSquare (observed: readonly number[], expected: number): number {
  let x = 0
  for (const o of observed) x += (o - expected) ** 2 / expected
  return x
}

// Upper 0.1% points of the chi-square distribution.
const CHI2_999 = { df19: 43.82, df99: 148.23 }

t.test('every position of a short stream is sampled equally often', async (t) => {
  const n = 100
  const size = 10
  const trials = 3000
  const hits = new Array<number>(n).fill(0)
  let wrongSize = 0
  for (let trial = 0; trial < trials; trial++) {
    const r = new Reservoir({ size, seed: trial + 1 })
    for (let i = 0; i < n; i++) r.add(String(i))
    const s = r.sample()
    if (s.length !== size) wrongSize++
    for (const x of s) hits[Number(x)]++
  }
  t.equal(wrongSize, 0, 'every sample is full')
  const x2 = chiSquare(hits, trials * size / n)
  t.ok(x2 < CHI2_999.df99, `chi-square ${x2.toFixed(1)} < ${CHI2_999.df99} (99 df)`)
  // The statistic does catch a biased sampler: keeping the first `size` positions is rejected.
  const firstOnly = new Array<number>(n).fill(0)
  for (let i = 0; i < size; i++) firstOnly[i] = trials
  t.ok(chiSquare(firstOnly, trials * size / n) > CHI2_999.df99, 'a keep-the-first sampler fails the same test')
})

t.test('long streams (the skip path) stay uniform', async (t) => {
  const n = 20_000
  const size = 20
  const trials = 400
  const buckets = new Array<number>(20).fill(0)
  let distinctWithinTrial = true
  for (let trial = 0; trial < trials; trial++) {
    const r = new Reservoir({ size, seed: 1000 + trial })
    for (let i = 0; i < n; i++) r.add(String(i))
    const s = r.sample()
    if (new Set(s).size !== size) distinctWithinTrial = false
    for (const x of s) buckets[Math.floor(Number(x) / (n / 20))]++
  }
  t.ok(distinctWithinTrial, 'a position is never sampled twice')
  const x2 = chiSquare(buckets, trials * size / 20)
  t.ok(x2 < CHI2_999.df19, `chi-square ${x2.toFixed(1)} < ${CHI2_999.df19} (19 df)`)
})

t.test('seeded: the same seed gives the same sample, another seed another', async (t) => {
  const run = (seed: number): string[] => {
    const r = new Reservoir({ size: 5, seed })
    for (let i = 0; i < 1000; i++) r.add(`user-${i}`)
    return r.sample()
  }
  t.same(run(9), run(9))
  t.not(run(9).join(), run(10).join())
  const few = new Reservoir({ size: 5 })
  few.add('a')
  few.add('b')
  t.same(few.sample(), ['a', 'b'], 'fewer adds than size: all of them')
  t.equal(few.seen, 2)
})

t.test('encode/decode mid-stream resumes exactly', async (t) => {
  for (const cut of [0, 3, 8, 500, 4999]) {
    const whole = new Reservoir({ size: 8, seed: 77 })
    const first = new Reservoir({ size: 8, seed: 77 })
    for (let i = 0; i < cut; i++) { whole.add(`a${i}`); first.add(`a${i}`) }
    const resumed = Reservoir.decode(first.encode())
    t.same(resumed.sample(), first.sample(), `cut ${cut}: sample survives`)
    t.equal(resumed.seen, cut)
    for (let i = cut; i < 5000; i++) { whole.add(`a${i}`); resumed.add(`a${i}`) }
    t.same(resumed.sample(), whole.sample(), `cut ${cut}: later choices are the same`)
    t.same(resumed.encode(), whole.encode(), `cut ${cut}: same state bytes`)
  }
  const r = new Reservoir({ size: 2, seed: 3 })
  r.add('ü-ser')
  t.same(Reservoir.decode(r.encode()).sample(), ['ü-ser'], 'non-ASCII actors')
})

t.test('bad options, arguments and encodings', async (t) => {
  const bad: Array<[string, unknown]> = [
    ['size 0', { size: 0 }],
    ['size 10001', { size: 10_001 }],
    ['size 2.5', { size: 2.5 }],
    ['seed -1', { seed: -1 }],
    ['seed 2^32', { seed: 2 ** 32 }],
    ['seed string', { seed: 'x' }],
    ['unknown key', { k: 3 }]
  ]
  for (const [name, o] of bad) t.equal(codeOf(() => new Reservoir(o as never)), 'invalid_option', name)
  t.equal(codeOf(() => new Reservoir().add(5 as never)), 'invalid_argument')
  t.equal(codeOf(() => new Reservoir().add('x'.repeat(1025))), 'invalid_argument')

  const r = new Reservoir({ size: 2, seed: 5 })
  for (let i = 0; i < 10; i++) r.add(`u${i}`)
  const enc = r.encode() // 5 magic+version | 4 size | 8 n | 8 next | 8 w | 16 prng | 4 k | items
  const patch = (at: number, bytes: Buffer): Buffer => { const b = Buffer.from(enc); bytes.copy(b, at); return b }
  const f64 = (v: number): Buffer => { const b = Buffer.alloc(8); b.writeDoubleLE(v); return b }
  const corrupt: Array<[string, Buffer]> = [
    ['truncated', enc.subarray(0, enc.length - 1)],
    ['trailing', Buffer.concat([enc, Buffer.from([1])])],
    ['magic', patch(0, Buffer.from('X'))],
    ['size 0', patch(5, Buffer.from([0, 0, 0, 0]))],
    ['seen NaN', patch(9, f64(NaN))],
    ['seen fractional', patch(9, f64(2.5))],
    ['w above 1', patch(25, f64(1.5))],
    ['item count not matching seen', patch(9, f64(1))],
    ['next inside the initial fill', patch(17, f64(0))]
  ]
  for (const [name, b] of corrupt) t.equal(codeOf(() => Reservoir.decode(b)), 'corrupt_state', name)
})
