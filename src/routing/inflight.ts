// Ops accepted and not yet answered, node-wide: every shard thread adds to and takes from the
// same shared counters (one atomic add per request or frame, not per op), so MAX_INFLIGHT_OPS
// bounds the node however its connections spread over the shards.
const WRITES = 0
const READS = 1

export class InflightGauge {
  private readonly cells: Int32Array

  static allocate (): SharedArrayBuffer {
    return new SharedArrayBuffer(8)
  }

  constructor (sab: SharedArrayBuffer, readonly max: number) {
    this.cells = new Int32Array(sab, 0, 2)
  }

  /** Takes `n` more; false (nothing taken) when that would pass the bound. */
  tryAdd (read: boolean, n: number): boolean {
    const cell = read ? READS : WRITES
    if (Atomics.add(this.cells, cell, n) + n <= this.max) return true
    Atomics.sub(this.cells, cell, n)
    return false
  }

  sub (read: boolean, n: number): void {
    Atomics.sub(this.cells, read ? READS : WRITES, n)
  }

  get writes (): number { return Atomics.load(this.cells, WRITES) }
  get reads (): number { return Atomics.load(this.cells, READS) }
}
