// Binary encoding of delta records. Used as the WAL payload and as the Kafka message value, so
// other services can consume the log (docs/cluster-storage.md documents it with a consumer).
//
// payload v2 (little-endian; v1 is still read: no replica, no totals, no features):
//   u8 version (=2) | u16 partition | u32 epoch | f64 seq | f64 ts
//   | u8 replicaLen | replica (ASCII) | u8 flags (bit 0: entries carry totals)
//   u32 nKeys     × (u8 keyLen | key (ASCII) | f64 delta | [f64 p | f64 n if flags bit 0])
//   u32 nDedup    × (u8 kind | u16 tagLen | tag (ASCII) | f64 value | f64 ts)
//   u32 nFeatures × (u8 kind | u8 keyLen | key | u16 argLen | arg (UTF-8))
// WAL frame: u32 payloadLen | u32 crc32(payload) | payload
import { crc32 } from 'node:zlib'
import type { DedupEntry, DedupKind, DeltaRecord, FeatureKind, FeatureOp } from './records'

export const RECORD_VERSION = 2
export const FRAME_HEADER = 8
const FLAG_TOTALS = 1

export class RecordFormatError extends Error {}

function headerSize (replica: string): number {
  return 1 + 2 + 4 + 8 + 8 + 1 + replica.length + 1 + 4
}

export function dedupSize (dedup: readonly DedupEntry[]): number {
  let n = 4
  for (let i = 0; i < dedup.length; i++) n += 1 + 2 + dedup[i].tag.length + 16
  return n
}

export function featuresSize (features: readonly FeatureOp[]): number {
  let n = 4
  for (let i = 0; i < features.length; i++) n += 1 + 1 + features[i].key.length + 2 + Buffer.byteLength(features[i].arg)
  return n
}

/** Writes a v2 header at `o` (through nKeys); returns the offset after it. */
export function writeRecordHeader (buf: Buffer, o: number, partition: number, epoch: number, seq: number, ts: number,
  replica: string, withTotals: boolean, nKeys: number): number {
  o = buf.writeUInt8(RECORD_VERSION, o)
  o = buf.writeUInt16LE(partition, o)
  o = buf.writeUInt32LE(epoch, o)
  o = buf.writeDoubleLE(seq, o)
  o = buf.writeDoubleLE(ts, o)
  o = buf.writeUInt8(replica.length, o)
  o += buf.write(replica, o, 'latin1')
  o = buf.writeUInt8(withTotals ? FLAG_TOTALS : 0, o)
  return buf.writeUInt32LE(nKeys, o)
}

export function recordHeaderSize (replica: string): number { return headerSize(replica) }

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

export function writeFeatures (buf: Buffer, o: number, features: readonly FeatureOp[]): number {
  o = buf.writeUInt32LE(features.length, o)
  for (let i = 0; i < features.length; i++) {
    const f = features[i]
    o = buf.writeUInt8(f.kind, o)
    o = buf.writeUInt8(f.key.length, o)
    o += buf.write(f.key, o, 'latin1')
    const argLen = buf.write(f.arg, o + 2, 'utf8')
    o = buf.writeUInt16LE(argLen, o)
    o += argLen
  }
  return o
}

/**
 * A record sealed straight into its encoded form by a partition actor (no per-key strings on the
 * hot path). Its other fields are decoded on first use, for the consumers that need them.
 */
export class EncodedRecord implements DeltaRecord {
  private decoded: DeltaRecord | null = null
  constructor (readonly partition: number, readonly epoch: number, readonly seq: number, readonly ts: number, readonly payload: Buffer) {}
  private get full (): DeltaRecord { return (this.decoded ??= decodeRecord(this.payload)) }
  layout (): PayloadLayout { return payloadLayout(this.payload) }
  get keys (): string[] { return this.full.keys }
  get deltas (): number[] { return this.full.deltas }
  get dedup (): DedupEntry[] { return this.full.dedup }
  get replica (): string | undefined { return this.full.replica }
  get ps (): number[] | undefined { return this.full.ps }
  get ns (): number[] | undefined { return this.full.ns }
  get features (): FeatureOp[] | undefined { return this.full.features }
}

