// The records shards exchange through their rings (all integers little-endian). A ring message
// holds one or more whole records (or a chunk of one large record; see outbox.ts).
//
//   UNIT        u8 1 | u8 flags | u32 unitId | u32 seq | u16 tagLen | tag (ASCII) | u32 nOps | u32 opsBytes | ops (op-codec.ts)
//               flags: READ = answer at once, no log; VALUES = reply with a value per op;
//               TAG = tag present; STREAM = tag is a clientId and seq is its frame seq
//   REPLY       u8 2 | u8 flags | u32 unitId | u32 refused | [u32 n | f64 × n if VALUES] | [u16 len | error JSON if ERROR]
//               flags: DUP = a resend, nothing applied in some partition; VALUES; ERROR
//   CTRL        u8 3 | u32 requestId | u32 len | JSON {"name","args"}       (requests that are not plain ops)
//   CTRL_REPLY  u8 4 | u32 requestId | u8 ok | u32 len | JSON (the value, or {"code","message"})
import type { ByteSink } from '../core/op-codec'

export const REC_UNIT = 1
export const REC_REPLY = 2
export const REC_CTRL = 3
export const REC_CTRL_REPLY = 4

export const UNIT_READ = 1
export const UNIT_VALUES = 2
export const UNIT_TAG = 4
export const UNIT_STREAM = 8

export const REPLY_DUP = 1
export const REPLY_VALUES = 2
export const REPLY_ERROR = 4

/** Bytes of a UNIT header with a tag of `tagLen`; nOps and opsBytes are its last 8 bytes. */
export function unitHeaderBytes (tagLen: number): number {
  return 1 + 1 + 4 + 4 + 2 + tagLen + 8
}

/** Writes a UNIT header with nOps and opsBytes 0; returns the offset of nOps, to fill in when the unit ends. */
export function writeUnitHeader (sink: ByteSink, flags: number, unitId: number, seq: number, tag: string | null): number {
  const tagLen = tag === null ? 0 : tag.length
  sink.reserve(unitHeaderBytes(tagLen))
  const buf = sink.buf
  let o = sink.len
  buf[o++] = REC_UNIT
  buf[o++] = flags
  o = buf.writeUInt32LE(unitId >>> 0, o)
  o = buf.writeUInt32LE(seq >>> 0, o)
  o = buf.writeUInt16LE(tagLen, o)
  if (tag !== null) o += buf.write(tag, o, 'latin1')
  const nOpsAt = o
  o = buf.writeUInt32LE(0, o)
  o = buf.writeUInt32LE(0, o)
  sink.len = o
  return nOpsAt
}

export function writeReply (sink: ByteSink, unitId: number, dup: boolean, refused: number, values: Float64Array | null, n: number, error: string | null): void {
  const err = error === null ? null : Buffer.from(error)
  sink.reserve(10 + (values === null ? 0 : 4 + 8 * n) + (err === null ? 0 : 2 + err.length))
  const buf = sink.buf
  let o = sink.len
  buf[o++] = REC_REPLY
  buf[o++] = (dup ? REPLY_DUP : 0) | (values === null ? 0 : REPLY_VALUES) | (err === null ? 0 : REPLY_ERROR)
  o = buf.writeUInt32LE(unitId >>> 0, o)
  o = buf.writeUInt32LE(refused, o)
  if (values !== null) {
    o = buf.writeUInt32LE(n, o)
    for (let i = 0; i < n; i++) o = buf.writeDoubleLE(values[i], o)
  }
  if (err !== null) {
    o = buf.writeUInt16LE(err.length, o)
    o += err.copy(buf, o)
  }
  sink.len = o
}

export function writeControl (sink: ByteSink, requestId: number, json: string): void {
  const body = Buffer.from(json)
  sink.reserve(9 + body.length)
  let o = sink.len
  sink.buf[o++] = REC_CTRL
  o = sink.buf.writeUInt32LE(requestId >>> 0, o)
  o = sink.buf.writeUInt32LE(body.length, o)
  o += body.copy(sink.buf, o)
  sink.len = o
}

export function writeControlReply (sink: ByteSink, requestId: number, ok: boolean, json: string): void {
  const body = Buffer.from(json)
  sink.reserve(10 + body.length)
  let o = sink.len
  sink.buf[o++] = REC_CTRL_REPLY
  o = sink.buf.writeUInt32LE(requestId >>> 0, o)
  sink.buf[o++] = ok ? 1 : 0
  o = sink.buf.writeUInt32LE(body.length, o)
  o += body.copy(sink.buf, o)
  sink.len = o
}
