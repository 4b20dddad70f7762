// What one shard has for another: records (units of ops, replies, control messages) staged in a
// local buffer during an event-loop turn, then pushed into the ring to that shard in as few
// messages as fit. Records are never split across messages unless one alone is larger than the
// ring's message limit; then it goes as chunks (`more` set on all but the last) that the
// consumer reassembles.
import { ByteSink } from '../core/op-codec'
import type { Doorbell, SpscRing } from './spsc-ring'

export class Outbox {
  readonly sink = new ByteSink(64 * 1024)
  private readonly ends: number[] = [] // end offset of each staged record
  private sent = 0 // bytes of the sink already pushed
  private sentRecords = 0 // records of `ends` wholly pushed

  constructor (private readonly ring: SpscRing, private readonly bell: Doorbell, readonly limit: number) {}

  /** Bytes staged and not yet pushed. */
  get staged (): number { return this.sink.len - this.sent }

  /**
   * Whether the record just written from offset `start` may stay: always when nothing was staged
   * before it (a unit of any size gets through an idle outbox), else only within the limit.
   */
  admits (start: number): boolean {
    return start <= this.sent || this.staged <= this.limit
  }

  /** Marks the end of a record the caller has just written into `sink`. */
  endRecord (): void {
    this.ends.push(this.sink.len)
  }

  /** Drops whatever was written into `sink` after `len` (an abandoned record). */
  truncate (len: number): void {
    this.sink.len = len
  }

  /** Pushes staged records into the ring and rings the consumer; false when the ring was full. */
  flush (): boolean {
    const max = this.ring.maxMessage
    const buf = this.sink.buf
    const ends = this.ends
    let pos = this.sent
    let e = this.sentRecords
    let pushed = false
    while (e < ends.length) {
      let msgEnd = pos
      let next = e
      while (next < ends.length && ends[next] - pos <= max) msgEnd = ends[next++]
      if (msgEnd > pos) {
        if (!this.ring.push(buf, pos, msgEnd, false)) break
        pos = msgEnd
        e = next
      } else {
        // One record larger than a message: send the next chunk of it.
        const chunkEnd = Math.min(pos + max, ends[e])
        const more = chunkEnd < ends[e]
        if (!this.ring.push(buf, pos, chunkEnd, more)) break
        pos = chunkEnd
        if (!more) e++
      }
      pushed = true
    }
    if (pushed) this.bell.ring()
    if (e === ends.length) {
      this.sink.len = 0
      ends.length = 0
      this.sent = 0
      this.sentRecords = 0
      return true
    }
    this.sent = pos
    this.sentRecords = e
    return false
  }
}