function payloadSize (r: DeltaRecord): number {
  if (r instanceof EncodedRecord) return r.payload.length
  const totals = r.ps !== undefined
  let n = headerSize(r.replica ?? '')
  for (let i = 0; i < r.keys.length; i++) n += 1 + r.keys[i].length + (totals ? 24 : 8)
  return n + dedupSize(r.dedup) + featuresSize(r.features ?? [])
}

function writePayload (r: DeltaRecord, buf: Buffer, o: number): number {
  if (r instanceof EncodedRecord) return o + r.payload.copy(buf, o)
  const ps = r.ps
  const ns = r.ns
  o = writeRecordHeader(buf, o, r.partition, r.epoch, r.seq, r.ts, r.replica ?? '', ps !== undefined, r.keys.length)
  for (let i = 0; i < r.keys.length; i++) {
    const k = r.keys[i]
    o = buf.writeUInt8(k.length, o)
    o += buf.write(k, o, 'latin1')
    o = buf.writeDoubleLE(r.deltas[i], o)
    if (ps !== undefined && ns !== undefined) {
      o = buf.writeDoubleLE(ps[i], o)
      o = buf.writeDoubleLE(ns[i], o)
    }
  }
  o = writeDedupEntries(buf, o, r.dedup)
  return writeFeatures(buf, o, r.features ?? [])
}

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
    buf.writeUInt32LE(crc32(buf.subarray(start, end)), o + 4)
    o = end
  }
  return buf
}

/** Where the parts of a payload are, read from its header (no keys decoded). */
export interface PayloadLayout {
  version: number
  partition: number
  epoch: number
  seq: number
  ts: number
  replica: string | undefined
  totals: boolean // entries carry p and n
  nKeys: number
  keysAt: number // offset of the first entry
}

export function payloadLayout (buf: Buffer, start = 0, end = buf.length): PayloadLayout {
  let o = start
  const need = (n: number): void => {
    if (o + n > end) throw new RecordFormatError(`record truncated at byte ${o - start}`)
  }
  need(27)
  const version = buf.readUInt8(o); o += 1
  if (version !== 1 && version !== 2) throw new RecordFormatError(`unknown record version ${version}`)
  const partition = buf.readUInt16LE(o); o += 2
  const epoch = buf.readUInt32LE(o); o += 4
  const seq = buf.readDoubleLE(o); o += 8
  const ts = buf.readDoubleLE(o); o += 8
  let replica: string | undefined
  let totals = false
  if (version === 2) {
    need(1)
    const len = buf[o]; o += 1
    need(len + 1)
    replica = buf.toString('latin1', o, o + len); o += len
    totals = (buf[o] & FLAG_TOTALS) !== 0; o += 1
  }
  need(4)
  const nKeys = buf.readUInt32LE(o); o += 4
  return { version, partition, epoch, seq, ts, replica, totals, nKeys, keysAt: o }
}

/**
 * Reads `u32 n × (u8 kind | u16 tagLen | tag | f64 value | f64 ts)` at `o` (the layout of log
 * records' and snapshot files' dedup sections); null when it runs past `end`.
 */
export function readDedupEntries (buf: Buffer, o: number, end: number): { entries: DedupEntry[], end: number } | null {
  if (o + 4 > end) return null
  const n = buf.readUInt32LE(o); o += 4
  const entries: DedupEntry[] = new Array(n)
  for (let i = 0; i < n; i++) {
    if (o + 3 > end) return null
    const kind = buf.readUInt8(o) as DedupKind; o += 1
    const len = buf.readUInt16LE(o); o += 2
    if (o + len + 16 > end) return null
    const tag = buf.toString('latin1', o, o + len); o += len
    const value = buf.readDoubleLE(o); o += 8
    const ts = buf.readDoubleLE(o); o += 8
    entries[i] = { kind, tag, value, ts }
  }
  return { entries, end: o }
}

