// The counters of one partition, keyed by the key's bytes: an open-addressing hash table over
// typed arrays plus a byte arena for the keys. Ops arrive as bytes with their FNV-1a hash already
// computed by the front, so applying one costs a probe and an add, with no string and no Map entry
// per op.
//
// Entries are never removed (a counter reset to 0 keeps its slot; snapshots skip zeros and a
// restart drops them), which keeps probing simple. An entry's index never changes, so the
// partition keeps its own per-entry arrays next to these (grown through onGrow).
//
// Layout, per entry: one 16-byte record in `entries`, read through three views of it,
//   f64[2e]     the counter's value
//   f32[4e + 2] a float32 the owner keeps with the entry (the partition's recent rate)
//   u32[4e + 3] where the entry's key sits in the arena, stored there as u8 length | key bytes
//               (exactly a log record's and a snapshot's key encoding, so both copy it as is)
// so a lookup and an update touch three places (slot, record, key), not one array per field: at
// millions of counters each of those is a cache miss, and they are most of what an op costs.
// The slot array is u32 per slot, a power of two at most 80% full: the entry index + 1 in the
// low `bits` bits (bits = log2(slots), so an index always fits, 0 = empty) and the mixed hash's
// low bits above it as a tag, so a probe rejects a different key without touching the arena and
// no per-entry hash is kept (growth recomputes hashes from the arena: cheap, and rare).
// In all, 16 + 1 + key length bytes per entry plus 5 to 10 bytes of slots.
//
// The slot index is the high bits of a full-avalanche mix of the FNV hash: a partition's keys all
// share FNV mod P (P = the partition count), hence many low bits, which must not pick the slot.
//
// Memory: the slot array doubles; the entry records and the arena grow by half, so the slack a
// large table carries stays near 25% rather than up to 100%. reserve() sizes all of them at once
// (snapshot loads), leaving no slack and no intermediate copies.
import { FNV_OFFSET, FNV_PRIME, fnv1a32 } from '../src/core/keys'

const MAX_LOAD = 0.8
const GROWTH = 1.5
const MIN_BITS = 4

/** Murmur3's finalizer: every output bit depends on every input bit. */
export function mix32 (h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return h ^ (h >>> 16)
}

/** FNV-1a of bytes, as the front computes it for a key. */
export function hashBytes (buf: Uint8Array, off: number, len: number): number {
  let h = FNV_OFFSET
  for (let k = off, end = off + len; k < end; k++) h = Math.imul(h ^ buf[k], FNV_PRIME)
  return h >>> 0
}

export class KeyTable {
  count = 0
  private bits: number
  private mask: number
  private maxCount: number // entries the slot array takes before it doubles
  private slots: Uint32Array
  /** The entry records (see the top of this file) and three views of them. */
  f64: Float64Array
  f32: Float32Array
  u32: Uint32Array
  arena: Buffer
  arenaLen = 0
  private readonly scratch = Buffer.allocUnsafe(256)

  constructor (capacity = 64) {
    capacity = Math.max(capacity, 1)
    this.bits = slotBitsFor(capacity)
    this.mask = (1 << this.bits) - 1
    this.maxCount = Math.floor((1 << this.bits) * MAX_LOAD)
    this.slots = new Uint32Array(1 << this.bits)
    this.f64 = new Float64Array(capacity * 2)
    this.f32 = new Float32Array(this.f64.buffer)
    this.u32 = new Uint32Array(this.f64.buffer)
    this.arena = Buffer.allocUnsafe(capacity * 12)
  }

  /** Entry e's value. */
  value (e: number): number { return this.f64[e << 1] }

  setValue (e: number, v: number): void { this.f64[e << 1] = v }

  /** Where entry e's key (u8 length | bytes) starts in the arena. */
  keyOff (e: number): number { return this.u32[(e << 2) + 3] }

  /** Entries the per-entry arrays hold before they grow. */
  get capacity (): number { return this.u32.length >>> 2 }

  /** Bytes held by the table's arrays (slots, per-entry arrays, arena), for probes and tests. */
  get byteSize (): number {
    return this.slots.byteLength + this.f64.byteLength + this.arena.length
  }

  /** Entry index of the key held in buf[off, off+len) with FNV-1a hash h, or -1. */
  find (buf: Uint8Array, off: number, len: number, h: number): number {
    const m = mix32(h)
    const bits = this.bits
    const mask = this.mask
    const tag = m << bits
    const slots = this.slots
    let i = m >>> (32 - bits)
    for (;;) {
      const s = slots[i]
      if (s === 0) return -1
      if ((s & ~mask) === tag) {
        const e = (s & mask) - 1
        if (this.sameKey(e, buf, off, len)) return e
      }
      i = (i + 1) & mask
    }
  }

  private sameKey (e: number, buf: Uint8Array, off: number, len: number): boolean {
    const a = this.arena
    let base = this.u32[(e << 2) + 3]
    if (a[base] !== len) return false
    base++
    for (let k = 0; k < len; k++) if (a[base + k] !== buf[off + k]) return false
    return true
  }

