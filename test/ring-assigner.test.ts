// The leader's partition → member assignment (cluster/assigner.ts): consistent hashing over
// `hashring` with bounded loads. Everything here is deterministic (md5 over fixed ids and keys), so
// the figures asserted are exact measurements, not probabilities: they cannot flake, and a change
// to them means the assignment itself changed (which every node of a cluster must agree on).
import t from 'tap'
import { assignPartitions, moved } from '../cluster/assigner'
import { CounterdError } from '../src/core/errors'

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `node-${i}`)

function loads (owners: readonly string[]): Map<string, number> {
  const m = new Map<string, number>()
  for (const o of owners) m.set(o, (m.get(o) ?? 0) + 1)
  return m
}

// A 100-member ring costs ~0.15 s to build (hashring md5s every vnode), so the big cases share
// their assignments. Determinism is tested on fresh calls.
const memo = new Map<string, string[]>()
function assign (members: readonly string[], P: number, maxLoadFactor?: number): string[] {
  const key = JSON.stringify([members, P, maxLoadFactor])
  let a = memo.get(key)
  if (a === undefined) {
    a = assignPartitions(members, P, maxLoadFactor === undefined ? {} : { maxLoadFactor })
    memo.set(key, a)
  }
  return a
}

// The pure ring owner of each partition: a load factor of N makes the cap P, so nothing is bounced.
const ringOwners = (members: readonly string[], P: number): string[] => assign(members, P, members.length)

// ceil(P/N × 1.25): 1.25 is exact in binary, so this plain formula is the true bound.
const cap = (P: number, N: number): number => Math.ceil(P * 1.25 / N)

t.test('fixed vectors: the assignment is a contract between leader versions', async (t) => {
  // Changing the key scheme, the ring names, the vnode count or the hashring version changes these.
  const a = assignPartitions(['node-0', 'node-1', 'node-2'], 64)
  t.same(a.slice(0, 12), ['node-0', 'node-0', 'node-2', 'node-2', 'node-0', 'node-2', 'node-1', 'node-2', 'node-0', 'node-0', 'node-1', 'node-0'])
  t.same(Object.fromEntries(loads(a)), { 'node-0': 23, 'node-1': 17, 'node-2': 24 })
})

t.test('deterministic, order-independent, complete, only the given ids', async (t) => {
  const cases: Array<[string, string[], number]> = [
    ['3 members, P=64', ['a', 'b', 'c'], 64],
    ['10 members, P=640', ids(10), 640],
    ['odd ids (__proto__, colons, unicode), P=97', ['__proto__', 'constructor', 'host:7000', 'é', 'x-1', 'x'], 97],
    ['100 members, P=6400', ids(100), 6400]
  ]
  for (const [name, members, P] of cases) {
    const a = assign(members, P)
    t.same(assignPartitions(members, P), a, `${name}: same answer twice`)
    t.same(assignPartitions([...members].reverse(), P), a, `${name}: same answer for the ids reversed`)
    const rotated = [...members.slice(1), members[0]]
    t.same(assignPartitions(rotated, P), a, `${name}: same answer for the ids rotated`)
    t.equal(a.length, P, `${name}: one owner per partition`)
    t.ok(a.every((o) => members.includes(o)), `${name}: every owner is a given id`)
    // Every member gets some partitions here (P/N ≥ 16): in particular "__proto__" is on the ring.
    t.equal(loads(a).size, members.length, `${name}: every member owns partitions`)
  }
})

t.test('one member gets every partition', async (t) => {
  for (const P of [1, 64, 1000]) t.same(assignPartitions(['solo'], P), new Array(P).fill('solo'), `P=${P}`)
})

t.test('bounded loads: no member above ceil(P/N × factor); a partition leaves its ring owner only when that owner is full', async (t) => {
  const cases: Array<[number, number, number, number]> = [
    // [N, P, factor, ceil(P/N × factor) worked out by hand]
    [2, 64, 1.25, 40], [3, 64, 1.25, 27], [7, 64, 1.25, 12], [7, 64, 1, 10], [4, 64, 1, 16],
    [10, 1000, 1.1, 110],
    [10, 100, 1.1, 11], // in floating point 100 × 1.1 / 10 = 11.000000000000002: the cap is still 11
    [100, 64, 1.25, 1], // P < N: cap 1, so 64 members own one partition each
    [3, 1, 1.25, 1], [50, 5000, 1, 100]
  ]
  for (const [N, P, factor, c] of cases) {
    const members = ids(N)
    const a = assignPartitions(members, P, { maxLoadFactor: factor })
    const ring = ringOwners(members, P)
    const l = loads(a)
    const max = Math.max(...l.values())
    t.ok(max <= c, `N=${N} P=${P} factor=${factor}: max load ${max} <= cap ${c}`)
    const bounced = a.filter((o, p) => o !== ring[p]).length
    // A full owner is one at the cap: that some owners are at exactly c shows the cap is not c + 1.
    t.ok(a.every((o, p) => o === ring[p] || l.get(ring[p]) === c), `N=${N} P=${P} factor=${factor}: ${bounced} partitions off their ring owner, each because it was full`)
  }
  // Factor 1 with P divisible by N is a perfect split.
  t.same([...loads(assignPartitions(ids(4), 64, { maxLoadFactor: 1 })).values()], [16, 16, 16, 16], 'N=4 P=64 factor=1: 16 each')
})

