// HyperLogLog with p = 14 (16384 six-bit registers, standard error 1.04/√16384 ≈ 0.81%) whose
// encoding is a Redis HLL string: "HYLL" header, dense or sparse registers, cached cardinality.
// Same hash (MurmurHash64A, seed 0xadc83b19), same register choice and the same estimator as
// Redis 7 (Ertl's improved raw estimator), so PFCOUNT on a value we wrote answers what count()
// answers, PFMERGE mixes ours with Redis' own, and Redis-made strings load here.
//
// Memory grows with the counter in three tiers:
//   exact   up to `exactLimit` (default 128) distinct elements, the set of their 64-bit hashes:
//           count() is exact (up to a 64-bit hash collision). ≤ 2 KiB.
//   sparse  the non-zero registers as sorted (index << 6 | value) words, up to 2048 of them. ≤ 8 KiB.
//   dense   12288 bytes of packed 6-bit registers laid out exactly as Redis lays them out.
//
// Register format (Redis): header 16 bytes = "HYLL", encoding (0 dense, 1 sparse), 3 unused
// zero bytes, cached cardinality as 8 bytes little-endian whose top bit set means "stale".
// Dense: register i occupies bits 6i..6i+5, least significant bit first. Sparse opcodes:
// ZERO 00xxxxxx (1-64 zero registers), XZERO 01xxxxxx yyyyyyyy (1-16384 zeros),
// VAL 1vvvvvxx (1-4 registers of value 1-32).
import { CounterdError } from '../../src/core/errors'
import { murmur64, murmur64String, REDIS_HLL_SEED } from './murmur64'
import { checkOptions, intOption } from './options'

export const HLL_REGISTERS = 16384
const P_MASK = HLL_REGISTERS - 1
const HLL_Q = 50 // hash bits left after the register index
const HEADER_BYTES = 16
const DENSE_BYTES = 12288
export const HLL_DENSE_SIZE = HEADER_BYTES + DENSE_BYTES
/** Redis' default hll-sparse-max-bytes: we never write a sparse string longer than this. */
export const REDIS_SPARSE_MAX_BYTES = 3000
const SPARSE_VAL_MAX = 32
const SPARSE_MAX_ENTRIES = 2048
export const DEFAULT_EXACT_LIMIT = 128
export const MAX_EXACT_LIMIT = 512
const ALPHA_INF = 0.721347520444481703680 // 1 / (2 ln 2)
const ENC_DENSE = 0
const ENC_SPARSE = 1

const EXACT = 0
const SPARSE = 1
const DENSE = 2

// Module scratch (single-threaded; nothing here is held across calls).
const HASH = new Uint32Array(2)
const HISTO = new Int32Array(64)
let entryScratch = new Uint32Array(256)
const SPARSE_SCRATCH = Buffer.allocUnsafeSlow(HEADER_BYTES + REDIS_SPARSE_MAX_BYTES + 4)

export interface HyperLogLogOptions {
  /** Distinct elements kept as an exact set before switching to registers (0..512, default 128). */
  exactLimit?: number
}

export class HyperLogLog {
  private readonly exactLimit: number
  private mode = EXACT
  // exact tier: open-addressing set of 64-bit hashes as (lo, hi) word pairs; (0, 0) marks an
  // empty slot, and the one real hash equal to 0 is remembered in `zeroHash`.
  private exact: Uint32Array | null = new Uint32Array(16)
  private exactSize = 0
  private zeroHash = false
  // sparse tier: sorted words (register index << 6 | value), value >= 1.
  private sparse: Uint32Array | null = null
  private sparseSize = 0
  // dense tier: packed registers plus one pad byte so the last register reads 2 bytes safely.
  private dense: Uint8Array | null = null
  // cached estimate; -1 = stale (same meaning as the top bit of Redis' cached cardinality)
  private cache = -1

  constructor (options?: HyperLogLogOptions) {
    const o = checkOptions(options, ['exactLimit'])
    this.exactLimit = intOption(o, 'exactLimit', DEFAULT_EXACT_LIMIT, 0, MAX_EXACT_LIMIT)
    if (this.exactLimit === 0) this.toRegisters()
  }

