// The compact binary stream format (docs/stream-protocol.md). All integers little-endian.
//   frame = u8 kind (0x01 increments) | u32 seq | u16 nOps | nOps × op
//   op    = u8 typeLenAndSign (bits 0-5 type length 1..32, bit 6 = an actor follows, bit 7 = negative delta)
//           | type bytes | u8 idLen (1..128) | id bytes | unsigned LEB128 magnitude (≤ 2^53−1)
//           | [u8 actorLen (1..128) | actor bytes, when bit 6 is set]
//   acks  = 0x81 | u32 seq                       (ok)
//           0x82 | u32 seq | UTF-8 JSON error    (error)
import { CounterdError } from './errors'
import { FNV_OFFSET, MAX_ID_LEN, MAX_TYPE_LEN, fnv1a32Byte, isIdByte, isTypeByte } from './keys'
import type { FrameOps } from './frame-ops'

export const KIND_INCREMENTS = 0x01
export const ACK_OK = 0x81
export const ACK_ERROR = 0x82
export const HEADER_BYTES = 7

const TWO_POW_53 = 2 ** 53

/**
 * Decodes and validates a whole frame into `out`. Returns null when the frame is good, or the
 * error to ack it with. Frames too short to carry a seq throw: they can only be answered by a close.
 * `seed`: the FNV-1a state the keys' hashes continue from (a namespace's prefix, src/core/namespaces.ts).
 */
export function decodeBinaryFrame (buf: Uint8Array, out: FrameOps, seed = FNV_OFFSET): CounterdError | null {
  if (buf.length < HEADER_BYTES) throw new CounterdError('malformed_frame', `binary frame of ${buf.length} bytes is shorter than its 7-byte header`)
  out.seq = (buf[1] | (buf[2] << 8) | (buf[3] << 16)) + buf[4] * 0x1000000
  out.n = 0
  if (buf[0] !== KIND_INCREMENTS) return new CounterdError('malformed_frame', `unknown frame kind 0x${buf[0].toString(16)}`)
  const nOps = buf[5] | (buf[6] << 8)
  if (nOps === 0) return new CounterdError('malformed_frame', 'frame has no ops')
  if (nOps > out.maxOps) return new CounterdError('too_many_ops', `frame has ${nOps} ops; at most ${out.maxOps} are allowed`)
  const len = buf.length
  let o = HEADER_BYTES
  for (let i = 0; i < nOps; i++) {
    if (o >= len) return truncated(i)
    const head = buf[o++]
    const typeLen = head & 0x3f
    if (typeLen < 1 || typeLen > MAX_TYPE_LEN) return new CounterdError('invalid_type', `op ${i}: type length ${typeLen} is outside 1..${MAX_TYPE_LEN}`)
    if (o + typeLen + 1 > len) return truncated(i)
    let h = seed
    const typeStart = o
    for (const end = o + typeLen; o < end; o++) {
      const c = buf[o]
      if (!isTypeByte(c)) return new CounterdError('invalid_type', `op ${i}: type must match [a-z0-9_-]{1,32}`)
      h = fnv1a32Byte(h, c)
    }
    h = fnv1a32Byte(h, 0x3a)
    const idLen = buf[o++]
    if (idLen < 1 || idLen > MAX_ID_LEN) return new CounterdError('invalid_id', `op ${i}: id length ${idLen} is outside 1..${MAX_ID_LEN}`)
    if (o + idLen > len) return truncated(i)
    const idStart = o
    for (const end = o + idLen; o < end; o++) {
      const c = buf[o]
      if (!isIdByte(c)) return new CounterdError('invalid_id', `op ${i}: id must match [A-Za-z0-9_.:-]{1,128}`)
      h = fnv1a32Byte(h, c)
    }
    // Unsigned LEB128, at most 8 bytes (56 bits), value below 2^53.
    let mag = 0
    let mul = 1
    let b = 0x80
    let k = 0
    while ((b & 0x80) !== 0) {
      if (o >= len) return truncated(i)
      if (k === 8) return new CounterdError('invalid_delta', `op ${i}: delta varint is longer than 8 bytes`)
      b = buf[o++]
      mag += (b & 0x7f) * mul
      mul *= 128
      k++
    }
    if (mag >= TWO_POW_53) return new CounterdError('invalid_delta', `op ${i}: delta magnitude is above 2^53-1`)
    out.actorStart[i] = -1
    if ((head & 0x40) !== 0) {
      if (o >= len) return truncated(i)
      const actorLen = buf[o++]
      if (actorLen < 1 || actorLen > MAX_ID_LEN) return new CounterdError('invalid_actor', `op ${i}: actor length ${actorLen} is outside 1..${MAX_ID_LEN}`)
      if (o + actorLen > len) return truncated(i)
      for (let k = o; k < o + actorLen; k++) {
        if (!isIdByte(buf[k])) return new CounterdError('invalid_actor', `op ${i}: actor must match [A-Za-z0-9_.:-]{1,128}`)
      }
      out.actorStart[i] = o
      out.actorLen[i] = actorLen
      o += actorLen
    }
    out.typeStart[i] = typeStart
    out.typeLen[i] = typeLen
    out.idStart[i] = idStart
    out.idLen[i] = idLen
    out.delta[i] = (head & 0x80) !== 0 ? -mag : mag
    out.hash[i] = h >>> 0
  }
  if (o !== len) return new CounterdError('malformed_frame', `${len - o} bytes after the last op`)
  out.n = nOps
  return null
}

function truncated (op: number): CounterdError {
  return new CounterdError('malformed_frame', `frame ends inside op ${op}`)
}

export function encodeAckOk (seq: number): Buffer {
  const b = Buffer.allocUnsafe(5)
  b[0] = ACK_OK
  b.writeUInt32LE(seq, 1)
  return b
}

export function encodeAckError (seq: number, err: object): Buffer {
  const json = Buffer.from(JSON.stringify(err))
  const b = Buffer.allocUnsafe(5 + json.length)
  b[0] = ACK_ERROR
  b.writeUInt32LE(seq, 1)
  json.copy(b, 5)
  return b
}

// ---- encoding (clients, tests, the load generator) ----

export interface StreamOp { type: string, id: string, by: number, actor?: string }

export function encodeBinaryFrame (seq: number, ops: readonly StreamOp[]): Buffer {
  let size = HEADER_BYTES
  for (const op of ops) size += 2 + op.type.length + op.id.length + varintSize(Math.abs(op.by)) + (op.actor === undefined ? 0 : 1 + op.actor.length)
  const b = Buffer.allocUnsafe(size)
  b[0] = KIND_INCREMENTS
  b.writeUInt32LE(seq, 1)
  b.writeUInt16LE(ops.length, 5)
  let o = HEADER_BYTES
  for (const op of ops) {
    b[o++] = op.type.length | (op.by < 0 ? 0x80 : 0) | (op.actor === undefined ? 0 : 0x40)
    o += b.write(op.type, o, 'latin1')
    b[o++] = op.id.length
    o += b.write(op.id, o, 'latin1')
    let m = Math.abs(op.by)
    do {
      const low = m % 128
      m = Math.floor(m / 128)
      b[o++] = m > 0 ? low | 0x80 : low
    } while (m > 0)
    if (op.actor !== undefined) {
      b[o++] = op.actor.length
      o += b.write(op.actor, o, 'latin1')
    }
  }
  return b
}

function varintSize (m: number): number {
  let n = 1
  while (m >= 128) { m = Math.floor(m / 128); n++ }
  return n
}
