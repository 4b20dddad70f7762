// The client's side of the binary WebSocket stream format (docs/stream-protocol.md). Written
// independently of the server's codec, so the tests and benchmarks that use it also cross-check
// the wire contract; it imports nothing from the server.
//
// client → server (little-endian):
//   u8 kind = 0x01 | u32 seq | u16 nOps (≥ 1) | nOps × op
//   op = u8 typeLenAndSign (bits 0-5 type length 1..32, bit 7 = negative delta, bit 6 = 0)
//        | type bytes | u8 idLen (1..128) | id bytes | |delta| as unsigned LEB128 (≤ 2^53-1)
// server → client: ok = u8 0x81 | u32 seq; error = u8 0x82 | u32 seq | UTF-8 JSON {code,message}
import { CounterdClientError } from './errors'
import { isValidId, isValidType } from './keys'

export const KIND_INCREMENTS = 0x01
export const ACK_OK = 0x81
export const ACK_ERROR = 0x82
export const FRAME_HEADER_BYTES = 7
export const SEQ_OFFSET = 1
export const MAX_OPS_PER_FRAME = 0xffff

const SIGN_BIT = 0x80
const RESERVED_BIT = 0x40
const TYPE_LEN_MASK = 0x3f

/** One increment: counter `type:id` changes by `delta` (a safe integer, may be negative). */
export type Op = readonly [type: string, id: string, delta: number]

export interface DecodedFrame {
  seq: number
  ops: Op[]
}

export type DecodedAck =
  | { seq: number, ok: true }
  | { seq: number, ok: false, code: string, message: string }

function varintLength (n: number): number {
  let len = 1
  while (n >= 0x80) {
    n = Math.floor(n / 128)
    len++
  }
  return len
}

function checkOp (op: Op, index: number): void {
  const [type, id, delta] = op
  if (!isValidType(type)) throw new CounterdClientError('invalid_type', `op ${index}: type ${JSON.stringify(type)} must match [a-z0-9_-]{1,32}`)
  if (!isValidId(id)) throw new CounterdClientError('invalid_id', `op ${index}: id ${JSON.stringify(id)} must match [A-Za-z0-9_.:-]{1,128}`)
  if (!Number.isSafeInteger(delta)) throw new CounterdClientError('invalid_delta', `op ${index}: delta ${String(delta)} must be a safe integer`)
}

function checkSeq (seq: number): void {
  if (!Number.isInteger(seq) || seq < 0 || seq > 0xffffffff) throw new CounterdClientError('invalid_seq')
}

/** Bytes `encodeFrame` will produce for these ops. */
export function encodedFrameLength (ops: readonly Op[]): number {
  let len = FRAME_HEADER_BYTES
  for (const [type, id, delta] of ops) len += 1 + type.length + 1 + id.length + varintLength(Math.abs(delta))
  return len
}

/** Encodes one increments frame; throws CounterdClientError on anything the server would refuse. */
export function encodeFrame (seq: number, ops: readonly Op[]): Buffer {
  checkSeq(seq)
  if (ops.length < 1 || ops.length > MAX_OPS_PER_FRAME) throw new CounterdClientError('too_many_ops', `a frame holds 1..${MAX_OPS_PER_FRAME} ops, got ${ops.length}`)
  ops.forEach(checkOp)
  const buf = Buffer.allocUnsafe(encodedFrameLength(ops))
  buf[0] = KIND_INCREMENTS
  buf.writeUInt32LE(seq, 1)
  buf.writeUInt16LE(ops.length, 5)
  let p = FRAME_HEADER_BYTES
  for (const [type, id, delta] of ops) {
    buf[p++] = type.length | (delta < 0 ? SIGN_BIT : 0)
    p += buf.write(type, p, 'latin1')
    buf[p++] = id.length
    p += buf.write(id, p, 'latin1')
    let n = Math.abs(delta)
    while (n >= 0x80) {
      buf[p++] = (n % 128) | 0x80
      n = Math.floor(n / 128)
    }
    buf[p++] = n
  }
  return buf
}