  /** Adds the UTF-8 bytes of `element`. True when the answer may have changed (Redis PFADD's 1). */
  add (element: string): boolean {
    if (typeof element !== 'string') throw new CounterdError('invalid_argument', 'element must be a string')
    murmur64String(element, 0, REDIS_HLL_SEED, HASH)
    return this.addHash(HASH[0], HASH[1])
  }

  /** Adds raw bytes (what a Redis client sends for a binary element). */
  addBytes (bytes: Uint8Array, start = 0, end = bytes.length): boolean {
    if (!(bytes instanceof Uint8Array) || !(start >= 0 && start <= end && end <= bytes.length)) {
      throw new CounterdError('invalid_argument', 'addBytes needs a Uint8Array and 0 <= start <= end <= length')
    }
    murmur64(bytes, start, end, 0, REDIS_HLL_SEED, HASH)
    return this.addHash(HASH[0], HASH[1])
  }

  /** Adds an element by its MurmurHash64A (seed 0xadc83b19) given as 32-bit halves. */
  addHash (lo: number, hi: number): boolean {
    if (this.mode === EXACT) {
      if (!this.exactInsert(lo >>> 0, hi >>> 0)) return false
      if (this.exactSize + (this.zeroHash ? 1 : 0) > this.exactLimit) this.toRegisters()
      return true
    }
    return this.setRegister(lo & P_MASK, rankOf(lo, hi))
  }

  /** Distinct elements: exact in the exact tier, else the Redis estimate (cached until a change). */
  count (): number {
    if (this.mode === EXACT) return this.exactSize + (this.zeroHash ? 1 : 0)
    if (this.cache < 0) {
      this.histogram()
      this.cache = estimateFromHistogram()
    }
    return this.cache
  }

  /** True while the exact set is kept (count() is exact). */
  get isExact (): boolean { return this.mode === EXACT }

  /** Bytes held by the typed arrays of this HLL (the object itself adds about 100). */
  get byteSize (): number {
    return (this.exact?.byteLength ?? 0) + (this.sparse?.byteLength ?? 0) + (this.dense?.byteLength ?? 0)
  }

