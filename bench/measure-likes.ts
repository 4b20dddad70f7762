// Heap bytes per like of a LikeSet holding many likes (the figure in docs/features.md).
//
//   npx tsc -p . && node --expose-gc dist/actors/features/measure-likes.js [likes] [items] [users] [counts]
//
// Defaults: 10,000,000 likes over 100,000 items (skewed: item = ⌊items·u³⌋, so a few items hold
// most likes) by 2,000,000 users, counts tracked (counts = 0: trackCounts false). Measures heapUsed + arrayBuffers after a full GC, before and
// after inserting; item and user strings are made per like and dropped, as in the service.
import { LikeSet } from '../actors/features/like-set'
import { Prng } from '../actors/features/prng'

function arg (i: number, def: number): number {
  const v = process.argv[2 + i]
  if (v === undefined) return def
  const n = Number(v)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`argument ${i + 1} must be a positive integer, got ${v}`)
  return n
}

function used (): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run with node --expose-gc')
  gc()
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

function main (): void {
  const likes = arg(0, 10_000_000)
  const items = arg(1, 100_000)
  const users = arg(2, 2_000_000)
  const trackCounts = process.argv[5] !== '0'
  const rng = new Prng(42)
  const before = used()
  const set = new LikeSet({ trackCounts })
  const t0 = process.hrtime.bigint()
  let attempts = 0
  const checkpoints = [Math.round(likes / 10), Math.round(likes / 4), Math.round(likes / 2), likes]
  const rows: string[] = []
  while (set.size < likes) {
    const u = rng.open()
    const item = `post:${Math.floor(items * u * u * u)}`
    const user = `user-${rng.below(users)}`
    attempts++
    if (set.like(item, user) && checkpoints.includes(set.size) && set.size !== likes) {
      const b = used() - before
      rows.push(`  at ${set.size} likes: ${(b / set.size).toFixed(2)} bytes/like`)
    }
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  const after = used()
  const st = set.stats()
  // Has-liked misses: pairs that were never liked (user ids outside the range used above).
  let misses = 0
  for (let i = 0; i < 1_000_000; i++) {
    if (!set.hasLiked(`post:${rng.below(items)}`, `nobody-${i}`)) misses++
  }
  const st2 = set.stats()
  const bloomShare = (st2.bloomNegatives - st.bloomNegatives) / misses
  console.log(`likes: ${set.size} over ${trackCounts ? set.items : 'untracked'} items, counts ${trackCounts ? 'tracked' : 'not tracked'} (${attempts} like calls, ${(ms * 1e6 / attempts).toFixed(0)} ns each)`)
  console.log(rows.join('\n'))
  console.log(`  at ${set.size} likes: ${((after - before) / set.size).toFixed(2)} bytes/like (heapUsed + arrayBuffers)`)
  console.log(`typed arrays alone: ${(st.bytes / set.size).toFixed(2)} bytes/like`)
  console.log(`has-liked misses answered by the Bloom filter alone: ${(bloomShare * 100).toFixed(1)}%`)
  const enc = set.encode()
  console.log(`encoded: ${(enc.length / set.size).toFixed(2)} bytes/like`)
}

main()