/** Rewrites the seq of an encoded frame in place (frames are prebuilt and reused). */
export function setFrameSeq (frame: Buffer, seq: number): void {
  frame.writeUInt32LE(seq, SEQ_OFFSET)
}

function malformed (why: string): CounterdClientError {
  return new CounterdClientError('malformed_frame', `frame could not be decoded: ${why}`)
}

/** Decodes a client frame; the inverse of encodeFrame, strict about every field. */
export function decodeFrame (buf: Uint8Array): DecodedFrame {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  if (b.length < FRAME_HEADER_BYTES) throw malformed('shorter than the 7-byte header')
  if (b[0] !== KIND_INCREMENTS) throw malformed(`unknown kind 0x${b[0].toString(16)}`)
  const seq = b.readUInt32LE(1)
  const n = b.readUInt16LE(5)
  if (n < 1) throw malformed('nOps is 0')
  const ops: Op[] = []
  let p = FRAME_HEADER_BYTES
  for (let i = 0; i < n; i++) {
    if (p >= b.length) throw malformed(`op ${i} is missing`)
    const head = b[p++]
    if ((head & RESERVED_BIT) !== 0) throw malformed(`op ${i} sets reserved bit 6`)
    const typeLen = head & TYPE_LEN_MASK
    if (typeLen < 1 || typeLen > 32 || p + typeLen + 1 > b.length) throw malformed(`op ${i} type length`)
    const type = b.toString('latin1', p, p + typeLen)
    p += typeLen
    const idLen = b[p++]
    if (idLen < 1 || idLen > 128 || p + idLen > b.length) throw malformed(`op ${i} id length`)
    const id = b.toString('latin1', p, p + idLen)
    p += idLen
    let magnitude = 0
    let scale = 1
    for (let k = 0; ; k++) {
      if (k >= 8 || p >= b.length) throw malformed(`op ${i} delta varint`)
      const byte = b[p++]
      magnitude += (byte & 0x7f) * scale
      scale *= 128
      if ((byte & 0x80) === 0) break
    }
    if (!Number.isSafeInteger(magnitude)) throw malformed(`op ${i} delta exceeds 2^53-1`)
    if (!isValidType(type)) throw malformed(`op ${i} type bytes`)
    if (!isValidId(id)) throw malformed(`op ${i} id bytes`)
    ops.push([type, id, (head & SIGN_BIT) !== 0 ? -magnitude : magnitude])
  }
  if (p !== b.length) throw malformed(`${b.length - p} trailing bytes`)
  return { seq, ops }
}

/** Encodes a server ack (used by tests to check decodeAck against the spec bytes). */
export function encodeAck (seq: number, error?: { code: string, message: string }): Buffer {
  checkSeq(seq)
  const body = error === undefined ? null : Buffer.from(JSON.stringify({ code: error.code, message: error.message }), 'utf8')
  const buf = Buffer.allocUnsafe(5 + (body?.length ?? 0))
  buf[0] = body === null ? ACK_OK : ACK_ERROR
  buf.writeUInt32LE(seq, 1)
  if (body !== null) body.copy(buf, 5)
  return buf
}

/** Decodes a server ack; throws malformed_frame on anything else. */
export function decodeAck (buf: Uint8Array): DecodedAck {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  if (b.length < 5) throw malformed('ack shorter than 5 bytes')
  const seq = b.readUInt32LE(1)
  if (b[0] === ACK_OK) {
    if (b.length !== 5) throw malformed('ok ack longer than 5 bytes')
    return { seq, ok: true }
  }
  if (b[0] !== ACK_ERROR) throw malformed(`unknown ack kind 0x${b[0].toString(16)}`)
  let parsed: unknown
  try {
    parsed = JSON.parse(b.toString('utf8', 5))
  } catch {
    throw malformed('error ack body is not JSON')
  }
  const e = parsed as { code?: unknown, message?: unknown }
  if (typeof e?.code !== 'string') throw malformed('error ack body has no code')
  return { seq, ok: false, code: e.code, message: typeof e.message === 'string' ? e.message : '' }
}
