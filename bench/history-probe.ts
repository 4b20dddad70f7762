// What per-minute history (actors/minute-history.ts) costs the partition state, history off and
// on interleaved in one process, CPU time (so time the machine's other tenants take does not
// count): docs/benchmarks.md quotes it.
//
//   npx tsc -p . && node --expose-gc dist/bench/history-probe.js apply [sealEvery] [rounds]
//   npx tsc -p . && node --expose-gc --max-old-space-size=8000 dist/bench/history-probe.js replay [counters] [rounds]
//
// apply: +1 increments on Zipf keys over 100k ids (s = 0.99) into the 32 partitions of one shard
//   of two, every partition sealed every `sealEvery` ops (default 1000): ns per op.
// replay: the recovery suite's WAL shape (10 passes of +1 over `counters` counters, default 1M,
//   sealed every 1000 ops, as WAL frames), replayed into fresh partitions: ms per replay.
import { PartitionState } from '../actors/partition-state'
import { fnv1a32 } from '../src/core/keys'
import { decodeFrames, encodeFrames } from '../src/core/record-codec'
import type { DeltaRecord } from '../src/core/records'

const P = 64

function states (historyMinutes: number, owned: (p: number) => boolean): Array<PartitionState | undefined> {
  const out: Array<PartitionState | undefined> = new Array(P)
  for (let p = 0; p < P; p++) {
    if (owned(p)) out[p] = new PartitionState({ partition: p, epoch: 1, replica: 'main', dedupWindowMs: 600_000, dedupMaxEntries: 1000, trackDirty: false, sampleSize: 16, historyMinutes })
  }
  return out
}

function cpuMs (fn: () => void): number {
  const g = (globalThis as { gc?: () => void }).gc
  if (g === undefined) throw new Error('run with node --expose-gc')
  g()
  const c = process.cpuUsage()
  fn()
  const u = process.cpuUsage(c)
  return (u.user + u.system) / 1000
}

const median = (xs: number[]): number => xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[xs.length >> 1]

function apply (sealEvery: number, rounds: number): void {
  let seed = 42
  const rand = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff; return seed / 0x7fffffff }
  const KEYS = 100_000
  const cdf = new Float64Array(KEYS)
  let sum = 0
  for (let i = 0; i < KEYS; i++) { sum += 1 / (i + 1) ** 0.99; cdf[i] = sum }
  const ops: Array<[Buffer, number]> = []
  for (let i = 0; i < 2_000_000; i++) {
    const x = rand() * sum
    let lo = 0
    let hi = KEYS - 1
    while (lo < hi) { const m = (lo + hi) >> 1; if (cdf[m] < x) lo = m + 1; else hi = m }
    const key = `post:${lo}`
    const h = fnv1a32(key)
    if (h % 2 === 0) ops.push([Buffer.from(key, 'latin1'), h]) // shard 0 of 2
  }
  const run = (historyMinutes: number): number => {
    const s = states(historyMinutes, (p) => p % 2 === 0)
    const out: DeltaRecord[] = []
    let now = Date.now()
    const ms = cpuMs(() => {
      for (let i = 0; i < ops.length; i++) {
        const [b, h] = ops[i]
        ;(s[h % P] as PartitionState).increment(b, 0, b.length, h, 1, out)
        if (i % sealEvery === sealEvery - 1) {
          now += 2
          for (const st of s) st?.seal(now, out)
          out.length = 0
        }
      }
    })
    for (const st of s) st?.dispose() // its chunks back to the pool: the next run allocates none
    return ms * 1e6 / ops.length
  }
  const off: number[] = []
  const on: number[] = []
  const only = process.env.HISTORY_PROBE_ONLY // 'on' or 'off': one mode per process, to rule out their interplay
  for (let r = 0; r < rounds; r++) {
    if (only !== 'on') off.push(run(0))
    if (only !== 'off') on.push(run(1440))
  }
  console.log(`${ops.length} increments, sealed every ${sealEvery}: history off ${median(off).toFixed(1)} ns per op, on ${median(on).toFixed(1)} (medians of ${rounds})`)
}

function replay (counters: number, rounds: number): void {
  const w = states(0, () => true)
  const out: DeltaRecord[] = []
  const frames: Buffer[] = []
  let now = Date.now()
  const keys = Array.from({ length: counters }, (_, i) => { const k = `post:${i}`; return [Buffer.from(k, 'latin1'), fnv1a32(k)] as const })
  for (let pass = 0; pass < 10; pass++) {
    for (let i = 0; i < counters; i++) {
      const [b, h] = keys[i]
      ;(w[h % P] as PartitionState).increment(b, 0, b.length, h, 1, out)
      if (i % 1000 === 999) {
        now += 3
        for (const s of w) s?.seal(now, out)
        frames.push(encodeFrames(out))
        out.length = 0
      }
    }
  }
  for (const s of w) s?.seal(now, out)
  frames.push(encodeFrames(out))
  const wal = Buffer.concat(frames)
  frames.length = 0
  const run = (historyMinutes: number): number => {
    const s = states(historyMinutes, () => true)
    const ms = cpuMs(() => decodeFrames(wal, (r) => { (s[r.partition] as PartitionState).replay(r) }))
    for (const st of s) st?.dispose()
    return ms
  }
  const off: number[] = []
  const on: number[] = []
  for (let r = 0; r < rounds; r++) { off.push(run(0)); on.push(run(1440)) }
  console.log(`replay of ${10 * counters} increments over ${counters} counters (${(wal.length / 2 ** 20).toFixed(0)} MiB of WAL): history off ${median(off).toFixed(0)} ms CPU, on ${median(on).toFixed(0)} (medians of ${rounds})`)
}

const [mode, a, b] = process.argv.slice(2)
if (mode === 'apply') apply(Number(a ?? 1000), Number(b ?? 11))
else if (mode === 'replay') replay(Number(a ?? 1_000_000), Number(b ?? 5))
else throw new Error('usage: history-probe.js apply [sealEvery] [rounds] | replay [counters] [rounds]')
