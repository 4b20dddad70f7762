// Embedded checkpoints: one file per partition, snapshots/p{partition}.snap, replaced atomically
// (write to a temp file, fdatasync, rename, fsync the directory). Always the whole partition state.
//
// file v4 (little-endian):
//   "CSNP" | u8 version(4) | u16 partition | u32 epoch | f64 seq | f64 ts
//   | u32 nKeys | u8 columns (bit 0: a P column, bit 1: an N column) | u32 keyBytes
//   | keyBytes bytes: nKeys × (u8 keyLen | key)            the keys, as log records encode them
//   | zero bytes up to a multiple of 8 from the start of the file
//   | nKeys × f64 value | [nKeys × f64 P] | [nKeys × f64 N]  this replica's PN totals; without
//                                                            an N column N = 0, without a P
//                                                            column P = value + N
//   | u32 nDedup × (u8 kind | u16 tagLen | tag | f64 value | f64 ts)
//   | u32 featuresLen | features (likes, HyperLogLogs, samples, other replicas: actors/feature-state.ts)
//   | u32 historyLen | history (per-minute net changes as of seq, keys included:
//                              actors/partition-state.ts encodeHistory; 0 bytes: none)
//   | u32 crc32(everything before)
// Keys stay bytes and the numbers sit in aligned columns, so a load copies them straight into the
// partition's table (PartitionState.load takes Checkpoint.packed) with no string per key, and a
// counter only ever incremented on this replica costs 1 + key + 8 bytes.
//
// file v3 (still read): v4 without the history section (a v3 file loads with no history).
// file v2 (still read): the same header up to nKeys, then nKeys × (u8 keyLen | key | f64 value
//   | f64 p | f64 n), then the dedup entries, features and CRC as in v3.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { crc32 } from 'node:zlib'
import { dedupSize, readDedupEntries, writeDedupEntries } from '../core/record-codec'
import { packCounters, packedCheckpoint, type Checkpoint, type PackedCounters } from '../core/records'
import type { CheckpointStore } from './types'

const MAGIC = 0x504e5343 // "CSNP" little-endian
const VERSION = 4
const COLUMN_P = 1
const COLUMN_N = 2
const HEADER = 4 + 1 + 2 + 4 + 8 + 8 // through ts
const LITTLE_ENDIAN = os.endianness() === 'LE'

export class SnapshotFormatError extends Error {}

const align8 = (o: number): number => (o + 7) & ~7

export function encodeSnapshot (cp: Checkpoint): Buffer {
  const packed = cp.packed ?? packCounters(cp.keys, cp.values, cp.ps, cp.ns)
  const n = packed.count
  const features = cp.features ?? Buffer.alloc(0)
  const history = cp.history ?? Buffer.alloc(0)
  const keyBytes = packedKeyBytes(packed)
  const columns = (packed.ps !== null ? COLUMN_P : 0) | (packed.ns !== null ? COLUMN_N : 0)
  const numbersAt = align8(HEADER + 4 + 1 + 4 + keyBytes)
  const size = numbersAt + 8 * n * (1 + (packed.ps !== null ? 1 : 0) + (packed.ns !== null ? 1 : 0)) + dedupSize(cp.dedup) + 4 + features.length + 4 + history.length + 4
  const buf = Buffer.allocUnsafe(size)
  let o = buf.writeUInt32LE(MAGIC, 0)
  o = buf.writeUInt8(VERSION, o)
  o = buf.writeUInt16LE(cp.partition, o)
  o = buf.writeUInt32LE(cp.epoch, o)
  o = buf.writeDoubleLE(cp.seq, o)
  o = buf.writeDoubleLE(cp.ts, o)
  o = buf.writeUInt32LE(n, o)
  o = buf.writeUInt8(columns, o)
  o = buf.writeUInt32LE(keyBytes, o)
  buf.set(packed.keys.subarray(0, keyBytes), o)
  o += keyBytes
  buf.fill(0, o, numbersAt)
  o = numbersAt
  o = writeColumn(buf, o, packed.values, n)
  if (packed.ps !== null) o = writeColumn(buf, o, packed.ps, n)
  if (packed.ns !== null) o = writeColumn(buf, o, packed.ns, n)
  o = writeDedupEntries(buf, o, cp.dedup)
  o = buf.writeUInt32LE(features.length, o)
  o += features.copy(buf, o)
  o = buf.writeUInt32LE(history.length, o)
  o += history.copy(buf, o)
  buf.writeUInt32LE(crc32(buf.subarray(0, o)), o)
  return buf
}

/** Bytes of the packed keys (count × (1 + length)). */
function packedKeyBytes (p: PackedCounters): number {
  let o = 0
  for (let i = 0; i < p.count; i++) o += 1 + p.keys[o]
  if (o > p.keys.length) throw new RangeError('packed keys are shorter than their count')
  return o
}

function writeColumn (buf: Buffer, o: number, col: Float64Array, n: number): number {
  if (LITTLE_ENDIAN) {
    buf.set(new Uint8Array(col.buffer, col.byteOffset, n * 8), o)
    return o + n * 8
  }
  for (let i = 0; i < n; i++) o = buf.writeDoubleLE(col[i], o)
  return o
}


/**
 * Decodes a snapshot file (v4, v3 or v2). The counters come packed (Checkpoint.packed, for a load
 * without strings); keys, values, ps and ns are decoded from them only when read.
 */
