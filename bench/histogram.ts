// A fixed-size latency histogram: log-linear buckets (32 per power of two, so about 2% relative
// error) over microseconds, cheap enough to record every ack, and mergeable across threads.

const SUB_BUCKETS = 32
const MAX_POWER = 40 // 2^40 µs ≈ 12.7 days: anything larger is clamped

export class LatencyHistogram {
  readonly counts: Float64Array
  count = 0
  maxMicros = 0

  constructor (counts?: Float64Array) {
    this.counts = counts ?? new Float64Array(MAX_POWER * SUB_BUCKETS)
    if (counts !== undefined) for (let i = 0; i < counts.length; i++) this.count += counts[i]
  }

  private static bucketOf (micros: number): number {
    if (micros < SUB_BUCKETS) return Math.max(0, Math.floor(micros))
    const power = Math.floor(Math.log2(micros))
    const base = 2 ** power
    const sub = Math.floor((micros - base) / base * SUB_BUCKETS)
    return Math.min(MAX_POWER * SUB_BUCKETS - 1, (power - 4) * SUB_BUCKETS + sub)
  }

  /** Upper edge of a bucket in µs (the value percentiles report: never understates latency). */
  private static upperOf (bucket: number): number {
    if (bucket < SUB_BUCKETS) return bucket + 1
    const power = Math.floor(bucket / SUB_BUCKETS) + 4
    const sub = bucket % SUB_BUCKETS
    const base = 2 ** power
    return base + (sub + 1) * base / SUB_BUCKETS
  }

  record (micros: number): void {
    this.counts[LatencyHistogram.bucketOf(micros)]++
    this.count++
    if (micros > this.maxMicros) this.maxMicros = micros
  }

  merge (other: LatencyHistogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] += other.counts[i]
    this.count += other.count
    if (other.maxMicros > this.maxMicros) this.maxMicros = other.maxMicros
  }

  /** Value at percentile p (0..100) in milliseconds; 0 when empty. */
  percentileMs (p: number): number {
    if (this.count === 0) return 0
    const rank = Math.ceil(this.count * p / 100)
    let seen = 0
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]
      if (seen >= rank && seen > 0) return Math.min(LatencyHistogram.upperOf(i), this.maxMicros) / 1000
    }
    return this.maxMicros / 1000
  }
}
