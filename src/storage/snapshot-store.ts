// Embedded checkpoints: one file per partition, snapshots/p{partition}.snap, replaced atomically
// (write to a temp file, fdatasync, rename, fsync the directory). Always the whole partition state.
//
// file: "CSNP" | u8 version(2) | u16 partition | u32 epoch | f64 seq | f64 ts
//       | u32 nKeys × (u8 keyLen | key | f64 value | f64 p | f64 n)       p, n: this replica's PN totals
//       | u32 nDedup × (u8 kind | u16 tagLen | tag | f64 value | f64 ts)
//       | u32 featuresLen | features (likes, HyperLogLogs, samples, other replicas: actors/feature-state.ts)
//       | u32 crc32(everything before)
import fs from 'node:fs'
import path from 'node:path'
import { crc32 } from 'node:zlib'
import type { Checkpoint, DedupEntry, DedupKind } from '../core/records'
import type { CheckpointStore } from './types'

const MAGIC = 0x504e5343 // "CSNP" little-endian
const VERSION = 2

export class SnapshotFormatError extends Error {}

export function encodeSnapshot (cp: Checkpoint): Buffer {
  const features = cp.features ?? Buffer.alloc(0)
  let size = 4 + 1 + 2 + 4 + 8 + 8 + 4 + 4 + 4 + 4 + features.length
  for (const k of cp.keys) size += 1 + k.length + 24
  for (const d of cp.dedup) size += 1 + 2 + d.tag.length + 16
  const buf = Buffer.allocUnsafe(size)
  let o = buf.writeUInt32LE(MAGIC, 0)
  o = buf.writeUInt8(VERSION, o)
  o = buf.writeUInt16LE(cp.partition, o)
  o = buf.writeUInt32LE(cp.epoch, o)
  o = buf.writeDoubleLE(cp.seq, o)
  o = buf.writeDoubleLE(cp.ts, o)
  o = buf.writeUInt32LE(cp.keys.length, o)
  for (let i = 0; i < cp.keys.length; i++) {
    o = buf.writeUInt8(cp.keys[i].length, o)
    o += buf.write(cp.keys[i], o, 'latin1')
    o = buf.writeDoubleLE(cp.values[i], o)
    o = buf.writeDoubleLE(cp.ps?.[i] ?? Math.max(cp.values[i], 0), o)
    o = buf.writeDoubleLE(cp.ns?.[i] ?? Math.max(-cp.values[i], 0), o)
  }
  o = buf.writeUInt32LE(cp.dedup.length, o)
  for (const d of cp.dedup) {
    o = buf.writeUInt8(d.kind, o)
    o = buf.writeUInt16LE(d.tag.length, o)
    o += buf.write(d.tag, o, 'latin1')
    o = buf.writeDoubleLE(d.value, o)
    o = buf.writeDoubleLE(d.ts, o)
  }
  o = buf.writeUInt32LE(features.length, o)
  o += features.copy(buf, o)
  buf.writeUInt32LE(crc32(buf.subarray(0, o)), o)
  return buf
}

export function decodeSnapshot (buf: Buffer): Checkpoint {
  if (buf.length < 39 || buf.readUInt32LE(0) !== MAGIC) throw new SnapshotFormatError('not a counterd snapshot')
  if (crc32(buf.subarray(0, buf.length - 4)) !== buf.readUInt32LE(buf.length - 4)) throw new SnapshotFormatError('snapshot checksum mismatch')
  let o = 4
  const version = buf.readUInt8(o); o += 1
  if (version !== VERSION) throw new SnapshotFormatError(`unknown snapshot version ${version}`)
  const partition = buf.readUInt16LE(o); o += 2
  const epoch = buf.readUInt32LE(o); o += 4
  const seq = buf.readDoubleLE(o); o += 8
  const ts = buf.readDoubleLE(o); o += 8
  const n = buf.readUInt32LE(o); o += 4
  const keys: string[] = new Array(n)
  const values: number[] = new Array(n)
  const ps: number[] = new Array(n)
  const ns: number[] = new Array(n)
  for (let i = 0; i < n; i++) {
    const len = buf[o]; o += 1
    keys[i] = buf.toString('latin1', o, o + len); o += len
    values[i] = buf.readDoubleLE(o); o += 8
    ps[i] = buf.readDoubleLE(o); o += 8
    ns[i] = buf.readDoubleLE(o); o += 8
  }
  const nd = buf.readUInt32LE(o); o += 4
  const dedup: DedupEntry[] = new Array(nd)
  for (let i = 0; i < nd; i++) {
    const kind = buf.readUInt8(o) as DedupKind; o += 1
    const len = buf.readUInt16LE(o); o += 2
    const tag = buf.toString('latin1', o, o + len); o += len
    const value = buf.readDoubleLE(o); o += 8
    const dts = buf.readDoubleLE(o); o += 8
    dedup[i] = { kind, tag, value, ts: dts }
  }
  const flen = buf.readUInt32LE(o); o += 4
  const features = flen > 0 ? Buffer.from(buf.subarray(o, o + flen)) : undefined
  const cp: Checkpoint = { partition, epoch, seq, ts, keys, values, ps, ns, dedup }
  if (features !== undefined) cp.features = features
  return cp
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
