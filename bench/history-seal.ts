// What the per-minute history costs a shard's apply + seal, without the network, the WAL or the
// other tenants of a shared machine: one shard's 32 partitions (of 64) take Zipf increments in
// commit windows of `batch` ops (as the ws-stream load does) and seal every window. Several
// variants run in one process, window by window in a rotating order, so a busy machine slows
// them alike; each has its own partitions and its own copy of the driver loops (no call site
// shared between variants). A variant is ROOT:MINUTES[:LABEL], ROOT a build's dist directory
// (another build's, to compare code before and after a change), MINUTES its history retention.
//   node dist/bench/history-seal.js [--ops N] [--batch B] [--ms-per-op X] [--capture 0|1] [VARIANT...]
// Defaults: 6M ops, 800 ops per window, 0.0025 ms of record time per op (400k ops/s), captures
// every 30 s of record time; variants: this build with 0 and 1440 minutes.
import path from 'node:path'
import type { PartitionState } from '../actors/partition-state'
import { fnv1a32 } from '../src/core/keys'
import { ZipfKeys } from './zipf'

interface Variant {
  label: string
  states: PartitionState[]
  apply: (st: PartitionState[], opKey: Int32Array, keyBufs: Buffer[], keyPart: number[], keyHash: number[], ops: number, batch: number, mask: number, out: unknown[]) => void
  seal: (st: PartitionState[], mine: number[], now: number, out: unknown[]) => void
  applyNs: number
  sealNs: number
  captureNs: number
}

const P = 64
const args = process.argv.slice(2)
const opt = (name: string, def: number): number => {
  const i = args.indexOf(name)
  if (i < 0) return def
  const v = Number(args[i + 1])
  args.splice(i, 2)
  return v
}
const opsTotal = opt('--ops', 6_000_000)
const batch = opt('--batch', 800)
const msPerOp = opt('--ms-per-op', 0.0025)
const capture = opt('--capture', 1) === 1
const here = path.join(__dirname, '..')
const specs = args.length > 0 ? args : [`${here}:0:no history`, `${here}:1440:1440 minutes`]
const mine: number[] = []
for (let p = 0; p < P; p += 2) mine.push(p)

const variants: Variant[] = specs.map((spec) => {
  const [root, minutes, label] = spec.split(':')
  const { PartitionState: PS } = require(path.resolve(root, 'actors', 'partition-state')) as { PartitionState: new (o: object) => PartitionState }
  const states: PartitionState[] = []
  for (const p of mine) {
    states[p] = new PS({ partition: p, epoch: 1, replica: 'r1', dedupWindowMs: 600_000, dedupMaxEntries: 100_000, trackDirty: true, sampleSize: 16, historyMinutes: Number(minutes) })
  }
  return {
    label: label ?? `${root} ${minutes}`,
    states,
    apply: new Function('st', 'opKey', 'keyBufs', 'keyPart', 'keyHash', 'ops', 'batch', 'mask', 'out', `
      for (let i = 0; i < batch; i++) {
        const ki = opKey[(ops + i) & mask]
        const b = keyBufs[ki]
        st[keyPart[ki]].increment(b, 0, b.length, keyHash[ki], 1, out)
      }`) as Variant['apply'],
    seal: new Function('st', 'mine', 'now', 'out', 'for (const p of mine) st[p].seal(now, out)') as Variant['seal'],
    applyNs: 0,
    sealNs: 0,
    captureNs: 0
  }
})

// Ops on this shard's partitions: Zipf over 100k ids per type, a new type every half of the
// sequence (the suites start a new type per run).
const N = 1 << 20
const keyBufs: Buffer[] = []
const keyPart: number[] = []
const keyHash: number[] = []
const opKey = new Int32Array(N)
let k = 0
for (let type = 0; k < N; type++) {
  const ids = new ZipfKeys({ n: 100_000, s: 0.99, seed: 7 + type }).table(N / 2)
  const seen = new Map<number, number>()
  for (let i = 0; k < N && i < ids.length; i++) {
    let ki = seen.get(ids[i])
    if (ki === undefined) {
      const key = `hs${type}:${ids[i]}`
      const h = fnv1a32(key)
      ki = keyBufs.length
      seen.set(ids[i], ki)
      keyBufs.push(Buffer.from(key, 'latin1'))
      keyPart.push(h % P)
      keyHash.push(h)
    }
    if (keyPart[ki] % 2 === 0) opKey[k++] = ki
  }
}

let now = Date.UTC(2026, 10, 29, 18, 0, 30)
let nextCapture = now + 30_000
const out: unknown[] = []
let ops = 0
for (let round = 0; ops < opsTotal; round++) {
  const ts = Math.floor(now)
  const captureNow = capture && now >= nextCapture
  if (captureNow) nextCapture += 30_000
  for (let j = 0; j < variants.length; j++) {
    const v = variants[(j + round) % variants.length]
    const t0 = process.hrtime.bigint()
    v.apply(v.states, opKey, keyBufs, keyPart, keyHash, ops, batch, N - 1, out)
    const t1 = process.hrtime.bigint()
    v.seal(v.states, mine, ts, out)
    const t2 = process.hrtime.bigint()
    out.length = 0
    v.applyNs += Number(t1 - t0)
    v.sealNs += Number(t2 - t1)
    if (captureNow) {
      for (const p of mine) v.states[p].capture(false, ts)
      v.captureNs += Number(process.hrtime.bigint() - t2)
    }
  }
  ops += batch
  now += batch * msPerOp
}
const f = (ns: number): string => (ns / ops).toFixed(1).padStart(7)
console.log(`${ops} ops in windows of ${batch}, ${(ops * msPerOp / 60_000).toFixed(1)} minutes of record time; ns per op:`)
console.log(`${'variant'.padEnd(24)}   apply    seal capture   total  history pairs`)
for (const v of variants) {
  const pairs = mine.reduce((s, p) => s + v.states[p].historyPairs, 0)
  console.log(`${v.label.padEnd(24)} ${f(v.applyNs)} ${f(v.sealNs)} ${f(v.captureNs)} ${f(v.applyNs + v.sealNs + v.captureNs)}  ${pairs}`)
}