export function decodeSnapshot (buf: Buffer): Checkpoint {
  if (buf.length < HEADER + 4 + 4 || buf.readUInt32LE(0) !== MAGIC) throw new SnapshotFormatError('not a counterd snapshot')
  if (crc32(buf.subarray(0, buf.length - 4)) !== buf.readUInt32LE(buf.length - 4)) throw new SnapshotFormatError('snapshot checksum mismatch')
  const end = buf.length - 4
  let o = 4
  const need = (n: number): void => {
    if (o + n > end) throw new SnapshotFormatError(`snapshot truncated at byte ${o}`)
  }
  const version = buf.readUInt8(o); o += 1
  if (version !== 2 && version !== 3 && version !== VERSION) throw new SnapshotFormatError(`unknown snapshot version ${version}`)
  const partition = buf.readUInt16LE(o); o += 2
  const epoch = buf.readUInt32LE(o); o += 4
  const seq = buf.readDoubleLE(o); o += 8
  const ts = buf.readDoubleLE(o); o += 8
  need(4)
  const n = buf.readUInt32LE(o); o += 4
  let packed: PackedCounters
  if (version === 2) {
    const start = o
    let keyBytes = 0
    for (let i = 0; i < n; i++) {
      need(1)
      const len = buf[o]
      need(1 + len + 24)
      keyBytes += 1 + len
      o += 1 + len + 24
    }
    const keys = Buffer.allocUnsafe(keyBytes)
    const values = new Float64Array(n)
    const ps = new Float64Array(n)
    const ns = new Float64Array(n)
    let needP = false
    let needN = false
    let k = 0
    o = start
    for (let i = 0; i < n; i++) {
      const len = buf[o]
      k += buf.copy(keys, k, o, o + 1 + len)
      o += 1 + len
      const v = values[i] = buf.readDoubleLE(o)
      const p = ps[i] = buf.readDoubleLE(o + 8)
      const nn = ns[i] = buf.readDoubleLE(o + 16)
      o += 24
      if (nn !== 0) needN = true
      if (p !== v + nn) needP = true
    }
    packed = { count: n, keys, values, ps: needP ? ps : null, ns: needN ? ns : null }
  } else {
    need(5)
    const columns = buf[o]; o += 1
    const keyBytes = buf.readUInt32LE(o); o += 4
    need(keyBytes)
    const keys = buf.subarray(o, o + keyBytes)
    let k = 0
    for (let i = 0; i < n; i++) {
      if (k >= keyBytes) throw new SnapshotFormatError(`snapshot keys end before key ${i} of ${n}`)
      k += 1 + keys[k]
    }
    if (k !== keyBytes) throw new SnapshotFormatError(`snapshot keys take ${k} bytes, the header says ${keyBytes}`)
    o = align8(o + keyBytes)
    const column = (): Float64Array => {
      need(n * 8)
      const col = readColumn(buf, o, n)
      o += n * 8
      return col
    }
    const values = column()
    const ps = (columns & COLUMN_P) !== 0 ? column() : null
    const ns = (columns & COLUMN_N) !== 0 ? column() : null
    packed = { count: n, keys, values, ps, ns }
  }
  const read = readDedupEntries(buf, o, end)
  if (read === null) throw new SnapshotFormatError('snapshot truncated in its dedup section')
  const dedup = read.entries
  o = read.end
  need(4)
  const flen = buf.readUInt32LE(o); o += 4
  need(flen)
  const features = flen > 0 ? Buffer.from(buf.subarray(o, o + flen)) : undefined
  o += flen
  let history: Buffer | undefined
  if (version >= 4) {
    need(4)
    const hlen = buf.readUInt32LE(o); o += 4
    need(hlen)
    if (hlen > 0) history = Buffer.from(buf.subarray(o, o + hlen))
    o += hlen
  }
  if (o !== end) throw new SnapshotFormatError(`snapshot has ${end - o} trailing bytes`)
  const fields: Parameters<typeof packedCheckpoint>[0] = { partition, epoch, seq, ts, dedup }
  if (features !== undefined) fields.features = features
  if (history !== undefined) fields.history = history
  return packedCheckpoint(fields, packed)
}

/** A column of n little-endian f64 at `o`: a view when aligned (the file is read once), else a copy. */
function readColumn (buf: Buffer, o: number, n: number): Float64Array {
  if (LITTLE_ENDIAN && (buf.byteOffset + o) % 8 === 0) return new Float64Array(buf.buffer, buf.byteOffset + o, n)
  const col = new Float64Array(n)
  for (let i = 0; i < n; i++) col[i] = buf.readDoubleLE(o + i * 8)
  return col
}

export class SnapshotStore implements CheckpointStore {
  readonly incremental = false

  constructor (private readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true })
  }

  private file (partition: number): string {
    return path.join(this.dir, `p${String(partition).padStart(5, '0')}.snap`)
  }

  async load (partition: number): Promise<Checkpoint | null> {
    let buf: Buffer
    try {
      buf = await fs.promises.readFile(this.file(partition))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw err
    }
    const cp = decodeSnapshot(buf)
    if (cp.partition !== partition) throw new SnapshotFormatError(`${this.file(partition)} holds partition ${cp.partition}`)
    return cp
  }

  async save (checkpoints: Checkpoint[]): Promise<void> {
    for (const cp of checkpoints) {
      const final = this.file(cp.partition)
      const tmp = `${final}.tmp`
      const fh = await fs.promises.open(tmp, 'w')
      try {
        await fh.writeFile(encodeSnapshot(cp))
        await fh.datasync()
      } finally {
        await fh.close()
      }
      await fs.promises.rename(tmp, final)
    }
    // The renames are durable only once the directory entry is.
    const dh = await fs.promises.open(this.dir, 'r')
    try { await dh.sync() } finally { await dh.close() }
  }

  async close (): Promise<void> {}
}
