// Partition state probe: memory per counter and load/replay times in one thread, without the
// server around it (no WebSocket, no threads, no WAL files). Uses only PartitionState's public API.
//
//   npx tsc -p . && node --expose-gc dist/bench/state-probe.js memory [counters] [partitions] [numeric|hex]
//   npx tsc -p . && node --expose-gc dist/bench/state-probe.js recovery [counters] [passes] [partitions]
//   npx tsc -p . && node --expose-gc dist/bench/state-probe.js ops [counters] [increments] [partitions]
//
// memory: builds `partitions` partitions (default 64, the default PARTITIONS) holding `counters`
//   keys post:0… (each +1, sealed every 1000 ops as a group commit would), then prints heap +
//   array buffers and RSS growth per counter after a full GC. `hex`: ids post:h<hex> instead,
//   which are not decimal numbers, so the table keeps them in its key arena.
// recovery: encodes `passes` × `counters` increments as WAL frames (records of about 256 keys per
//   partition, as sealed by a busy node), then times: decoding the frames and replaying every
//   record into fresh partitions; capturing a full checkpoint of each, encoding it as a snapshot
//   file, decoding it and loading it into fresh partitions. Checks the values at the end.
import { readFileSync, writeFileSync } from 'node:fs'
import { PartitionState } from '../actors/partition-state'
import { fnv1a32 } from '../src/core/keys'
import { decodeFrames, encodeFrames } from '../src/core/record-codec'
import type { Checkpoint, DeltaRecord } from '../src/core/records'
import { decodeSnapshot, encodeSnapshot } from '../src/storage/snapshot-store'

function gc (): void {
  const g = (globalThis as { gc?: () => void }).gc
  if (g === undefined) throw new Error('run with node --expose-gc')
  g(); g()
}

function used (): { heap: number, rss: number } {
  gc()
  const m = process.memoryUsage()
  return { heap: m.heapUsed + m.arrayBuffers, rss: m.rss }
}

function makeStates (partitions: number, trackDirty = false): PartitionState[] {
  const states: PartitionState[] = []
  for (let p = 0; p < partitions; p++) {
    states.push(new PartitionState({ partition: p, epoch: 1, replica: 'main', dedupWindowMs: 60_000, dedupMaxEntries: 1000, trackDirty, sampleSize: 8 }))
  }
  return states
}

function ms (t0: bigint): number { return Number(process.hrtime.bigint() - t0) / 1e6 }

function memory (counters: number, partitions: number, shape: string): void {
  const id = shape === 'hex' ? (i: number): string => `h${i.toString(16)}` : (i: number): string => String(i)
  const before = used()
  const states = makeStates(partitions)
  const buf = Buffer.allocUnsafe(64)
  const sink: DeltaRecord[] = []
  const t0 = process.hrtime.bigint()
  const rows: string[] = []
  const marks = new Set([Math.round(counters / 10), Math.round(counters / 4), Math.round(counters / 2)])
  for (let i = 0; i < counters; i++) {
    const len = buf.write(`post:${id(i)}`, 0, 'latin1')
    let h = 0x811c9dc5
    for (let k = 0; k < len; k++) h = Math.imul(h ^ buf[k], 0x01000193)
    h >>>= 0
    states[h % partitions].increment(buf, 0, len, h, 1, sink)
    if (i % 1000 === 999) {
      const now = Date.now()
      for (const s of states) s.seal(now, sink)
      sink.length = 0
    }
    if (marks.has(i + 1)) {
      const u = used()
      rows.push(`  at ${i + 1}: heap+buffers ${((u.heap - before.heap) / (i + 1)).toFixed(1)} B, RSS ${((u.rss - before.rss) / (i + 1)).toFixed(1)} B per counter`)
    }
  }
  for (const s of states) s.seal(Date.now(), sink)
  sink.length = 0
  const took = ms(t0)
  const after = used()
  let total = 0
  for (const s of states) total += s.nonZero
  console.log(rows.join('\n'))
  console.log(`${counters} counters (${shape} ids) in ${partitions} partitions (${total} non-zero) in ${took.toFixed(0)} ms: ` +
    `heap+buffers ${((after.heap - before.heap) / counters).toFixed(1)} B, RSS ${((after.rss - before.rss) / counters).toFixed(1)} B per counter`)
  // Spot check.
  for (let i = 0; i < counters; i += 9973) {
    const key = `post:${id(i)}`
    if (states[fnv1a32(key) % partitions].valueOf(key) !== 1) throw new Error(`${key} is not 1`)
  }
}

