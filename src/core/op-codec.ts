// The op encoding: how a request's ops travel from the front that parsed them to the shard that
// owns their partition, whether it applies them inline or they cross a shared-memory ring.
//
//   op = u8 kind | u8 keyLen | u32 FNV-1a hash of the key (LE) | key bytes (ASCII)
//        | [f64 delta (LE), kinds with OP_HAS_DELTA] | [u8 argLen | arg (ASCII), kinds with OP_HAS_ARG]
//
// The hash, computed once by the front for routing, is also the partition table's hash.
export const OP_HEADER_BYTES = 6

// Writes: applied to partition state, logged, acked per the ack mode.
export const OP_INCR = 1 // f64 delta follows the key
export const OP_RESET = 2
export const OP_INCR_ACTOR = 4 // f64 delta, then the actor
export const OP_LIKE = 5 // key = item "type:id", arg = user
export const OP_UNLIKE = 6 // as OP_LIKE
export const OP_ADD_ACTOR = 13 // arg = actor: joins the counter's unique actors (and sample), count unchanged; 1 if the HLL changed, else 0
// Reads: answered at once with one number each.
export const OP_GET = 3 // the value
export const OP_HAS_LIKED = 7 // key = item, arg = user; 1 or 0
export const OP_LIKE_COUNT = 8 // key = item
export const OP_UNIQUE = 9 // HyperLogLog estimate of distinct actors
export const OP_RATE = 10 // increments per second over about the last minute
export const OP_QUOTA_TAKE = 11 // key = user, arg = Idempotency-Key or empty: ms to wait (0 = admitted, a token taken)
export const OP_QUOTA_PEEK = 12 // key = user: tokens left
export const OP_GET_PART = 14 // the value as stored; OP_GET answers a split counter's home with its ways + 0.5 instead (src/core/hot-keys.ts)

/** Each kind's name, indexed by kind (metrics label ops by it). */
export const OP_NAMES = ['', 'increment', 'reset', 'get', 'increment_actor', 'like', 'unlike', 'has_liked', 'like_count', 'unique', 'rate', 'quota_take', 'quota_peek', 'add_actor', 'get_part']

/** Whether an op kind carries an f64 delta after its key, and a length-prefixed argument after that. */
export const OP_HAS_DELTA = [false, true, false, false, true, false, false, false, false, false, false, false, false, false, false]
export const OP_HAS_ARG = [false, false, false, false, true, true, true, true, false, false, false, true, false, true, false]

/** Bytes of the op starting at `o`. */
export function opSize (buf: Uint8Array, o: number): number {
  const kind = buf[o]
  let n = OP_HEADER_BYTES + buf[o + 1]
  if (OP_HAS_DELTA[kind]) n += 8
  if (OP_HAS_ARG[kind]) n += 1 + buf[o + n]
  return n
}

// Scratch for a float64's little-endian bytes without a Buffer call (x86 and ARM are LE).
const F64 = new Float64Array(1)
const F64_BYTES = new Uint8Array(F64.buffer)

/** A growable byte buffer that ops (and the records around them) are written into. */
export class ByteSink {
  buf: Buffer
  len = 0

  constructor (initial = 4096) {
    this.buf = Buffer.allocUnsafeSlow(initial)
  }

  reserve (bytes: number): void {
    if (this.len + bytes <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.len + bytes) size *= 2
    const bigger = Buffer.allocUnsafeSlow(size)
    this.buf.copy(bigger, 0, 0, this.len)
    this.buf = bigger
  }

  u8 (v: number): void {
    this.reserve(1)
    this.buf[this.len++] = v
  }

  u32 (v: number): void {
    this.reserve(4)
    this.buf.writeUInt32LE(v >>> 0, this.len)
    this.len += 4
  }

  f64 (v: number): void {
    this.reserve(8)
    this.buf.writeDoubleLE(v, this.len)
    this.len += 8
  }

  latin1 (s: string): void {
    this.reserve(s.length)
    this.len += this.buf.write(s, this.len, 'latin1')
  }

  bytes (src: Uint8Array, start: number, end: number): void {
    this.reserve(end - start)
    this.buf.set(src.subarray(start, end), this.len)
    this.len += end - start
  }

