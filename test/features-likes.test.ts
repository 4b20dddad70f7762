// Likes: the 64-bit hash table against a Map model (with deletions and growth), the blocked
// Bloom filter (no false negatives, a bounded false-positive rate), and the LikeSet itself:
// exact counts under random like/unlike sequences, the filter answering misses, encode/decode.
import t from 'tap'
import { CounterdError } from '../src/core/errors'
import { BloomFilter } from '../actors/features/bloom'
import { HashTable64 } from '../actors/features/hash-table64'
import { LikeSet } from '../actors/features/like-set'
import { Prng } from '../actors/features/prng'

function codeOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    return err instanceof CounterdError ? err.code : `not a CounterdError: ${String(err)}`
  }
  return 'no error'
}

t.test('HashTable64 agrees with a Map through inserts, deletes and growth', async (t) => {
  const rng = new Prng(1)
  const table = new HashTable64(true, 4)
  const model = new Map<string, number>()
  // A small key space (with the all-zero key) so that keys repeat and get deleted; half the keys
  // share a few home slots so that probe runs wrap around the end and deletions shift entries.
  const keys: Array<[number, number]> = [[0, 0], [1, 0], [0xffffffff, 0xffffffff]]
  for (let i = 0; i < 300; i++) keys.push([rng.u32(), i % 2 === 0 ? rng.u32() : 0xffffff00 + (i % 5)])
  let mismatches = 0
  for (let step = 0; step < 30_000; step++) {
    const [lo, hi] = keys[rng.below(keys.length)]
    const k = `${lo}:${hi}`
    const op = rng.below(3)
    if (op === 0) {
      const added = table.add(lo, hi)
      if (added !== !model.has(k)) mismatches++
      if (added) model.set(k, 0)
    } else if (op === 1) {
      const removed = table.delete(lo, hi)
      if (removed !== model.has(k)) mismatches++
      model.delete(k)
    } else {
      const v = table.adjust(lo, hi, 1)
      if (v !== (model.get(k) ?? 0) + 1) mismatches++
      model.set(k, v)
    }
    if (step % 97 === 0) {
      for (const [klo, khi] of keys) {
        if (table.has(klo, khi) !== model.has(`${klo}:${khi}`)) mismatches++
        if (table.get(klo, khi) !== (model.get(`${klo}:${khi}`) ?? 0)) mismatches++
      }
    }
  }
  t.equal(mismatches, 0, 'every answer matches the model')
  t.equal(table.size, model.size)
  t.ok(table.size <= table.capacity * 0.85, 'load stays at most 0.85')
  let used = 0
  for (let s = 0; s < table.capacity; s++) if (table.isUsed(s)) used++
  t.equal(used, table.size, 'slots in use equal size')

  const counts = new HashTable64(true)
  t.equal(counts.adjust(5, 6, 2), 2)
  t.equal(counts.adjust(5, 6, -2), 0, 'a count reaching 0 removes the key')
  t.equal(counts.has(5, 6), false)
  t.equal(codeOf(() => counts.adjust(5, 6, -1)), 'value_out_of_range')
  t.equal(codeOf(() => new HashTable64(false, 2)), 'invalid_option')
})