  /** Register value (0..63) at index, whatever the tier. */
  register (index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= HLL_REGISTERS) {
      throw new CounterdError('invalid_argument', `register index must be an integer in [0, ${HLL_REGISTERS})`)
    }
    if (this.mode === DENSE) return getDense(this.dense as Uint8Array, index)
    if (this.mode === SPARSE) {
      const pos = this.sparseFind(index)
      const sp = this.sparse as Uint32Array
      return pos < this.sparseSize && (sp[pos] >>> 6) === index ? sp[pos] & 63 : 0
    }
    let best = 0
    this.forEachExact((lo, hi) => { if ((lo & P_MASK) === index) best = Math.max(best, rankOf(lo, hi)) })
    return best
  }

  /** All 16384 register values (a copy), whatever the tier. */
  registers (): Uint8Array {
    const out = new Uint8Array(HLL_REGISTERS)
    if (this.mode === DENSE) {
      const d = this.dense as Uint8Array
      for (let i = 0; i < HLL_REGISTERS; i++) out[i] = getDense(d, i)
    } else if (this.mode === SPARSE) {
      const sp = this.sparse as Uint32Array
      for (let i = 0; i < this.sparseSize; i++) out[sp[i] >>> 6] = sp[i] & 63
    } else {
      this.forEachExact((lo, hi) => { const i = lo & P_MASK; out[i] = Math.max(out[i], rankOf(lo, hi)) })
    }
    return out
  }

  /** Union (register-wise max; exact sets are united while they fit). True when this changed. */
  merge (other: HyperLogLog): boolean {
    if (!(other instanceof HyperLogLog)) throw new CounterdError('invalid_argument', 'merge needs a HyperLogLog')
    if (other === this) return false
    let changed = false
    if (other.mode === EXACT) {
      other.forEachExact((lo, hi) => { if (this.addHash(lo, hi)) changed = true })
      return changed
    }
    if (this.mode === EXACT) this.toRegisters()
    if (other.mode === SPARSE) {
      const sp = other.sparse as Uint32Array
      for (let i = 0; i < other.sparseSize; i++) {
        if (this.setRegister(sp[i] >>> 6, sp[i] & 63)) changed = true
      }
      return changed
    }
    if (this.mode !== DENSE) this.toDense()
    const mine = this.dense as Uint8Array
    const theirs = other.dense as Uint8Array
    for (let i = 0; i < HLL_REGISTERS; i++) {
      const v = getDense(theirs, i)
      if (v > getDense(mine, i)) { setDense(mine, i, v); changed = true }
    }
    if (changed) this.cache = -1
    return changed
  }

  /**
   * The Redis HLL string: sparse while that fits in 3000 bytes with every register <= 32 (as
   * Redis itself keeps it), dense otherwise. The cached cardinality holds count(), marked valid,
   * so PFCOUNT on the stored value answers exactly what count() answers here.
   */
  encode (): Buffer {
    const card = this.count()
    if (this.mode === DENSE) {
      const out = Buffer.allocUnsafe(HLL_DENSE_SIZE)
      out.set((this.dense as Uint8Array).subarray(0, DENSE_BYTES), HEADER_BYTES)
      return withHeader(out, ENC_DENSE, card)
    }
    let entries: Uint32Array
    let n: number
    if (this.mode === SPARSE) {
      entries = this.sparse as Uint32Array
      n = this.sparseSize
    } else {
      n = this.exactEntries()
      entries = entryScratch
    }
    const sparseLen = writeSparse(entries, n, SPARSE_SCRATCH, HEADER_BYTES)
    if (sparseLen >= 0) {
      const out = Buffer.allocUnsafe(HEADER_BYTES + sparseLen)
      SPARSE_SCRATCH.copy(out, HEADER_BYTES, HEADER_BYTES, HEADER_BYTES + sparseLen)
      return withHeader(out, ENC_SPARSE, card)
    }
    const dense = Buffer.alloc(HEADER_BYTES + DENSE_BYTES + 1)
    const regs = dense.subarray(HEADER_BYTES)
    for (let i = 0; i < n; i++) setDense(regs, entries[i] >>> 6, entries[i] & 63)
    return withHeader(dense.subarray(0, HLL_DENSE_SIZE), ENC_DENSE, card)
  }

  /**
   * Loads a Redis HLL string (ours or one Redis made). Registers are kept; a valid cached
   * cardinality is kept as the answer until the registers change (what Redis does). The exact
   * set cannot be recovered from registers, so a decoded non-empty HLL answers by estimate after
   * its next change; an all-zero one starts exact again.
   */
  static decode (input: Uint8Array, options?: HyperLogLogOptions): HyperLogLog {
    const bad = (why: string): never => { throw new CounterdError('corrupt_state', `HyperLogLog: ${why}`) }
    if (!(input instanceof Uint8Array)) bad('expected bytes (Buffer or Uint8Array)')
    if (input.length < HEADER_BYTES || input[0] !== 0x48 || input[1] !== 0x59 || input[2] !== 0x4c || input[3] !== 0x4c) {
      bad('missing "HYLL" header')
    }
    const enc = input[4]
    const hll = new HyperLogLog(options)
    hll.toRegisters()
    if (enc === ENC_DENSE) {
      if (input.length !== HLL_DENSE_SIZE) bad(`dense encoding must be ${HLL_DENSE_SIZE} bytes, got ${input.length}`)
      const regs = input.subarray(HEADER_BYTES)
      let nonzero = 0
      for (let i = 0; i < HLL_REGISTERS; i++) if (getDense(regs, i) !== 0) nonzero++
      if (nonzero > SPARSE_MAX_ENTRIES) {
        const d = new Uint8Array(DENSE_BYTES + 1)
        d.set(regs)
        hll.dense = d
        hll.sparse = null
        hll.mode = DENSE
      } else {
        for (let i = 0; i < HLL_REGISTERS; i++) {
          const v = getDense(regs, i)
          if (v !== 0) hll.sparseAppend(i, v)
        }
      }
    } else if (enc === ENC_SPARSE) {
      let idx = 0
      for (let o = HEADER_BYTES; o < input.length;) {
        const b = input[o]
        if ((b & 0x80) !== 0) {
          const v = ((b >>> 2) & 0x1f) + 1
          const run = (b & 3) + 1
          if (idx + run > HLL_REGISTERS) bad(`sparse run passes register ${HLL_REGISTERS} at byte ${o}`)
          for (let k = 0; k < run; k++) hll.sparseAppend(idx + k, v)
          idx += run
          o += 1
        } else if ((b & 0x40) !== 0) {
          if (o + 1 >= input.length) bad(`truncated XZERO opcode at byte ${o}`)
          idx += (((b & 0x3f) << 8) | input[o + 1]) + 1
          o += 2
        } else {
          idx += (b & 0x3f) + 1
          o += 1
        }
        if (idx > HLL_REGISTERS) bad(`sparse runs pass register ${HLL_REGISTERS} at byte ${o}`)
      }
      if (idx !== HLL_REGISTERS) bad(`sparse runs cover ${idx} registers, not ${HLL_REGISTERS}`)
    } else {
      bad(`unknown encoding ${enc}`)
    }
    const cacheValid = (input[15] & 0x80) === 0
    if (hll.mode === SPARSE && hll.sparseSize === 0 && hll.exactLimit > 0) {
      hll.toExactEmpty()
      return hll
    }
    hll.cache = cacheValid ? readCard(input) : -1
    return hll
  }

  // ---- exact tier --------------------------------------------------------------------------

  private exactInsert (lo: number, hi: number): boolean {
    if ((lo | hi) === 0) {
      if (this.zeroHash) return false
      this.zeroHash = true
      return true
    }
    const t = this.exact as Uint32Array
    const mask = (t.length >>> 1) - 1
    for (let s = hi & mask; ; s = (s + 1) & mask) {
      const a = t[2 * s]
      const b = t[2 * s + 1]
      if (a === lo && b === hi) return false
      if ((a | b) === 0) {
        if ((this.exactSize + 1) * 4 > t.length) { // keep the load at most 1/2
          this.exactGrow()
          return this.exactInsert(lo, hi)
        }
        t[2 * s] = lo
        t[2 * s + 1] = hi
        this.exactSize++
        return true
      }
    }
  }

  private exactGrow (): void {
    const old = this.exact as Uint32Array
    this.exact = new Uint32Array(old.length * 2)
    this.exactSize = 0
    for (let i = 0; i < old.length; i += 2) {
      if ((old[i] | old[i + 1]) !== 0) this.exactInsert(old[i], old[i + 1])
    }
  }

  private forEachExact (fn: (lo: number, hi: number) => void): void {
    if (this.zeroHash) fn(0, 0)
    const t = this.exact as Uint32Array
    for (let i = 0; i < t.length; i += 2) {
      if ((t[i] | t[i + 1]) !== 0) fn(t[i], t[i + 1])
    }
  }

  /** The exact set as sorted register words (max value per index) in entryScratch; returns n. */
  private exactEntries (): number {
    const need = this.exactSize + 1
    if (entryScratch.length < need) entryScratch = new Uint32Array(Math.max(need, entryScratch.length * 2))
    let n = 0
    this.forEachExact((lo, hi) => { entryScratch[n++] = ((lo & P_MASK) << 6) | rankOf(lo, hi) })
    const view = entryScratch.subarray(0, n)
    view.sort() // by index, then value: the last word of an index holds its max
    let w = 0
    for (let i = 0; i < n; i++) {
      if (w > 0 && (entryScratch[w - 1] >>> 6) === (entryScratch[i] >>> 6)) entryScratch[w - 1] = entryScratch[i]
      else entryScratch[w++] = entryScratch[i]
    }
    return w
  }

  private toExactEmpty (): void {
    this.mode = EXACT
    this.exact = new Uint32Array(16)
    this.exactSize = 0
    this.zeroHash = false
    this.sparse = null
    this.sparseSize = 0
    this.dense = null
    this.cache = -1
  }

  // ---- registers ---------------------------------------------------------------------------

  /** Leaves the exact tier: its hashes become sparse registers. */
  private toRegisters (): void {
    if (this.mode !== EXACT) return
    const n = this.exactSize + (this.zeroHash ? 1 : 0)
    const words = n > 0 ? this.exactEntries() : 0
    let cap = 64
    while (cap < words) cap *= 2
    this.sparse = new Uint32Array(cap)
    this.sparse.set(entryScratch.subarray(0, words))
    this.sparseSize = words
    this.exact = null
    this.exactSize = 0
    this.zeroHash = false
    this.mode = SPARSE
    this.cache = -1
  }

  private toDense (): void {
    const d = new Uint8Array(DENSE_BYTES + 1)
    const sp = this.sparse as Uint32Array
    for (let i = 0; i < this.sparseSize; i++) setDense(d, sp[i] >>> 6, sp[i] & 63)
    this.dense = d
    this.sparse = null
    this.sparseSize = 0
    this.mode = DENSE
  }

  /** First position whose index is >= `index` (binary search). */
  private sparseFind (index: number): number {
    const sp = this.sparse as Uint32Array
    let lo = 0
    let hi = this.sparseSize
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((sp[mid] >>> 6) < index) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Appends a register known to come after every present one (decode). */
  private sparseAppend (index: number, v: number): void {
    if (this.mode === DENSE) { setDense(this.dense as Uint8Array, index, v); return }
    if (this.sparseSize === SPARSE_MAX_ENTRIES) { this.toDense(); setDense(this.dense as Uint8Array, index, v); return }
    let sp = this.sparse as Uint32Array
    if (this.sparseSize === sp.length) {
      const next = new Uint32Array(sp.length * 2)
      next.set(sp)
      this.sparse = sp = next
    }
    sp[this.sparseSize++] = (index << 6) | v
  }

  private setRegister (index: number, v: number): boolean {
    if (this.mode === DENSE) {
      const d = this.dense as Uint8Array
      if (getDense(d, index) >= v) return false
      setDense(d, index, v)
      this.cache = -1
      return true
    }
    let sp = this.sparse as Uint32Array
    const pos = this.sparseFind(index)
    if (pos < this.sparseSize && (sp[pos] >>> 6) === index) {
      if ((sp[pos] & 63) >= v) return false
      sp[pos] = (index << 6) | v
      this.cache = -1
      return true
    }
    if (this.sparseSize === SPARSE_MAX_ENTRIES) {
      this.toDense()
      setDense(this.dense as Uint8Array, index, v)
      this.cache = -1
      return true
    }
    if (this.sparseSize === sp.length) {
      const next = new Uint32Array(Math.min(sp.length * 2, SPARSE_MAX_ENTRIES))
      next.set(sp)
      this.sparse = sp = next
    }
    sp.copyWithin(pos + 1, pos, this.sparseSize)
    sp[pos] = (index << 6) | v
    this.sparseSize++
    this.cache = -1
    return true
  }

  /** Fills HISTO with the count of registers per value. */
  private histogram (): void {
    HISTO.fill(0)
    if (this.mode === DENSE) {
      const d = this.dense as Uint8Array
      for (let b = 0; b < DENSE_BYTES; b += 3) { // 4 registers in every 3 bytes
        const b0 = d[b]
        const b1 = d[b + 1]
        const b2 = d[b + 2]
        HISTO[b0 & 63]++
        HISTO[((b0 >>> 6) | (b1 << 2)) & 63]++
        HISTO[((b1 >>> 4) | (b2 << 4)) & 63]++
        HISTO[b2 >>> 2]++
      }
      return
    }
    const sp = this.sparse as Uint32Array
    HISTO[0] = HLL_REGISTERS - this.sparseSize
    for (let i = 0; i < this.sparseSize; i++) HISTO[sp[i] & 63]++
  }
}

