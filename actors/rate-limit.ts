// Per-user token buckets for likes and unlikes, kept by each front node (a node's limit, not a
// cluster-wide one; buckets start full after a restart). A retry with an Idempotency-Key that was
// already admitted costs nothing: the front remembers admitted (user, key) pairs for the dedup window.
import { TokenBuckets } from './features/token-bucket'

export class RateLimiter {
  private readonly buckets: TokenBuckets
  private readonly admitted = new Map<string, number>() // user + '\n' + Idempotency-Key → when

  constructor (readonly perMinute: number, private readonly windowMs: number, private readonly maxRemembered: number) {
    this.buckets = new TokenBuckets({ capacity: perMinute, refillTokens: perMinute, refillIntervalMs: 60_000 })
  }

  /** 0 when admitted; otherwise the ms to wait. */
  take (user: string, idempotencyKey: string, now: number): number {
    const tag = idempotencyKey === '' ? null : user + '\n' + idempotencyKey
    if (tag !== null) {
      const at = this.admitted.get(tag)
      if (at !== undefined && now - at <= this.windowMs) return 0
    }
    const wait = this.buckets.take(user, now)
    if (wait === 0 && tag !== null) this.remember(tag, now)
    return wait
  }

  private remember (tag: string, now: number): void {
    this.admitted.set(tag, now)
    for (const [t, at] of this.admitted) {
      if (this.admitted.size <= this.maxRemembered && now - at <= this.windowMs) break
      this.admitted.delete(t)
    }
  }

  /** Read-only: tokens left and, when none, how long until one is back. */
  quota (user: string, now: number): { limit: number, remaining: number, retryAfterMs: number } {
    const remaining = this.buckets.peek(user, now)
    return { limit: this.perMinute, remaining, retryAfterMs: remaining > 0 ? 0 : Math.ceil(60_000 / this.perMinute) }
  }
}
