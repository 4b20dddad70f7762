// PN-counter CRDT: local increments, record application, the merge laws on random states, and a
// property test: replicas that receive each other's records late, twice, out of order and relayed
// all converge on the true sum.
import t from 'tap'
import { CounterdError } from '../src/core/errors'
import { PNCounter, type PNRecord } from '../actors/features/pn-counter'
import { Prng } from '../actors/features/prng'

function codeOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    return err instanceof CounterdError ? err.code : `not a CounterdError: ${String(err)}`
  }
  return 'no error'
}

function shuffle<T> (rng: Prng, a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.below(i + 1)
    const x = a[i]
    a[i] = a[j]
    a[j] = x
  }
  return a
}

function copy (c: PNCounter): PNCounter {
  return PNCounter.decode(c.encode())
}

function randomCounter (rng: Prng, own: string): PNCounter {
  const c = new PNCounter({ replica: own })
  const ids = ['eu', 'us', 'ap', 'sa']
  for (let k = rng.below(6); k > 0; k--) c.apply(ids[rng.below(4)], rng.below(1000), rng.below(1000))
  return c
}

t.test('local increments and decrements', async (t) => {
  const c = new PNCounter({ replica: 'eu-1' })
  t.equal(c.value, 0)
  t.equal(c.increment(5), 5)
  t.equal(c.increment(-8), -3)
  t.equal(c.increment(0), -3)
  t.same(c.record(), { replica: 'eu-1', p: 5, n: 8 })
  t.equal(c.apply('us-1', 10, 1), true)
  t.equal(c.value, 6)
  t.equal(c.apply('us-1', 10, 1), false, 'the same record again changes nothing')
  t.equal(c.apply('us-1', 7, 0), false, 'an older record changes nothing')
  t.equal(c.apply('us-1', 12, 1), true)
  t.equal(c.value, 8)
  t.same(c.entries(), [{ replica: 'eu-1', p: 5, n: 8 }, { replica: 'us-1', p: 12, n: 1 }])
  t.same(c.entry('nobody'), { replica: 'nobody', p: 0, n: 0 })
  t.equal(c.apply('zz', 0, 0), false, 'an all-zero record adds no entry')
  t.equal(c.replicas, 2)
})

t.test('merge is idempotent, commutative and associative (random states)', async (t) => {
  const rng = new Prng(2024)
  let broken = 0
  for (let i = 0; i < 2000; i++) {
    const a = randomCounter(rng, 'eu')
    const b = randomCounter(rng, 'us')
    const c = randomCounter(rng, 'ap')
    const aa = copy(a)
    aa.merge(a)
    if (JSON.stringify(aa.entries()) !== JSON.stringify(a.entries())) broken++
    const ab = copy(a)
    ab.merge(b)
    const ba = copy(b)
    ba.merge(a)
    if (JSON.stringify(ab.entries()) !== JSON.stringify(ba.entries()) || ab.value !== ba.value) broken++
    const left = copy(a)
    left.merge(b)
    left.merge(c)
    const bc = copy(b)
    bc.merge(c)
    const right = copy(a)
    right.merge(bc)
    if (JSON.stringify(left.entries()) !== JSON.stringify(right.entries()) || left.value !== right.value) broken++
  }
  t.equal(broken, 0)
})

t.test('property: replicas fed each other\'s records in any order, with duplicates, converge', async (t) => {
  const rng = new Prng(99)
  const names = ['eu', 'us', 'ap']
  let diverged = 0
  let wrongValue = 0
  let checked = 0
  for (let iter = 0; iter < 1500; iter++) {
    const reps = names.map(replica => new PNCounter({ replica }))
    const outbox: PNRecord[][] = names.map(() => [])
    let truth = 0
    const ops = 5 + rng.below(60)
    for (let k = 0; k < ops; k++) {
      const r = rng.below(reps.length)
      const by = rng.below(201) - 100
      reps[r].increment(by)
      truth += by
      outbox[r].push(reps[r].record())
      const roll = rng.below(10)
      if (roll === 0) { // some records arrive early, possibly more than once
        const to = rng.below(reps.length)
        const from = outbox[rng.below(reps.length)]
        if (from.length > 0) {
          const rec = from[rng.below(from.length)]
          reps[to].apply(rec.replica, rec.p, rec.n)
        }
      } else if (roll === 1) { // a whole state relayed through another replica
        reps[rng.below(reps.length)].merge(reps[rng.below(reps.length)])
      }
    }
    // Final delivery: every record to every other replica, shuffled, each 1 to 3 times.
    for (let to = 0; to < reps.length; to++) {
      const inbox: PNRecord[] = []
      for (let from = 0; from < reps.length; from++) {
        if (from === to) continue
        for (const rec of outbox[from]) for (let d = 1 + rng.below(3); d > 0; d--) inbox.push(rec)
      }
      for (const rec of shuffle(rng, inbox)) reps[to].apply(rec.replica, rec.p, rec.n)
    }
    const first = JSON.stringify(reps[0].entries())
    for (const r of reps) {
      if (JSON.stringify(r.entries()) !== first) diverged++
      if (r.value !== truth) wrongValue++
      checked++
    }
  }
  t.equal(checked, 4500)
  t.equal(diverged, 0, 'every replica ends with the same state')
  t.equal(wrongValue, 0, 'and the value is the sum of every increment anywhere')
})

