// Seeded random numbers and a Zipf-like key picker: engagement traffic is skewed (a few posts
// get most of the views), and a benchmark over uniform keys would hide hot-key behaviour.

/** mulberry32: small, fast, seeded; the same seed gives the same key sequence on every run. */
export function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export interface ZipfOptions {
  /** ids are 0..n-1 */
  n: number
  /** exponent; 0.99 is the YCSB default (rank 1 gets about 8% of picks over 100k ids) */
  s?: number
  seed?: number
}

/**
 * Picks ids with probability ∝ 1/rank^s. Ranks are scattered over the id space by a seeded
 * permutation so the hottest ids are not simply 0, 1, 2 (and not neighbours in any partition).
 */
export class ZipfKeys {
  readonly n: number
  readonly s: number
  private readonly cdf: Float64Array
  private readonly rankToId: Uint32Array
  private readonly random: () => number

  constructor (opts: ZipfOptions) {
    const { n, s = 0.99, seed = 1 } = opts
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new RangeError(`zipf n must be an integer in 1..2^32-1, got ${String(n)}`)
    if (!(s >= 0 && s <= 4)) throw new RangeError(`zipf s must be a number in 0..4, got ${String(s)}`)
    this.n = n
    this.s = s
    this.cdf = new Float64Array(n)
    let sum = 0
    for (let r = 0; r < n; r++) {
      sum += 1 / Math.pow(r + 1, s)
      this.cdf[r] = sum
    }
    for (let r = 0; r < n; r++) this.cdf[r] /= sum
    this.random = seededRandom(seed)
    this.rankToId = new Uint32Array(n)
    for (let i = 0; i < n; i++) this.rankToId[i] = i
    const shuffle = seededRandom(seed ^ 0x5bd1e995)
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(shuffle() * (i + 1))
      const tmp = this.rankToId[i]
      this.rankToId[i] = this.rankToId[j]
      this.rankToId[j] = tmp
    }
  }

  /** The id holding popularity rank `rank` (0 = hottest). */
  idOfRank (rank: number): number {
    return this.rankToId[rank]
  }

  /** Probability that next() returns the id of this rank. */
  probabilityOfRank (rank: number): number {
    return rank === 0 ? this.cdf[0] : this.cdf[rank] - this.cdf[rank - 1]
  }

  next (): number {
    const u = this.random()
    let lo = 0
    let hi = this.n - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.cdf[mid] < u) lo = mid + 1
      else hi = mid
    }
    return this.rankToId[lo]
  }

  /** A table of `count` picks, so hot loops can cycle through it instead of sampling. */
  table (count: number): Uint32Array {
    const out = new Uint32Array(count)
    for (let i = 0; i < count; i++) out[i] = this.next()
    return out
  }
}