/** Position of the first 1 bit in the 50 hash bits above the index, counted from 1 (max 51). */
function rankOf (lo: number, hi: number): number {
  const rest = ((lo >>> 14) | (hi << 18)) >>> 0
  if (rest !== 0) return 32 - Math.clz32(rest & -rest)
  const top = ((hi >>> 14) | (1 << (HLL_Q - 32))) >>> 0
  return 64 - Math.clz32(top & -top)
}

function getDense (d: Uint8Array, i: number): number {
  const bit = i * 6
  const b = bit >>> 3
  const fb = bit & 7
  return ((d[b] >>> fb) | (d[b + 1] << (8 - fb))) & 63
}

function setDense (d: Uint8Array, i: number, v: number): void {
  const bit = i * 6
  const b = bit >>> 3
  const fb = bit & 7
  d[b] = (d[b] & ~(63 << fb)) | (v << fb)
  if (fb > 2) d[b + 1] = (d[b + 1] & ~(63 >>> (8 - fb))) | (v >>> (8 - fb))
}

// Ertl's estimator as Redis computes it ("New cardinality estimation algorithms for HyperLogLog
// sketches", arXiv:1702.01284), operation for operation so the rounded result is the same.
function sigma (x: number): number {
  if (x === 1) return Infinity
  let y = 1
  let z = x
  let zPrime: number
  do {
    x *= x
    zPrime = z
    z += x * y
    y += y
  } while (zPrime !== z)
  return z
}