/** The sections after the entries: dedup entries and (v2) feature ops; `o` is where they start. */
export function decodeTail (buf: Buffer, o: number, end: number, version: number): { dedup: DedupEntry[], features: FeatureOp[] } {
  const need = (n: number): void => {
    if (o + n > end) throw new RecordFormatError('record truncated in its dedup or feature section')
  }
  const read = readDedupEntries(buf, o, end)
  if (read === null) throw new RecordFormatError('record truncated in its dedup or feature section')
  const dedup = read.entries
  o = read.end
  const features: FeatureOp[] = []
  if (version === 2) {
    need(4)
    const nFeatures = buf.readUInt32LE(o); o += 4
    for (let i = 0; i < nFeatures; i++) {
      need(2)
      const kind = buf.readUInt8(o) as FeatureKind; o += 1
      const klen = buf[o]; o += 1
      need(klen + 2)
      const key = buf.toString('latin1', o, o + klen); o += klen
      const alen = buf.readUInt16LE(o); o += 2
      need(alen)
      features.push({ kind, key, arg: buf.toString('utf8', o, o + alen) })
      o += alen
    }
  }
  if (o !== end) throw new RecordFormatError(`record has ${end - o} trailing bytes`)
  return { dedup, features }
}

/** Decodes one payload (v1 or v2); throws RecordFormatError when it is not well formed. */
export function decodeRecord (buf: Buffer, start = 0, end = buf.length): DeltaRecord {
  const L = payloadLayout(buf, start, end)
  let o = L.keysAt
  const keys: string[] = new Array(L.nKeys)
  const deltas: number[] = new Array(L.nKeys)
  const ps: number[] | undefined = L.totals ? new Array(L.nKeys) : undefined
  const ns: number[] | undefined = L.totals ? new Array(L.nKeys) : undefined
  for (let i = 0; i < L.nKeys; i++) {
    if (o + 1 > end) throw new RecordFormatError(`record truncated at byte ${o - start}`)
    const len = buf[o]; o += 1
    if (o + len + (L.totals ? 24 : 8) > end) throw new RecordFormatError(`record truncated at byte ${o - start}`)
    keys[i] = buf.toString('latin1', o, o + len); o += len
    deltas[i] = buf.readDoubleLE(o); o += 8
    if (ps !== undefined && ns !== undefined) {
      ps[i] = buf.readDoubleLE(o); o += 8
      ns[i] = buf.readDoubleLE(o); o += 8
    }
  }
  const { dedup, features } = decodeTail(buf, o, end, L.version)
  const record: DeltaRecord = { partition: L.partition, epoch: L.epoch, seq: L.seq, ts: L.ts, keys, deltas, dedup }
  if (L.version === 2) {
    record.replica = L.replica
    if (ps !== undefined) { record.ps = ps; record.ns = ns }
    if (features.length > 0) record.features = features
  }
  return record
}

/**
 * Reads consecutive WAL frames. Stops at the first frame that is incomplete or fails its CRC
 * (a torn tail after a crash) and returns how many bytes were good. The records are views of
 * `buf`, decoded lazily.
 */
export function decodeFrames (buf: Buffer, onRecord: (r: EncodedRecord) => void): number {
  let o = 0
  while (o + FRAME_HEADER <= buf.length) {
    const len = buf.readUInt32LE(o)
    const crc = buf.readUInt32LE(o + 4)
    const start = o + FRAME_HEADER
    const end = start + len
    if (end > buf.length || crc32(buf.subarray(start, end)) !== crc) break
    let L: PayloadLayout
    try {
      L = payloadLayout(buf, start, end)
    } catch (err) {
      if (err instanceof RecordFormatError) break
      throw err
    }
    // Only the header is read here: a reader filtering by partition decodes nothing else.
    onRecord(new EncodedRecord(L.partition, L.epoch, L.seq, L.ts, buf.subarray(start, end)))
    o = end
  }
  return o
}