function recovery (counters: number, passes: number, partitions: number): void {
  // Records as a node seals them: each group commit holds ~256 keys per partition.
  const perCommit = 256 * partitions
  const keyBufs: Buffer[] = []
  const hashes = new Uint32Array(counters)
  for (let i = 0; i < counters; i++) {
    const key = `post:${i}`
    keyBufs.push(Buffer.from(key, 'latin1'))
    hashes[i] = fnv1a32(key)
  }
  const writer = makeStates(partitions)
  const frames: Buffer[] = []
  let t0 = process.hrtime.bigint()
  let pending: DeltaRecord[] = []
  let ops = 0
  for (let pass = 0; pass < passes; pass++) {
    for (let i = 0; i < counters; i++) {
      const k = keyBufs[i]
      writer[hashes[i] % partitions].increment(k, 0, k.length, hashes[i], 1, pending)
      if (++ops % perCommit === 0) {
        const now = Date.now()
        for (const s of writer) s.seal(now, pending)
        frames.push(encodeFrames(pending))
        pending = []
      }
    }
  }
  for (const s of writer) s.seal(Date.now(), pending)
  frames.push(encodeFrames(pending))
  const wal = Buffer.concat(frames)
  frames.length = 0
  if (process.env.PROBE_WAL_OUT !== undefined) writeFileSync(process.env.PROBE_WAL_OUT, wal)
  console.log(`WAL of ${counters * passes} increments over ${counters} counters: ${(wal.length / 2 ** 20).toFixed(0)} MiB, built in ${ms(t0).toFixed(0)} ms`)
  writer.length = 0
  gc()

  const best = (label: string, runs: number, fn: () => string): void => {
    // CPU time of this process as well as wall time: the machine may be shared.
    const times: number[] = []
    const cpus: number[] = []
    let note = ''
    for (let r = 0; r < runs; r++) {
      gc()
      const t = process.hrtime.bigint()
      const c = process.cpuUsage()
      note = fn()
      times.push(ms(t))
      const u = process.cpuUsage(c)
      cpus.push((u.user + u.system) / 1000)
    }
    const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join(' / ')
    console.log(`${label}: wall ${fmt(times)} ms (best ${Math.min(...times).toFixed(0)}), cpu ${fmt(cpus)} ms (best ${Math.min(...cpus).toFixed(0)}) ${note}`)
  }

  best('decode frames only', 3, () => {
    let records = 0
    decodeFrames(wal, () => { records++ })
    return `${records} records`
  })
  let replayed: PartitionState[] = []
  best('replay (decode frames + replay)', 5, () => {
    replayed = makeStates(partitions)
    let records = 0
    decodeFrames(wal, (r) => { if (replayed[r.partition].replay(r)) records++ })
    return `${records} records`
  })
  check(replayed, counters, passes, partitions, hashes)

  let cps: Checkpoint[] = []
  best('capture (full)', 3, () => {
    const now = Date.now()
    cps = replayed.map((s) => s.capture(true, now))
    return `${cps.reduce((n, cp) => n + (cp.packed?.count ?? cp.keys.length), 0)} counters`
  })
  let files: Buffer[] = []
  best('encode snapshots', 3, () => {
    files = cps.map(encodeSnapshot)
    return `${(files.reduce((n, b) => n + b.length, 0) / 2 ** 20).toFixed(1)} MiB`
  })
  cps = []
  let loaded: PartitionState[] = []
  best('decode snapshots + load', 3, () => {
    loaded = makeStates(partitions)
    for (let p = 0; p < partitions; p++) loaded[p].load(decodeSnapshot(files[p]))
    return ''
  })
  check(loaded, counters, passes, partitions, hashes)
  t0 = process.hrtime.bigint()
}