t.test('100 members: balance', async (t) => {
  // P=6400 is also 64 × 100. Mean 64 (6400) or 256 (25600); the cap is 1.25 × mean exactly.
  const cases: Array<[number, { maxRing: number, max: number, min: number, bounced: number }]> = [
    [6400, { maxRing: 83, max: 80, min: 44, bounced: 4 }],
    [25600, { maxRing: 334, max: 320, min: 208, bounced: 14 }]
  ]
  for (const [P, want] of cases) {
    const members = ids(100)
    const a = assign(members, P)
    const ring = ringOwners(members, P)
    const mean = P / 100
    const l = [...loads(a).values()]
    const max = Math.max(...l)
    const min = l.length < 100 ? 0 : Math.min(...l)
    const maxRing = Math.max(...loads(ring).values())
    const bounced = a.filter((o, p) => o !== ring[p]).length
    t.ok(max / mean <= 1.25, `P=${P}: max/mean ${(max / mean).toFixed(3)} (max ${max}, min ${min}, mean ${mean}); the bare ring had max/mean ${(maxRing / mean).toFixed(3)}; ${bounced} partitions bounced off a full ring owner`)
    t.same({ maxRing, max, min, bounced }, want, `P=${P}: measured figures`)
  }
})

// With bounded loads a join is not a pure ring join: the new member takes its arcs (≈ P/(N+1)),
// which frees room in their old owners, so a few partitions that had bounced off a full owner go
// back to it ("home"); and the cap itself can shrink with N+1, bouncing a few others ("other").
t.test('100 members: a 101st joins', async (t) => {
  const cases: Array<[number, { moved: number, toNew: number, home: number, other: number }]> = [
    [6400, { moved: 64, toNew: 63, home: 1, other: 0 }],
    [25600, { moved: 239, toNew: 237, home: 2, other: 0 }]
  ]
  for (const [P, want] of cases) {
    const before = assign(ids(100), P)
    const members = [...ids(100), 'node-new']
    const after = assign(members, P)
    const ring = ringOwners(members, P)
    const fair = P / 101
    let toNew = 0; let home = 0; let other = 0
    for (let p = 0; p < P; p++) {
      if (before[p] === after[p]) continue
      if (after[p] === 'node-new') toNew++
      else if (after[p] === ring[p]) home++
      else other++
    }
    const m = moved(before, after)
    t.ok(m <= 1.5 * fair, `P=${P}: ${m} moved = ${(m / fair).toFixed(2)} × P/(N+1) (${fair.toFixed(1)}), <= 1.5 ×`)
    t.ok(toNew >= 0.95 * m, `P=${P}: ${toNew} of them to the new member, ${home} back to their ring owner, ${other} elsewhere`)
    t.same({ moved: m, toNew, home, other }, want, `P=${P}: measured figures`)
  }
})

t.test('100 members: one leaves', async (t) => {
  const cases: Array<[number, string, { moved: number, owned: number, extra: number }]> = [
    [6400, 'node-37', { moved: 62, owned: 61, extra: 1 }],
    [25600, 'node-0', { moved: 256, owned: 254, extra: 2 }]
  ]
  for (const [P, leaver, want] of cases) {
    const before = assign(ids(100), P)
    const after = assign(ids(100).filter((id) => id !== leaver), P)
    const owned = before.filter((o) => o === leaver).length
    const m = moved(before, after)
    const extra = m - owned
    t.ok(before.every((o, p) => o !== leaver || after[p] !== leaver), `P=${P}: all ${owned} partitions of ${leaver} moved`)
    // The cap grows with N-1 and the leaver's arcs go to its ring successors, so a few partitions
    // that had bounced may return home; nothing else has a reason to move.
    t.ok(extra <= 0.1 * P / 100, `P=${P}: ${m} moved, ${extra} besides the leaver's ${owned} (<= 10% of P/N)`)
    t.same({ moved: m, owned, extra }, want, `P=${P}: measured figures`)
  }
})

