// MurmurHash64A (Austin Appleby's 64-bit MurmurHash2), the hash Redis feeds HyperLogLog with
// (seed 0xadc83b19), so an element lands in the same register here as in Redis. Data is read in
// little-endian 8-byte blocks. JS has no cheap 64-bit integers, so a value travels as two
// unsigned 32-bit halves and products are formed from 16-bit limbs; results go to a caller-owned
// Uint32Array(2) as [low, high] so the hot path allocates nothing.

export const REDIS_HLL_SEED = 0xadc83b19

const M_HI = 0xc6a4a793
const M_LO = 0x5bd1e995
const M_LO0 = M_LO & 0xffff
const M_LO1 = M_LO >>> 16

/** High word of (hi:lo) × M mod 2^64; the low word is Math.imul(lo, M_LO). */
function mulHi (hi: number, lo: number): number {
  const a0 = lo & 0xffff
  const a1 = lo >>> 16
  const p00 = a0 * M_LO0
  const p01 = a0 * M_LO1
  const p10 = a1 * M_LO0
  const carry = ((p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff)) >>> 16
  const high = a1 * M_LO1 + (p01 >>> 16) + (p10 >>> 16) + carry // high word of lo × M_LO
  return (high + Math.imul(hi, M_LO) + Math.imul(lo, M_HI)) | 0
}

/** MurmurHash64A of buf[start, end) with a 64-bit seed (seedHi:seedLo); out = [low, high]. */
export function murmur64 (buf: Uint8Array, start: number, end: number, seedHi: number, seedLo: number, out: Uint32Array): void {
  const len = end - start
  let h = seedHi ^ mulHi(0, len)
  let l = seedLo ^ Math.imul(len, M_LO)
  const blocksEnd = start + len - (len & 7)
  let i = start
  for (; i < blocksEnd; i += 8) {
    let kl = buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24)
    let kh = buf[i + 4] | (buf[i + 5] << 8) | (buf[i + 6] << 16) | (buf[i + 7] << 24)
    let t = mulHi(kh, kl) // k *= m
    kl = Math.imul(kl, M_LO)
    kh = t
    kl ^= kh >>> 15 // k ^= k >> 47
    t = mulHi(kh, kl) // k *= m
    kl = Math.imul(kl, M_LO)
    h ^= t // h ^= k
    l ^= kl
    t = mulHi(h, l) // h *= m
    l = Math.imul(l, M_LO)
    h = t
  }
  const rem = len & 7
  if (rem !== 0) {
    for (let j = rem - 1; j >= 0; j--) {
      if (j >= 4) h ^= buf[i + j] << ((j - 4) * 8)
      else l ^= buf[i + j] << (j * 8)
    }
    const t = mulHi(h, l)
    l = Math.imul(l, M_LO)
    h = t
  }
  l ^= h >>> 15 // h ^= h >> 47
  const t = mulHi(h, l)
  l = Math.imul(l, M_LO)
  out[0] = l ^ (t >>> 15)
  out[1] = t
}

// Scratch for strings: ASCII is copied char by char (no native call); anything else is encoded
// as UTF-8 by Buffer.write, the same bytes a Redis client sends for the string.
let scratch = Buffer.allocUnsafeSlow(1024)

/** Writes the UTF-8 bytes of s into the shared scratch; returns their count. */
export function utf8Scratch (s: string): number {
  const n = s.length
  let b = scratch
  if (n * 3 > b.length) b = scratch = Buffer.allocUnsafeSlow(Math.max(n * 3, b.length * 2))
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0x80) return b.write(s, 0, 'utf8')
    b[i] = c
  }
  return n
}

/** The scratch that utf8Scratch last wrote to. */
export function scratchBytes (): Buffer { return scratch }

/**
 * MurmurHash64A of the UTF-8 bytes of s; out = [low, high]. ASCII strings (every valid key and
 * most ids) are hashed straight from their char codes; others go through the UTF-8 scratch.
 */
export function murmur64String (s: string, seedHi: number, seedLo: number, out: Uint32Array): void {
  const len = s.length
  let h = seedHi ^ mulHi(0, len)
  let l = seedLo ^ Math.imul(len, M_LO)
  let any = 0 // OR of every char code: >= 0x80 means the string was not ASCII
  const blocksEnd = len - (len & 7)
  let i = 0
  for (; i < blocksEnd; i += 8) {
    const c0 = s.charCodeAt(i)
    const c1 = s.charCodeAt(i + 1)
    const c2 = s.charCodeAt(i + 2)
    const c3 = s.charCodeAt(i + 3)
    const c4 = s.charCodeAt(i + 4)
    const c5 = s.charCodeAt(i + 5)
    const c6 = s.charCodeAt(i + 6)
    const c7 = s.charCodeAt(i + 7)
    any |= c0 | c1 | c2 | c3 | c4 | c5 | c6 | c7
    let kl = c0 | (c1 << 8) | (c2 << 16) | (c3 << 24)
    let kh = c4 | (c5 << 8) | (c6 << 16) | (c7 << 24)
    let t = mulHi(kh, kl)
    kl = Math.imul(kl, M_LO)
    kh = t
    kl ^= kh >>> 15
    t = mulHi(kh, kl)
    kl = Math.imul(kl, M_LO)
    h ^= t
    l ^= kl
    t = mulHi(h, l)
    l = Math.imul(l, M_LO)
    h = t
  }
  const rem = len & 7
  if (rem !== 0) {
    for (let j = rem - 1; j >= 0; j--) {
      const c = s.charCodeAt(i + j)
      any |= c
      if (j >= 4) h ^= c << ((j - 4) * 8)
      else l ^= c << (j * 8)
    }
    const t = mulHi(h, l)
    l = Math.imul(l, M_LO)
    h = t
  }
  if (any >= 0x80) {
    const n = utf8Scratch(s)
    murmur64(scratch, 0, n, seedHi, seedLo, out)
    return
  }
  l ^= h >>> 15
  const t = mulHi(h, l)
  l = Math.imul(l, M_LO)
  out[0] = l ^ (t >>> 15)
  out[1] = t
}
