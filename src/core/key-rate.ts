// Per-API-key rate limit (KEY_OPS_PER_SECOND), node-wide: every shard thread charges the same
// shared slot of a key, so a client gets the same rate however its connections spread over the
// threads. Generic cell rate algorithm: a slot holds the key's "theoretical arrival time" (µs);
// ops advance it by 1/rate s each, and a batch is admitted while that stays within one second of
// now (so a second's worth may come at once). One compare-and-swap per charge, no timers.

/** How many keys the shared memory has slots for (slots are kept per key across SIGHUP reloads). */
export const KEY_RATE_SLOTS = 65536

export class KeyRateLimiter {
  private readonly tat: BigInt64Array
  private readonly stepUs: number

  static allocate (): SharedArrayBuffer {
    return new SharedArrayBuffer(KEY_RATE_SLOTS * 8)
  }

  constructor (memory: SharedArrayBuffer, readonly perSecond: number) {
    this.tat = new BigInt64Array(memory)
    this.stepUs = 1e6 / perSecond
  }

  /**
   * Charges `n` ops to the key in `slot`: 0 when admitted, else the ms to wait before they would be
   * (nothing is charged then). A batch larger than a second's worth is admitted only when the key
   * has used none of its rate, then it counts against the next seconds.
   */
  take (slot: number, n: number, nowMs = Date.now()): number {
    const now = nowMs * 1000
    const cost = n * this.stepUs
    for (;;) {
      const old = Atomics.load(this.tat, slot)
      const start = Math.max(Number(old), now)
      if (start - now + Math.min(cost, 1e6) > 1e6) return Math.ceil((start - now + Math.min(cost, 1e6) - 1e6) / 1000)
      if (Atomics.compareExchange(this.tat, slot, old, BigInt(Math.ceil(start + cost))) === old) return 0
    }
  }
}