t.test('P=64 with 2, 3, 4 members', async (t) => {
  const cases: Array<[number, number[]]> = [[2, [37, 27]], [3, [23, 17, 24]], [4, [17, 14, 17, 16]]]
  const byN = new Map<number, string[]>()
  for (const [N, want] of cases) {
    const a = assignPartitions(ids(N), 64)
    byN.set(N, a)
    const l = ids(N).map((id) => loads(a).get(id) ?? 0)
    t.ok(Math.max(...l) <= cap(64, N), `N=${N}: loads ${l.join(' ')}, cap ${cap(64, N)}`)
    t.same(l, want, `N=${N}: measured loads`)
  }
  const m34 = moved(byN.get(3) as string[], byN.get(4) as string[])
  t.ok(m34 >= 0.5 * 16 && m34 <= 1.5 * 16, `3 → 4 members moves ${m34} of 64 (1/4 would be 16)`)
  t.equal(m34, 16, '3 → 4: measured')
  const m23 = moved(byN.get(2) as string[], byN.get(3) as string[])
  t.equal(m23, 24, `2 → 3 members moves ${m23} of 64 (1/3 would be 21.3)`)
})

t.test('vnodes option: every positive count works and keeps the cap', async (t) => {
  for (const vnodes of [1, 40, 500]) {
    const a = assignPartitions(ids(10), 640, { vnodes })
    const max = Math.max(...loads(a).values())
    t.ok(max <= cap(640, 10), `vnodes=${vnodes}: max load ${max} <= ${cap(640, 10)}`)
  }
  t.not(moved(assignPartitions(ids(10), 640, { vnodes: 40 }), assignPartitions(ids(10), 640)), 0, 'the vnode count is part of the assignment')
})

t.test('invalid input: code invalid_option and an exact message', async (t) => {
  const cases: Array<[string, () => unknown, string]> = [
    ['no ids', () => assignPartitions([], 64), 'memberIds must be a non-empty array of member ids'],
    ['not an array', () => assignPartitions('a' as unknown as string[], 64), 'memberIds must be a non-empty array of member ids'],
    ['empty id', () => assignPartitions(['a', ''], 64), 'memberIds must be non-empty strings, got ""'],
    ['non-string id', () => assignPartitions(['a', 7 as unknown as string], 64), 'memberIds must be non-empty strings, got 7'],
    ['duplicate id', () => assignPartitions(['a', 'b', 'a'], 64), 'memberIds must be unique, got "a" twice'],
    ['partitions 0', () => assignPartitions(['a'], 0), 'partitions must be a positive integer, got 0'],
    ['partitions negative', () => assignPartitions(['a'], -64), 'partitions must be a positive integer, got -64'],
    ['partitions 1.5', () => assignPartitions(['a'], 1.5), 'partitions must be a positive integer, got 1.5'],
    ['partitions NaN', () => assignPartitions(['a'], NaN), 'partitions must be a positive integer, got null'],
    ['vnodes 0', () => assignPartitions(['a'], 64, { vnodes: 0 }), 'vnodes must be a positive integer, got 0'],
    ['vnodes 2.5', () => assignPartitions(['a'], 64, { vnodes: 2.5 }), 'vnodes must be a positive integer, got 2.5'],
    ['maxLoadFactor 0.99', () => assignPartitions(['a'], 64, { maxLoadFactor: 0.99 }), 'maxLoadFactor must be a finite number >= 1, got 0.99'],
    ['maxLoadFactor 0', () => assignPartitions(['a'], 64, { maxLoadFactor: 0 }), 'maxLoadFactor must be a finite number >= 1, got 0'],
    ['maxLoadFactor Infinity', () => assignPartitions(['a'], 64, { maxLoadFactor: Infinity }), 'maxLoadFactor must be a finite number >= 1, got null'],
    ['maxLoadFactor NaN', () => assignPartitions(['a'], 64, { maxLoadFactor: NaN }), 'maxLoadFactor must be a finite number >= 1, got null']
  ]
  for (const [name, fn, message] of cases) {
    try {
      fn()
      t.fail(`${name}: did not throw`)
    } catch (err) {
      t.ok(err instanceof CounterdError, `${name}: a CounterdError`)
      t.same({ code: (err as CounterdError).code, message: (err as Error).message }, { code: 'invalid_option', message }, name)
    }
  }
  t.doesNotThrow(() => assignPartitions(['a'], 64, { maxLoadFactor: 1 }), 'maxLoadFactor 1 is allowed')
})

t.test('moved', async (t) => {
  const cases: Array<[string[], string[], number]> = [
    [[], [], 0],
    [['a', 'b', 'c'], ['a', 'b', 'c'], 0],
    [['a', 'b', 'c'], ['a', 'c', 'c'], 1],
    [['a', 'b', 'c'], ['c', 'a', 'b'], 3],
    [['a', 'a', 'a', 'a'], ['a', 'b', 'a', 'b'], 2]
  ]
  for (const [before, after, want] of cases) t.equal(moved(before, after), want, `${before.join('')} → ${after.join('')}`)
  try {
    moved(['a'], ['a', 'b'])
    t.fail('did not throw')
  } catch (err) {
    t.same({ code: (err as CounterdError).code, message: (err as Error).message },
      { code: 'invalid_argument', message: 'before and after must be the same length, got 1 and 2' })
  }
})