t.test('BloomFilter: never a false negative, false positives near the design rate', async (t) => {
  const f = new BloomFilter({ capacity: 20_000, bitsPerItem: 10 })
  t.equal(f.hashes, 7)
  for (let i = 0; i < 20_000; i++) f.add(`in-${i}`)
  let falseNegatives = 0
  for (let i = 0; i < 20_000; i++) if (!f.mayContain(`in-${i}`)) falseNegatives++
  t.equal(falseNegatives, 0)
  let fp = 0
  for (let i = 0; i < 100_000; i++) if (f.mayContain(`out-${i}`)) fp++
  t.ok(fp / 100_000 < 0.02, `false-positive rate ${(fp / 1000).toFixed(2)}% under 2%`)
  t.ok(fp > 0, 'and not suspiciously zero')
  t.ok(f.fillRatio() > 0.4 && f.fillRatio() < 0.6, `about half the bits set (${f.fillRatio().toFixed(3)})`)

  const back = BloomFilter.decode(f.encode())
  t.equal(back.bits, f.bits)
  t.equal(back.hashes, f.hashes)
  t.same(back.encode(), f.encode(), 'round trip keeps every bit')
  let agree = 0
  for (let i = 0; i < 1000; i++) if (back.mayContain(`x-${i}`) === f.mayContain(`x-${i}`)) agree++
  t.equal(agree, 1000)
  f.clear()
  t.equal(f.mayContain('in-1'), false, 'clear empties it')

  const bad: Array<[string, unknown]> = [
    ['capacity 0', { capacity: 0 }],
    ['capacity 1.5', { capacity: 1.5 }],
    ['bitsPerItem 0', { bitsPerItem: 0 }],
    ['bitsPerItem 65', { bitsPerItem: 65 }],
    ['hashes 0', { hashes: 0 }],
    ['hashes 17', { hashes: 17 }],
    ['too many bits', { capacity: 2 ** 31, bitsPerItem: 64 }],
    ['unknown option', { size: 5 }]
  ]
  for (const [name, o] of bad) t.equal(codeOf(() => new BloomFilter(o as never)), 'invalid_option', name)
  t.equal(codeOf(() => f.add(1 as never)), 'invalid_argument')
  const good = new BloomFilter({ capacity: 100 }).encode()
  const corrupt: Array<[string, Buffer]> = [
    ['truncated', good.subarray(0, good.length - 1)],
    ['trailing', Buffer.concat([good, Buffer.from([0])])],
    ['magic', Buffer.concat([Buffer.from('XBLM'), good.subarray(4)])],
    ['version', Buffer.concat([good.subarray(0, 4), Buffer.from([9]), good.subarray(5)])],
    ['zero blocks', Buffer.concat([good.subarray(0, 5), Buffer.from([0, 0, 0, 0]), good.subarray(9)])],
    ['huge block count', Buffer.concat([good.subarray(0, 5), Buffer.from([0xff, 0xff, 0xff, 0x00]), good.subarray(9)])],
    ['zero hashes', Buffer.concat([good.subarray(0, 9), Buffer.from([0]), good.subarray(10)])]
  ]
  for (const [name, buf] of corrupt) t.equal(codeOf(() => BloomFilter.decode(buf)), 'corrupt_state', name)
})

t.test('LikeSet keeps exact counts under random like/unlike traffic', async (t) => {
  const rng = new Prng(7)
  const set = new LikeSet({ initialCapacity: 16 })
  const model = new Map<string, Set<string>>()
  let wrong = 0
  for (let step = 0; step < 40_000; step++) {
    const item = `post:${rng.below(300)}`
    const user = `u${rng.below(400)}`
    const liked = model.get(item)?.has(user) ?? false
    if (rng.below(3) === 0) {
      if (set.unlike(item, user) !== liked) wrong++
      model.get(item)?.delete(user)
    } else {
      if (set.like(item, user) !== !liked) wrong++
      if (!model.has(item)) model.set(item, new Set())
      model.get(item)?.add(user)
    }
  }
  t.equal(wrong, 0, 'like/unlike report exactly whether they changed anything')
  let total = 0
  let itemsWithLikes = 0
  for (let i = 0; i < 300; i++) {
    const n = model.get(`post:${i}`)?.size ?? 0
    if (set.count(`post:${i}`) !== n) wrong++
    total += n
    if (n > 0) itemsWithLikes++
  }
  t.equal(wrong, 0, 'every count is exact')
  t.equal(set.size, total)
  t.equal(set.items, itemsWithLikes)
  for (let i = 0; i < 300; i++) {
    for (let u = 0; u < 400; u += 7) {
      if (set.hasLiked(`post:${i}`, `u${u}`) !== (model.get(`post:${i}`)?.has(`u${u}`) ?? false)) wrong++
    }
  }
  t.equal(wrong, 0, 'has-liked agrees everywhere')
  t.equal(set.count('never:1'), 0)
  t.equal(set.like('post:1', 'ü-ünicode'), true, 'non-ASCII ids work')
  t.equal(set.hasLiked('post:1', 'ü-ünicode'), true)
  t.equal(set.hasLiked('post:1', 'u-unicode'), false)
})

t.test('the Bloom filter answers most has-liked misses alone', async (t) => {
  const set = new LikeSet()
  for (let i = 0; i < 50_000; i++) set.like(`post:${i % 1000}`, `user-${i}`)
  const before = set.stats()
  let misses = 0
  for (let i = 0; i < 50_000; i++) if (!set.hasLiked(`post:${i % 1000}`, `stranger-${i}`)) misses++
  const after = set.stats()
  t.equal(misses, 50_000, 'strangers liked nothing')
  const byBloom = after.bloomNegatives - before.bloomNegatives
  t.ok(byBloom / misses > 0.95, `${(100 * byBloom / misses).toFixed(1)}% answered without the table`)
  t.equal(after.tableLookups - before.tableLookups, misses - byBloom, 'the rest probed the table')
  // Unliked pairs stay correct although their filter bits stay set until the next rebuild.
  for (let i = 0; i < 2000; i++) set.unlike(`post:${i % 1000}`, `user-${i}`)
  let stillLiked = 0
  for (let i = 0; i < 2000; i++) if (set.hasLiked(`post:${i % 1000}`, `user-${i}`)) stillLiked++
  t.equal(stillLiked, 0)
  t.ok(after.bytes / set.size < 24, `typed arrays: ${(after.bytes / 50_000).toFixed(1)} bytes a like at 50k`)
})

