// A stream client's per-partition dedup window (src/core/stream-dedup.ts): a frame that failed in
// one partition after later frames applied there still applies when resent under its seq, while a
// frame applied before is skipped; the older single-seq form reads as before.
import t from 'tap'
import { streamAdd, streamSeen } from '../src/core/stream-dedup'

t.test('a window of seqs per partition', async (t) => {
  const cases: Array<{ name: string, applied: number[], seen: number[], unseen: number[] }> = [
    { name: 'in order', applied: [1, 2, 3], seen: [1, 2, 3], unseen: [4, 5] },
    { name: 'a gap: frame 2 failed here, 3 and 4 applied', applied: [1, 3, 4], seen: [1, 3, 4], unseen: [2, 5] },
    { name: 'the gap filled by the resend', applied: [1, 3, 4, 2], seen: [1, 2, 3, 4], unseen: [5] },
    { name: 'first frame seen here is 7', applied: [7], seen: [7], unseen: [1, 6, 8] },
    { name: 'more than 21 below the newest counts as applied', applied: [100], seen: [78, 1], unseen: [79, 99, 101] },
    { name: 'a jump past the window forgets the old gaps', applied: [1, 3, 40], seen: [1, 2, 3, 18], unseen: [19, 39, 41] },
    { name: 'seqs near 2^32', applied: [2 ** 32 - 3, 2 ** 32 - 1], seen: [2 ** 32 - 3, 2 ** 32 - 1], unseen: [2 ** 32 - 2] }
  ]
  for (const c of cases) {
    let v: number | undefined
    for (const s of c.applied) {
      t.notOk(streamSeen(v, s), `${c.name}: ${s} is new when applied`)
      v = streamAdd(v, s)
      t.ok(Number.isSafeInteger(v), `${c.name}: the entry stays a safe integer`)
    }
    for (const s of c.seen) t.ok(streamSeen(v, s), `${c.name}: ${s} is a resend`)
    for (const s of c.unseen) t.notOk(streamSeen(v, s), `${c.name}: ${s} is new`)
  }
})

t.test('the older form (the newest seq alone) reads as before and upgrades', async (t) => {
  t.ok(streamSeen(5, 5) && streamSeen(5, 1), 'at or below the newest: a resend')
  t.notOk(streamSeen(5, 6), 'above: new')
  const v = streamAdd(5, 8)
  t.ok(streamSeen(v, 5) && streamSeen(v, 8) && streamSeen(v, 2), 'after an upgrade the old seqs still count as applied')
  t.notOk(streamSeen(v, 6) || streamSeen(v, 7), 'and the ones skipped since are new')
})
