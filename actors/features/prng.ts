// Seeded pseudo-random numbers (sfc32, seeded through splitmix32): small, fast, and its whole
// state is four 32-bit words, so a structure that draws from it can be snapshotted and resumed
// to make exactly the same choices after recovery as it would have made without the crash.
import { CounterdError } from '../../src/core/errors'

export class Prng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor (seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new CounterdError('invalid_option', 'options.seed must be an integer between 0 and 4294967295')
    }
    let s = seed >>> 0
    const next = (): number => { // splitmix32
      s = (s + 0x9e3779b9) | 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
      return (z ^ (z >>> 16)) >>> 0
    }
    this.a = next()
    this.b = next()
    this.c = next()
    this.d = next()
    for (let i = 0; i < 12; i++) this.u32()
  }

  /** Uniform unsigned 32-bit integer. */
  u32 (): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** Uniform double in (0, 1) with 53 random bits: never 0, so log() is always finite. */
  open (): number {
    const hi = this.u32() >>> 5 // 27 bits
    const lo = this.u32() >>> 6 // 26 bits
    return (hi * 67108864 + lo + 0.5) / 9007199254740992
  }

  /** Uniform integer in [0, n) for 1 <= n <= 2^32. */
  below (n: number): number {
    return Math.floor(this.open() * n)
  }

  getState (): [number, number, number, number] {
    return [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0]
  }

  setState (s: readonly number[]): void {
    this.a = s[0] | 0
    this.b = s[1] | 0
    this.c = s[2] | 0
    this.d = s[3] | 0
  }
}