  /** Writes an op's header at the end (room reserved by the caller); returns where its key goes. */
  private header (kind: number, keyLen: number, hash: number): number {
    const buf = this.buf
    const o = this.len
    buf[o] = kind
    buf[o + 1] = keyLen
    buf[o + 2] = hash
    buf[o + 3] = hash >>> 8
    buf[o + 4] = hash >>> 16
    buf[o + 5] = hash >>> 24
    return o + OP_HEADER_BYTES
  }

  /** An op on the key "type:id" (string), with its delta and argument as the kind wants. */
  op (kind: number, hash: number, key: string, delta: number, arg: string | null): void {
    const a = arg ?? ''
    this.reserve(OP_HEADER_BYTES + key.length + 9 + a.length)
    const buf = this.buf
    let o = this.header(kind, key.length, hash)
    o += buf.write(key, o, 'latin1')
    if (OP_HAS_DELTA[kind]) o = buf.writeDoubleLE(delta, o)
    if (OP_HAS_ARG[kind]) {
      buf[o] = a.length
      o += 1 + buf.write(a, o + 1, 'latin1')
    }
    this.len = o
  }

  /**
   * An op whose key (and argument, when argStart ≥ 0) are copied straight from a request's bytes
   * (the Redis-protocol front parses commands in place): plain byte stores only.
   */
  opFromBytes (kind: number, hash: number, src: Uint8Array, keyStart: number, keyLen: number, delta: number, argStart: number, argLen: number): void {
    this.reserve(OP_HEADER_BYTES + keyLen + 9 + argLen)
    const buf = this.buf
    let o = this.header(kind, keyLen, hash)
    for (let k = keyStart, end = keyStart + keyLen; k < end; k++) buf[o++] = src[k]
    if (OP_HAS_DELTA[kind]) {
      F64[0] = delta
      buf[o] = F64_BYTES[0]; buf[o + 1] = F64_BYTES[1]; buf[o + 2] = F64_BYTES[2]; buf[o + 3] = F64_BYTES[3]
      buf[o + 4] = F64_BYTES[4]; buf[o + 5] = F64_BYTES[5]; buf[o + 6] = F64_BYTES[6]; buf[o + 7] = F64_BYTES[7]
      o += 8
    }
    if (OP_HAS_ARG[kind]) {
      buf[o++] = argStart < 0 ? 0 : argLen
      if (argStart >= 0) for (let k = argStart, end = argStart + argLen; k < end; k++) buf[o++] = src[k]
    }
    this.len = o
  }

  /**
   * An increment whose key is copied straight from a binary stream frame: [prefix (a namespace's)],
   * type bytes, ':', id bytes, and the actor when actorStart ≥ 0. The stream's hot path: plain byte
   * stores only.
   */
  incrementFromFrame (hash: number, src: Uint8Array, typeStart: number, typeLen: number, idStart: number, idLen: number,
    delta: number, actorStart: number, actorLen: number, prefix: Uint8Array | null = null): void {
    const keyLen = (prefix === null ? 0 : prefix.length) + typeLen + 1 + idLen
    this.reserve(OP_HEADER_BYTES + keyLen + 9 + actorLen)
    const buf = this.buf
    let o = this.header(actorStart < 0 ? OP_INCR : OP_INCR_ACTOR, keyLen, hash)
    if (prefix !== null) for (let k = 0; k < prefix.length; k++) buf[o++] = prefix[k]
    for (let k = typeStart, end = typeStart + typeLen; k < end; k++) buf[o++] = src[k]
    buf[o++] = 0x3a // ':'
    for (let k = idStart, end = idStart + idLen; k < end; k++) buf[o++] = src[k]
    F64[0] = delta
    buf[o] = F64_BYTES[0]; buf[o + 1] = F64_BYTES[1]; buf[o + 2] = F64_BYTES[2]; buf[o + 3] = F64_BYTES[3]
    buf[o + 4] = F64_BYTES[4]; buf[o + 5] = F64_BYTES[5]; buf[o + 6] = F64_BYTES[6]; buf[o + 7] = F64_BYTES[7]
    o += 8
    if (actorStart >= 0) {
      buf[o++] = actorLen
      for (let k = actorStart, end = actorStart + actorLen; k < end; k++) buf[o++] = src[k]
    }
    this.len = o
  }
}