t.test('range limits', async (t) => {
  const c = new PNCounter({ replica: 'a' })
  c.increment(Number.MAX_SAFE_INTEGER)
  t.equal(codeOf(() => c.increment(1)), 'value_out_of_range')
  t.equal(c.value, Number.MAX_SAFE_INTEGER, 'a refused increment changes nothing')
  t.equal(codeOf(() => c.increment(-1)), 'no error', 'decrements still work')
  t.equal(codeOf(() => c.increment(2 ** 53)), 'invalid_delta')
  t.equal(codeOf(() => c.increment(1.5)), 'invalid_delta')
  t.equal(codeOf(() => c.increment(NaN)), 'invalid_delta')
  const d = new PNCounter({ replica: 'a' })
  d.increment(Number.MAX_SAFE_INTEGER)
  d.increment(-Number.MAX_SAFE_INTEGER)
  t.equal(codeOf(() => d.increment(1)), 'value_out_of_range', 'P itself cannot pass 2^53-1')
})

t.test('encode/decode and bad input', async (t) => {
  const c = new PNCounter({ replica: 'eu' })
  c.increment(42)
  c.increment(-2)
  c.apply('us', 7, 3)
  const back = PNCounter.decode(c.encode())
  t.equal(back.replica, 'eu')
  t.equal(back.value, 44)
  t.same(back.entries(), c.entries())
  t.same(back.encode(), c.encode())
  t.equal(PNCounter.decode(new PNCounter({ replica: 'x' }).encode()).value, 0)

  const bad: Array<[string, unknown]> = [
    ['missing options', undefined],
    ['no replica', {}],
    ['empty replica', { replica: '' }],
    ['replica with a space', { replica: 'eu 1' }],
    ['replica too long', { replica: 'r'.repeat(65) }],
    ['replica not a string', { replica: 5 }],
    ['unknown key', { replica: 'eu', region: 'x' }]
  ]
  for (const [name, o] of bad) t.equal(codeOf(() => new PNCounter(o as never)), 'invalid_option', name)
  const args: Array<[string, () => unknown]> = [
    ['apply bad replica', () => c.apply('a b', 1, 1)],
    ['apply negative p', () => c.apply('us', -1, 0)],
    ['apply fractional n', () => c.apply('us', 1, 0.5)],
    ['apply unsafe p', () => c.apply('us', 2 ** 53, 0)],
    ['merge non-counter', () => c.merge({} as never)]
  ]
  for (const [name, fn] of args) t.equal(codeOf(fn), 'invalid_argument', name)

  const enc = c.encode() // 0 magic | 5 'eu' | 9 count | 11 'eu', 15 p, 23 n | 31 'us', 35 p, 43 n
  const patch = (at: number, bytes: Buffer): Buffer => { const b = Buffer.from(enc); bytes.copy(b, at); return b }
  const f64 = (v: number): Buffer => { const b = Buffer.alloc(8); b.writeDoubleLE(v); return b }
  const corrupt: Array<[string, Buffer]> = [
    ['truncated', enc.subarray(0, enc.length - 1)],
    ['trailing', Buffer.concat([enc, Buffer.from([0])])],
    ['magic', patch(0, Buffer.from('X'))],
    ['bad own id', patch(7, Buffer.from(' '))],
    ['bad replica id', patch(13, Buffer.from(' '))],
    ['negative p', patch(15, f64(-1))],
    ['fractional n', patch(23, f64(0.5))],
    ['p beyond 2^53', patch(15, f64(2 ** 54))],
    ['replica twice', patch(33, Buffer.from('eu'))]
  ]
  for (const [name, b] of corrupt) t.equal(codeOf(() => PNCounter.decode(b)), 'corrupt_state', name)
})
