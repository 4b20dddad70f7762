// A single-producer/single-consumer ring of byte messages in a SharedArrayBuffer: how one shard
// thread hands work (and replies) to another without postMessage or structured clones.
//
// Layout: 128 bytes of control (head and tail on separate cache lines), then `capacity` bytes of
// data (a power of two). head and tail are byte positions that only grow (modulo 2^32); the
// producer owns tail, the consumer owns head. A message is `u32 word | payload`, padded to 4
// bytes, where word = payload length | MORE (more chunks of the same record follow). A message
// never wraps: when it does not fit before the end, the producer writes a WRAP word and starts
// again at 0. A message may be at most capacity / 4 bytes, so one always fits in a drained ring.
//
// The consumer is woken through a Doorbell (one per consumer thread, shared by all its producers):
// it sleeps only after it found every incoming ring empty, and a producer rings only when it sees
// it asleep, so a busy consumer is never woken per message.

const HEAD = 0 // Int32 index of head (byte 0)
const TAIL = 16 // Int32 index of tail (byte 64)
const CONTROL_BYTES = 128
const WRAP = 0xffffffff
export const MORE = 0x80000000
const LEN_MASK = 0x7fffffff

export class SpscRing {
  readonly capacity: number
  readonly maxMessage: number
  private readonly ctl: Int32Array
  private readonly words: Uint32Array
  readonly data: Buffer
  private readonly mask: number
  // Each side's own position, kept locally so it is read from shared memory only by the other side.
  private tail: number
  private head: number

  /** A new ring's memory: `capacity` data bytes, a power of two from 4 KiB to 1 GiB. */
  static allocate (capacity: number): SharedArrayBuffer {
    if (!Number.isInteger(capacity) || capacity < 4096 || capacity > 2 ** 30 || (capacity & (capacity - 1)) !== 0) {
      throw new RangeError(`ring capacity must be a power of two from 4096 to 2^30 bytes, got ${capacity}`)
    }
    return new SharedArrayBuffer(CONTROL_BYTES + capacity)
  }

  constructor (sab: SharedArrayBuffer) {
    this.capacity = sab.byteLength - CONTROL_BYTES
    this.mask = this.capacity - 1
    this.maxMessage = this.capacity / 4 - 4
    this.ctl = new Int32Array(sab, 0, CONTROL_BYTES / 4)
    this.words = new Uint32Array(sab, CONTROL_BYTES, this.capacity / 4)
    this.data = Buffer.from(sab, CONTROL_BYTES, this.capacity)
    this.tail = Atomics.load(this.ctl, TAIL) >>> 0
    this.head = Atomics.load(this.ctl, HEAD) >>> 0
  }

  // ---- producer ----

  /** Bytes the producer could still write (ignoring the waste of a wrap). */
  free (): number {
    return this.capacity - ((this.tail - (Atomics.load(this.ctl, HEAD) >>> 0)) >>> 0)
  }

  /**
   * Copies src[start, end) in as one message and publishes it. False when the ring has no room
   * now (nothing written). `more`: this is a chunk of a record whose next chunk follows.
   */
  push (src: Uint8Array, start: number, end: number, more = false): boolean {
    const len = end - start
    if (len > this.maxMessage) throw new RangeError(`message of ${len} bytes is over the ring's limit of ${this.maxMessage}`)
    const need = 4 + ((len + 3) & ~3)
    let tail = this.tail
    const used = (tail - (Atomics.load(this.ctl, HEAD) >>> 0)) >>> 0
    let pos = tail & this.mask
    const contiguous = this.capacity - pos
    const waste = need > contiguous ? contiguous : 0
    if (used + waste + need > this.capacity) return false
    if (waste > 0) {
      this.words[pos >>> 2] = WRAP
      tail = (tail + waste) >>> 0
      pos = 0
    }
    this.words[pos >>> 2] = more ? (len | MORE) >>> 0 : len
    this.data.set(src.subarray(start, end), pos + 4)
    this.tail = (tail + need) >>> 0
    Atomics.store(this.ctl, TAIL, this.tail | 0) // publishes the bytes written above
    return true
  }

  // ---- consumer ----

  isEmpty (): boolean {
    return (Atomics.load(this.ctl, TAIL) >>> 0) === this.head
  }

  /**
   * Hands every published message to `onMessage(data, offset, length, more)` in order, freeing
   * each one's space after its handler returns (a handler must not keep the view). Returns the
   * number of messages handled.
   */
  drain (onMessage: (data: Buffer, offset: number, length: number, more: boolean) => void): number {
    const tail = Atomics.load(this.ctl, TAIL) >>> 0
    let head = this.head
    let n = 0
    while (head !== tail) {
      const pos = head & this.mask
      const word = this.words[pos >>> 2]
      if (word === WRAP) {
        head = (head + this.capacity - pos) >>> 0
        continue
      }
      const len = word & LEN_MASK
      onMessage(this.data, pos + 4, len, (word & MORE) !== 0)
      head = (head + 4 + ((len + 3) & ~3)) >>> 0
      this.head = head
      Atomics.store(this.ctl, HEAD, head | 0)
      n++
    }
    this.head = head
    Atomics.store(this.ctl, HEAD, head | 0)
    return n
  }
}

const AWAKE = 0
const ASLEEP = 1

// Atomics.waitAsync is in V8 (and Node 16+) but not yet in TypeScript's ES2022 library.
type WaitAsync = (a: Int32Array, index: number, value: number, timeout?: number) =>
  { async: false, value: 'not-equal' | 'timed-out' } | { async: true, value: Promise<'ok' | 'timed-out'> }
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync

/**
 * How producers wake a consumer thread that found all its rings empty. The consumer calls
 * `sleep(hasWork, wake)`: it marks itself asleep, looks at its rings once more (`hasWork`,
 * closing the race with a producer that published just before), and either goes on at once or
 * has `wake` run when a producer rings. Sequentially consistent atomics on both sides mean no
 * wake-up is ever lost.
 */
export class Doorbell {
  private readonly cell: Int32Array

  static allocate (): SharedArrayBuffer {
    return new SharedArrayBuffer(4)
  }

  constructor (sab: SharedArrayBuffer) {
    this.cell = new Int32Array(sab, 0, 1)
  }

  /** Producer side, after publishing: wakes the consumer if it is asleep. */
  ring (): void {
    if (Atomics.compareExchange(this.cell, 0, ASLEEP, AWAKE) === ASLEEP) Atomics.notify(this.cell, 0, 1)
  }

  /**
   * Consumer side: marks the consumer asleep unless `hasWork()` (asked after the mark) says there
   * is work. Returns true when it went to sleep; `wake` then runs once a producer rings. Returns
   * false when there is work now: the caller drains again (a loop, not recursion). A pending wait
   * does not keep the thread's event loop alive by itself.
   */
  sleep (hasWork: () => boolean, wake: () => void): boolean {
    Atomics.store(this.cell, 0, ASLEEP)
    if (hasWork()) {
      Atomics.store(this.cell, 0, AWAKE)
      return false
    }
    const r = waitAsync(this.cell, 0, ASLEEP)
    if (!r.async) return false // a producer rang between the mark and the wait
    r.value.then(wake, wake)
    return true
  }
}
