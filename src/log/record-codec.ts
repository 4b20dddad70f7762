// Binary encoding of delta records, version 1. Used as the WAL payload and as the Kafka message
// value, so other services can consume the log (format documented in docs/log-format.md).
//
// payload (little-endian):
//   u8 version (=1) | u16 partition | u32 epoch | f64 seq | f64 ts
//   u32 nKeys   | nKeys × (u8 keyLen | key bytes (ASCII) | f64 delta)
//   u32 nDedup  | nDedup × (u8 kind | u16 tagLen | tag bytes (ASCII) | f64 value | f64 ts)
// WAL frame: u32 payloadLen | u32 crc32(payload) | payload
import { crc32 } from './crc32'
import type { DedupEntry, DedupKind, DeltaRecord } from './types'

export const RECORD_VERSION = 1
const HEADER = 1 + 2 + 4 + 8 + 8 + 4
export const FRAME_HEADER = 8

function payloadSize (r: DeltaRecord): number {
  if (r instanceof EncodedRecord) return r.payload.length
  let n = HEADER
  for (let i = 0; i < r.keys.length; i++) n += 1 + r.keys[i].length + 8
  return n + dedupSize(r.dedup)
}

function writePayload (r: DeltaRecord, buf: Buffer, o: number): number {
  if (r instanceof EncodedRecord) return o + r.payload.copy(buf, o)
  o = writeRecordHeader(buf, o, r.partition, r.epoch, r.seq, r.ts, r.keys.length)
  for (let i = 0; i < r.keys.length; i++) {
    const k = r.keys[i]
    o = buf.writeUInt8(k.length, o)
    o += buf.write(k, o, 'latin1')
    o = buf.writeDoubleLE(r.deltas[i], o)
  }
  return writeDedupEntries(buf, o, r.dedup)
}

/**
 * A record sealed straight into its encoded form by a partition actor (no per-key strings on the
 * hot path). keys, deltas and dedup are decoded on first use, for the consumers that need them.
 */
export class EncodedRecord implements DeltaRecord {
  private decoded: DeltaRecord | null = null
  constructor (readonly partition: number, readonly epoch: number, readonly seq: number, readonly ts: number, readonly payload: Buffer) {}
  private get full (): DeltaRecord { return (this.decoded ??= decodeRecord(this.payload)) }
  get keys (): string[] { return this.full.keys }
  get deltas (): number[] { return this.full.deltas }
  get dedup (): DedupEntry[] { return this.full.dedup }
}

/** Writes a v1 payload header at `o` (nKeys included); returns the offset after it. */
export function writeRecordHeader (buf: Buffer, o: number, partition: number, epoch: number, seq: number, ts: number, nKeys: number): number {
  o = buf.writeUInt8(RECORD_VERSION, o)
  o = buf.writeUInt16LE(partition, o)
  o = buf.writeUInt32LE(epoch, o)
  o = buf.writeDoubleLE(seq, o)
  o = buf.writeDoubleLE(ts, o)
  return buf.writeUInt32LE(nKeys, o)
}

export function writeDedupEntries (buf: Buffer, o: number, dedup: readonly DedupEntry[]): number {
  o = buf.writeUInt32LE(dedup.length, o)
  for (let i = 0; i < dedup.length; i++) {
    const d = dedup[i]
    o = buf.writeUInt8(d.kind, o)
    o = buf.writeUInt16LE(d.tag.length, o)
    o += buf.write(d.tag, o, 'latin1')
    o = buf.writeDoubleLE(d.value, o)
    o = buf.writeDoubleLE(d.ts, o)
  }
  return o
}

export function dedupSize (dedup: readonly DedupEntry[]): number {
  let n = 4
  for (let i = 0; i < dedup.length; i++) n += 1 + 2 + dedup[i].tag.length + 16
  return n
}

export const RECORD_HEADER_BYTES = HEADER

/** The bare payload (Kafka message value). */
export function encodeRecord (r: DeltaRecord): Buffer {
  if (r instanceof EncodedRecord) return r.payload
  const buf = Buffer.allocUnsafe(payloadSize(r))
  writePayload(r, buf, 0)
  return buf
}

/** Several records as consecutive WAL frames in one buffer (one write, one fsync). */
export function encodeFrames (records: readonly DeltaRecord[]): Buffer {
  let total = 0
  for (const r of records) total += FRAME_HEADER + payloadSize(r)
  const buf = Buffer.allocUnsafe(total)
  let o = 0
  for (const r of records) {
    const start = o + FRAME_HEADER
    const end = writePayload(r, buf, start)
    buf.writeUInt32LE(end - start, o)
    buf.writeUInt32LE(crc32(buf, start, end), o + 4)
    o = end
  }
  return buf
}

export class RecordFormatError extends Error {}

/** Decodes one payload; throws RecordFormatError when it is not a well-formed v1 record. */
export function decodeRecord (buf: Buffer, start = 0, end = buf.length): DeltaRecord {
  let o = start
  const need = (n: number): void => {
    if (o + n > end) throw new RecordFormatError(`record truncated at byte ${o - start}`)
  }
  need(HEADER)
  const version = buf.readUInt8(o); o += 1
  if (version !== RECORD_VERSION) throw new RecordFormatError(`unknown record version ${version}`)
  const partition = buf.readUInt16LE(o); o += 2
  const epoch = buf.readUInt32LE(o); o += 4
  const seq = buf.readDoubleLE(o); o += 8
  const ts = buf.readDoubleLE(o); o += 8
  const nKeys = buf.readUInt32LE(o); o += 4
  const keys: string[] = new Array(nKeys)
  const deltas: number[] = new Array(nKeys)
  for (let i = 0; i < nKeys; i++) {
    need(1)
    const len = buf[o]; o += 1
    need(len + 8)
    keys[i] = buf.toString('latin1', o, o + len); o += len
    deltas[i] = buf.readDoubleLE(o); o += 8
  }
  need(4)
  const nDedup = buf.readUInt32LE(o); o += 4
  const dedup: DedupEntry[] = new Array(nDedup)
  for (let i = 0; i < nDedup; i++) {
    need(3)
    const kind = buf.readUInt8(o) as DedupKind; o += 1
    const len = buf.readUInt16LE(o); o += 2
    need(len + 16)
    const tag = buf.toString('latin1', o, o + len); o += len
    const value = buf.readDoubleLE(o); o += 8
    const dts = buf.readDoubleLE(o); o += 8
    dedup[i] = { kind, tag, value, ts: dts }
  }
  if (o !== end) throw new RecordFormatError(`record has ${end - o} trailing bytes`)
  return { partition, epoch, seq, ts, keys, deltas, dedup }
}

/**
 * Reads consecutive WAL frames. Stops at the first frame that is incomplete or fails its CRC
 * (a torn tail after a crash) and returns how many bytes were good.
 */
export function decodeFrames (buf: Buffer, onRecord: (r: DeltaRecord) => void): number {
  let o = 0
  while (o + FRAME_HEADER <= buf.length) {
    const len = buf.readUInt32LE(o)
    const crc = buf.readUInt32LE(o + 4)
    const start = o + FRAME_HEADER
    const end = start + len
    if (end > buf.length || crc32(buf, start, end) !== crc) break
    let record: DeltaRecord
    try {
      record = decodeRecord(buf, start, end)
    } catch (err) {
      if (err instanceof RecordFormatError) break
      throw err
    }
    onRecord(record)
    o = end
  }
  return o
}