t.test('LikeSet encode/decode round trip and corrupt input', async (t) => {
  const set = new LikeSet()
  for (let i = 0; i < 5000; i++) set.like(`post:${i % 97}`, `user-${i % 611}`)
  for (let i = 0; i < 500; i++) set.unlike(`post:${i % 97}`, `user-${i % 611}`)
  const buf = set.encode()
  const back = LikeSet.decode(buf)
  t.equal(back.size, set.size)
  t.equal(back.items, set.items)
  let wrong = 0
  for (let i = 0; i < 97; i++) if (back.count(`post:${i}`) !== set.count(`post:${i}`)) wrong++
  for (let i = 0; i < 5000; i++) {
    if (back.hasLiked(`post:${i % 97}`, `user-${i % 611}`) !== set.hasLiked(`post:${i % 97}`, `user-${i % 611}`)) wrong++
  }
  t.equal(wrong, 0, 'counts and has-liked survive')
  t.equal(back.like('post:1', 'user-1'), set.like('post:1', 'user-1'), 'and keep deduplicating')
  t.equal(LikeSet.decode(new LikeSet().encode()).size, 0, 'empty set')

  const small = new LikeSet()
  small.like('post:1', 'a')
  small.like('post:1', 'b')
  const enc = small.encode() // header 14 bytes, 1 item (12 bytes), 2 likes (16 bytes)
  t.equal(enc.length, 14 + 12 + 16)
  const patch = (at: number, bytes: number[]): Buffer => { const b = Buffer.from(enc); Buffer.from(bytes).copy(b, at); return b }
  const corrupt: Array<[string, unknown]> = [
    ['not bytes', [1, 2, 3]],
    ['truncated', enc.subarray(0, enc.length - 1)],
    ['trailing', Buffer.concat([enc, Buffer.alloc(8)])],
    ['magic', patch(0, [0x58])],
    ['version', patch(4, [2])],
    ['unknown flags', patch(5, [2])],
    ['items without counts', patch(5, [0])],
    ['item count too large', patch(6, [9, 0, 0, 0])],
    ['like count mismatch', patch(10, [3, 0, 0, 0])],
    ['item with 0 likes', patch(22, [0, 0, 0, 0])],
    ['counts not adding up', patch(22, [3, 0, 0, 0])],
    ['duplicate like', Buffer.concat([enc.subarray(0, 34), enc.subarray(26, 34)])],
    ['header says 2 likes, 1 present', enc.subarray(0, 34)]
  ]
  for (const [name, b] of corrupt) t.equal(codeOf(() => LikeSet.decode(b as Buffer)), 'corrupt_state', name)
})

t.test('LikeSet without per-item counts', async (t) => {
  const set = new LikeSet({ trackCounts: false })
  t.equal(set.like('post:1', 'a'), true)
  t.equal(set.like('post:1', 'a'), false)
  t.equal(set.like('post:2', 'a'), true)
  t.equal(set.unlike('post:2', 'a'), true)
  t.equal(set.size, 1)
  t.equal(set.items, 0)
  t.equal(codeOf(() => set.count('post:1')), 'invalid_option', 'count() needs trackCounts')
  const back = LikeSet.decode(set.encode())
  t.equal(back.trackCounts, false, 'the choice survives encoding')
  t.equal(back.hasLiked('post:1', 'a'), true)
  t.equal(back.hasLiked('post:2', 'a'), false)
  t.equal(set.encode().length, 14 + 8)
})

t.test('LikeSet rejects bad options and arguments', async (t) => {
  const bad: Array<[string, unknown]> = [
    ['initialCapacity 0', { initialCapacity: 0 }],
    ['initialCapacity 15', { initialCapacity: 15 }],
    ['initialCapacity 1.5', { initialCapacity: 1.5 }],
    ['unknown key', { capacity: 100 }],
    ['trackCounts not boolean', { trackCounts: 'yes' }],
    ['not an object', 'big']
  ]
  for (const [name, o] of bad) t.equal(codeOf(() => new LikeSet(o as never)), 'invalid_option', name)
  const set = new LikeSet()
  t.equal(codeOf(() => set.like(1 as never, 'u')), 'invalid_argument')
  t.equal(codeOf(() => set.unlike('post:1', null as never)), 'invalid_argument')
  t.equal(codeOf(() => set.hasLiked('post:1', undefined as never)), 'invalid_argument')
  t.equal(codeOf(() => set.count(5 as never)), 'invalid_argument')
})