function tau (x: number): number {
  if (x === 0 || x === 1) return 0
  let y = 1
  let z = 1 - x
  let zPrime: number
  do {
    x = Math.sqrt(x)
    zPrime = z
    y *= 0.5
    const d = 1 - x
    z -= d * d * y
  } while (zPrime !== z)
  return z / 3
}

function estimateFromHistogram (): number {
  const m = HLL_REGISTERS
  let z = m * tau((m - HISTO[HLL_Q + 1]) / m)
  for (let j = HLL_Q; j >= 1; j--) {
    z += HISTO[j]
    z *= 0.5
  }
  z += m * sigma(HISTO[0] / m)
  return Math.round(ALPHA_INF * m * m / z)
}

/** Writes the sparse opcodes of sorted register words; returns their length or -1 if not representable. */
function writeSparse (entries: Uint32Array, n: number, out: Buffer, start: number): number {
  const limit = start + REDIS_SPARSE_MAX_BYTES
  let o = start
  let next = 0 // first register not yet written
  const zeros = (len: number): boolean => {
    while (len > 0) {
      if (len <= 64) {
        if (o + 1 > limit) return false
        out[o++] = len - 1
        len = 0
      } else {
        if (o + 2 > limit) return false
        const chunk = Math.min(len, HLL_REGISTERS)
        out[o++] = 0x40 | ((chunk - 1) >>> 8)
        out[o++] = (chunk - 1) & 0xff
        len -= chunk
      }
    }
    return true
  }
  for (let i = 0; i < n;) {
    const index = entries[i] >>> 6
    const v = entries[i] & 63
    if (v > SPARSE_VAL_MAX) return -1
    if (index > next && !zeros(index - next)) return -1
    let run = 1
    while (run < 4 && i + run < n && entries[i + run] === (((index + run) << 6) | v)) run++
    if (o + 1 > limit) return -1
    out[o++] = 0x80 | ((v - 1) << 2) | (run - 1)
    next = index + run
    i += run
  }
  if (next < HLL_REGISTERS && !zeros(HLL_REGISTERS - next)) return -1
  return o - start
}

function withHeader (buf: Buffer, encoding: number, card: number): Buffer {
  buf[0] = 0x48 // H
  buf[1] = 0x59 // Y
  buf[2] = 0x4c // L
  buf[3] = 0x4c // L
  buf[4] = encoding
  buf[5] = 0
  buf[6] = 0
  buf[7] = 0
  buf.writeUInt32LE(card >>> 0, 8)
  buf.writeUInt32LE(Math.floor(card / 4294967296), 12) // top bit clear: the cache is valid
  return buf
}

function readCard (buf: Uint8Array): number {
  const lo = (buf[8] | (buf[9] << 8) | (buf[10] << 16) | (buf[11] << 24)) >>> 0
  const hi = (buf[12] | (buf[13] << 8) | (buf[14] << 16) | ((buf[15] & 0x7f) << 24)) >>> 0
  return hi * 4294967296 + lo
}