function check (states: PartitionState[], counters: number, passes: number, partitions: number, hashes: Uint32Array): void {
  let nonZero = 0
  for (const s of states) nonZero += s.nonZero
  if (nonZero !== counters) throw new Error(`${nonZero} non-zero counters, expected ${counters}`)
  for (let i = 0; i < counters; i += 997) {
    const key = `post:${i}`
    const v = states[hashes[i] % partitions].valueOf(key)
    if (v !== passes) throw new Error(`${key} = ${v}, expected ${passes}`)
  }
}

function num (i: number, def: number): number {
  const v = process.argv[3 + i]
  return v === undefined ? def : Number(v)
}

/**
 * The write path: `ops` increments over `counters` existing keys (Zipf-free: uniform, like a
 * worst case for the caches), sealed every 16384 ops; prints ns per op (CPU time), best of 5.
 */
function ops (counters: number, total: number, partitions: number): void {
  const states = makeStates(partitions)
  const keys: Buffer[] = []
  const hashes = new Uint32Array(counters)
  for (let i = 0; i < counters; i++) {
    keys.push(Buffer.from(`post:${i}`, 'latin1'))
    hashes[i] = fnv1a32(`post:${i}`)
  }
  let sink: DeltaRecord[] = []
  for (let i = 0; i < counters; i++) states[hashes[i] % partitions].increment(keys[i], 0, keys[i].length, hashes[i], 1, sink)
  let x = 12345
  const order = new Uint32Array(total)
  for (let i = 0; i < total; i++) { x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5 | 0; order[i] = (x >>> 0) % counters }
  const times: number[] = []
  for (let run = 0; run < 5; run++) {
    gc()
    const c = process.cpuUsage()
    for (let i = 0; i < total; i++) {
      const k = order[i]
      states[hashes[k] % partitions].increment(keys[k], 0, keys[k].length, hashes[k], 1, sink)
      if ((i & 16383) === 16383) {
        const now = Date.now()
        for (const s of states) s.seal(now, sink)
        sink = []
      }
    }
    const u = process.cpuUsage(c)
    times.push((u.user + u.system) * 1000 / total)
  }
  console.log(`${total} increments over ${counters} counters, sealed every 16384: ${times.map((t) => t.toFixed(0)).join(' / ')} ns per op (CPU; best ${Math.min(...times).toFixed(0)})`)
}

/** Replays a WAL file written with PROBE_WAL_OUT (for profiling replay alone). */
function replayFile (file: string, partitions: number, runs: number): void {
  const wal = readFileSync(file)
  for (let r = 0; r < runs; r++) {
    const states = makeStates(partitions)
    const c = process.cpuUsage()
    const t = process.hrtime.bigint()
    let records = 0
    decodeFrames(wal, (rec) => { if (states[rec.partition].replay(rec)) records++ })
    const u = process.cpuUsage(c)
    console.log(`replayed ${records} records: wall ${ms(t).toFixed(0)} ms, cpu ${((u.user + u.system) / 1000).toFixed(0)} ms`)
  }
}

const mode = process.argv[2] ?? 'memory'
if (mode === 'memory') memory(num(0, 1_000_000), num(1, 64), process.argv[5] ?? 'numeric')
else if (mode === 'recovery') recovery(num(0, 1_000_000), num(1, 10), num(2, 64))
else if (mode === 'ops') ops(num(0, 100_000), num(1, 5_000_000), num(2, 64))
else if (mode === 'replay-file') replayFile(process.argv[3], num(1, 64), num(2, 3))
else throw new Error(`unknown mode ${mode}: memory, recovery or replay-file`)