  /** Entry index of the key, inserted with value 0 if it was not there. */
  findOrInsert (buf: Uint8Array, off: number, len: number, h: number): number {
    if (this.count >= this.maxCount) this.growSlots(this.bits + 1)
    const m = mix32(h)
    const bits = this.bits
    const mask = this.mask
    const tag = m << bits
    const slots = this.slots
    let i = m >>> (32 - bits)
    for (;;) {
      const s = slots[i]
      if (s === 0) break
      if ((s & ~mask) === tag) {
        const e = (s & mask) - 1
        if (this.sameKey(e, buf, off, len)) return e
      }
      i = (i + 1) & mask
    }
    const e = this.count
    if (e === this.capacity) this.growEntries(Math.ceil(e * GROWTH))
    let o = this.arenaLen
    if (o + len + 1 > this.arena.length) this.growArena(len + 1)
    const a = this.arena
    this.f64[e << 1] = 0
    this.f32[(e << 2) + 2] = 0
    this.u32[(e << 2) + 3] = o
    a[o++] = len
    for (let k = off, end = off + len; k < end; k++) a[o++] = buf[k]
    this.arenaLen = o
    slots[i] = tag | (e + 1)
    this.count = e + 1
    return e
  }

  /**
   * Makes room for `entries` entries and `arenaBytes` more key bytes (each key takes its length
   * + 1) without any further growth: a bulk load sizes the table once, exactly.
   */
  reserve (entries: number, arenaBytes = 0): void {
    if (entries > this.capacity) this.growEntries(entries)
    const bits = slotBitsFor(entries)
    if (bits > this.bits) this.growSlots(bits)
    if (this.arenaLen + arenaBytes > this.arena.length) this.growArena(arenaBytes, true)
  }

  private growSlots (bits: number): void {
    this.bits = bits
    this.mask = (1 << bits) - 1
    this.maxCount = Math.floor((1 << bits) * MAX_LOAD)
    const mask = this.mask
    const slots = this.slots = new Uint32Array(1 << bits)
    const a = this.arena
    for (let e = 0; e < this.count; e++) {
      const off = this.u32[(e << 2) + 3]
      const m = mix32(hashBytes(a, off + 1, a[off]))
      let i = m >>> (32 - bits)
      while (slots[i] !== 0) i = (i + 1) & mask
      slots[i] = (m << bits) | (e + 1)
    }
  }

  private growEntries (n: number): void {
    const u32 = new Uint32Array(n * 4)
    u32.set(this.u32.subarray(0, Math.min(this.count, n) * 4))
    this.u32 = u32
    this.f64 = new Float64Array(u32.buffer)
    this.f32 = new Float32Array(u32.buffer)
    this.onGrow(n)
  }

  /** Lets a companion per-entry array (flags, rates) grow with the table's entries. */
  onGrow: (entries: number) => void = () => {}

  private growArena (need: number, exact = false): void {
    let size = this.arenaLen + need
    if (!exact) {
      size = Math.ceil(this.arena.length * GROWTH)
      while (size < this.arenaLen + need) size = Math.ceil(size * GROWTH)
    }
    const bigger = Buffer.allocUnsafe(size)
    this.arena.copy(bigger, 0, 0, this.arenaLen)
    this.arena = bigger
  }

  /** Entry e's key length in bytes. */
  keyLength (e: number): number {
    return this.arena[this.u32[(e << 2) + 3]]
  }

  /** Copies entry e's key as u8 length | key bytes into `to` at `o`; returns the offset after it. */
  copyKey (e: number, to: Uint8Array, o: number): number {
    const a = this.arena
    let k = this.u32[(e << 2) + 3]
    const end = k + 1 + a[k]
    while (k < end) to[o++] = a[k++]
    return o
  }

  /** Whether entry e's key starts with the given bytes. */
  hasPrefix (e: number, prefix: Uint8Array): boolean {
    const base = this.u32[(e << 2) + 3]
    if (this.arena[base] < prefix.length) return false
    for (let k = 0; k < prefix.length; k++) if (this.arena[base + 1 + k] !== prefix[k]) return false
    return true
  }

  key (e: number): string {
    const off = this.u32[(e << 2) + 3] + 1
    return this.arena.toString('latin1', off, off + this.arena[off - 1])
  }

  /** String-keyed access for recovery and tests (keys are ASCII; hash as the front does). */
  entryOf (key: string, insert: boolean): number {
    const len = this.scratch.write(key, 0, 'latin1')
    const h = fnv1a32(key)
    return insert ? this.findOrInsert(this.scratch, 0, len, h) : this.find(this.scratch, 0, len, h)
  }
}

/** log2 of the slot count that holds `entries` at most MAX_LOAD full. */
function slotBitsFor (entries: number): number {
  let bits = MIN_BITS
  while (Math.floor((1 << bits) * MAX_LOAD) < entries) bits++
  if (bits > 30) throw new RangeError(`a partition cannot hold ${entries} counters`)
  return bits
}
