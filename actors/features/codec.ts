// Little-endian byte writer and bounds-checked reader for the structures' encode()/decode().
// Every malformed input ends in CounterdError('corrupt_state') naming the structure and offset,
// never in a RangeError or a silently wrong state.
import os from 'node:os'
import { CounterdError } from '../../src/core/errors'

const LITTLE_ENDIAN = os.endianness() === 'LE'

export class ByteWriter {
  private buf: Buffer
  private o = 0

  constructor (initial = 256) {
    this.buf = Buffer.allocUnsafe(initial)
  }

  private room (n: number): void {
    if (this.o + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.o + n) size *= 2
    const next = Buffer.allocUnsafe(size)
    this.buf.copy(next, 0, 0, this.o)
    this.buf = next
  }

  magic (tag: string, version: number): this {
    this.room(5)
    this.o += this.buf.write(tag, this.o, 'latin1')
    this.buf[this.o++] = version
    return this
  }

  u8 (v: number): this { this.room(1); this.buf[this.o++] = v; return this }
  u16 (v: number): this { this.room(2); this.o = this.buf.writeUInt16LE(v, this.o); return this }
  u32 (v: number): this { this.room(4); this.o = this.buf.writeUInt32LE(v >>> 0, this.o); return this }
  f64 (v: number): this { this.room(8); this.o = this.buf.writeDoubleLE(v, this.o); return this }

  /** u16 byte length + UTF-8 bytes. */
  str (s: string): this {
    const n = Buffer.byteLength(s, 'utf8')
    if (n > 0xffff) throw new CounterdError('invalid_argument', 'a string longer than 65535 bytes cannot be encoded')
    this.room(2 + n)
    this.o = this.buf.writeUInt16LE(n, this.o)
    this.o += this.buf.write(s, this.o, 'utf8')
    return this
  }

  /** Raw 32-bit words (little-endian), e.g. a typed-array table. */
  words (a: Uint32Array, start: number, end: number): this {
    const n = end - start
    this.room(4 * n)
    if (LITTLE_ENDIAN) {
      this.buf.set(new Uint8Array(a.buffer, a.byteOffset + 4 * start, 4 * n), this.o)
      this.o += 4 * n
    } else {
      for (let i = start; i < end; i++) this.o = this.buf.writeUInt32LE(a[i], this.o)
    }
    return this
  }

  bytes (a: Uint8Array): this {
    this.room(a.length)
    this.buf.set(a, this.o)
    this.o += a.length
    return this
  }

  /** u32 byte length + the bytes (for nesting another structure's encoding). */
  blob (a: Uint8Array): this { return this.u32(a.length).bytes(a) }

  finish (): Buffer {
    return this.buf.subarray(0, this.o)
  }
}

export class ByteReader {
  private o = 0
  private readonly buf: Buffer

  constructor (input: Uint8Array, private readonly what: string) {
    if (!(input instanceof Uint8Array)) throw new CounterdError('corrupt_state', `${what}: expected bytes (Buffer or Uint8Array)`)
    this.buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength)
  }

  fail (why: string): never {
    throw new CounterdError('corrupt_state', `${this.what}: ${why} at byte ${this.o}`)
  }

  private need (n: number): void {
    if (this.o + n > this.buf.length) this.fail(`truncated (need ${n} more bytes)`)
  }

  /** Checks the 4-byte tag and returns the version byte (must be one of `versions`). */
  magic (tag: string, versions: readonly number[]): number {
    this.need(5)
    if (this.buf.toString('latin1', this.o, this.o + 4) !== tag) this.fail(`missing "${tag}" header`)
    this.o += 4
    const v = this.buf[this.o++]
    if (!versions.includes(v)) { this.o--; this.fail(`unknown version ${v}`) }
    return v
  }

  u8 (): number { this.need(1); return this.buf[this.o++] }
  u16 (): number { this.need(2); const v = this.buf.readUInt16LE(this.o); this.o += 2; return v }
  u32 (): number { this.need(4); const v = this.buf.readUInt32LE(this.o); this.o += 4; return v }
  f64 (): number { this.need(8); const v = this.buf.readDoubleLE(this.o); this.o += 8; return v }

  str (): string {
    const n = this.u16()
    this.need(n)
    const s = this.buf.toString('utf8', this.o, this.o + n)
    this.o += n
    return s
  }

  /** A count of items each at least `minBytes` long: rejects counts the input cannot hold. */
  count (minBytes: number): number {
    const n = this.u32()
    if (n * minBytes > this.buf.length - this.o) { this.o -= 4; this.fail(`count ${n} larger than the input`) }
    return n
  }

  /** A finite number in [min, max]. */
  num (name: string, min: number, max: number): number {
    const v = this.f64()
    if (!(v >= min && v <= max)) { this.o -= 8; this.fail(`${name} ${v} out of range`) }
    return v
  }

  /** n little-endian 32-bit words into target[0, n). */
  words (target: Uint32Array, n: number): void {
    this.need(4 * n)
    if (LITTLE_ENDIAN) {
      new Uint8Array(target.buffer, target.byteOffset, 4 * n).set(this.buf.subarray(this.o, this.o + 4 * n))
      this.o += 4 * n
    } else {
      for (let i = 0; i < n; i++) { target[i] = this.buf.readUInt32LE(this.o); this.o += 4 }
    }
  }

  /** What ByteWriter.blob wrote: a view, valid while the input is. */
  blob (): Buffer {
    const n = this.u32()
    this.need(n)
    const out = this.buf.subarray(this.o, this.o + n)
    this.o += n
    return out
  }

  end (): void {
    if (this.o !== this.buf.length) this.fail(`${this.buf.length - this.o} trailing bytes`)
  }

  get offset (): number { return this.o }
}
