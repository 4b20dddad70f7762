// The counters of one partition, keyed by the key's bytes: an open-addressing hash table over
// typed arrays plus a byte arena for the keys. Ops arrive as bytes with their FNV-1a hash already
// computed by the front, so applying one costs a probe and an add, with no string and no Map entry
// per op; it is also what keeps memory per counter well under a Map<string, number>'s.
//
// Entries are never removed (a counter reset to 0 keeps its slot; snapshots skip zeros and a
// restart drops them), which keeps probing simple.
//
// Memory: the slot array (4 bytes a slot, power of two, at most 70% full) doubles; the per-entry
// arrays (here and the partition's companions) and the key arena grow by half, so the slack a
// large table carries stays near 25% rather than up to 100%.
import { fnv1a32 } from '../src/core/keys'

const EMPTY = 0
const MAX_LOAD = 0.7
const GROWTH = 1.5

export class KeyTable {
  count = 0
  private mask: number
  private slots: Int32Array // entry index + 1, or EMPTY
  hashes: Uint32Array
  keyOff: Uint32Array
  keyLen: Uint8Array
  values: Float64Array
  arena: Buffer
  arenaLen = 0
  private readonly scratch = Buffer.allocUnsafe(256)

  constructor (capacity = 64) {
    let cap = 16
    while (cap * MAX_LOAD < capacity) cap *= 2
    this.mask = cap - 1
    this.slots = new Int32Array(cap)
    const n = capacity
    this.hashes = new Uint32Array(n)
    this.keyOff = new Uint32Array(n)
    this.keyLen = new Uint8Array(n)
    this.values = new Float64Array(n)
    this.arena = Buffer.allocUnsafe(n * 16)
  }

  /** Entry index of the key held in buf[off, off+len) with FNV-1a hash h, or -1. */
  find (buf: Uint8Array, off: number, len: number, h: number): number {
    const mask = this.mask
    // The partition is h mod P, so h's low bits are alike within a partition: mix before indexing.
    let i = Math.imul(h, 0x9e3779b1) >>> 0
    for (;;) {
      i &= mask
      const s = this.slots[i]
      if (s === EMPTY) return -1
      const e = s - 1
      if (this.hashes[e] === h >>> 0 && this.keyLen[e] === len && this.sameKey(e, buf, off, len)) return e
      i++
    }
  }

  private sameKey (e: number, buf: Uint8Array, off: number, len: number): boolean {
    const a = this.arena
    const base = this.keyOff[e]
    for (let k = 0; k < len; k++) if (a[base + k] !== buf[off + k]) return false
    return true
  }

  /** Entry index of the key, inserted with value 0 if it was not there. */
  findOrInsert (buf: Uint8Array, off: number, len: number, h: number): number {
    const found = this.find(buf, off, len, h)
    if (found >= 0) return found
    if (this.count + 1 > this.slots.length * MAX_LOAD) this.growSlots()
    if (this.count === this.values.length) this.growEntries()
    const e = this.count++
    if (this.arenaLen + len > this.arena.length) this.growArena(len)
    this.arena.set(buf.subarray(off, off + len), this.arenaLen)
    this.keyOff[e] = this.arenaLen
    this.keyLen[e] = len
    this.arenaLen += len
    this.hashes[e] = h >>> 0
    this.values[e] = 0
    this.place(e)
    return e
  }

  private place (e: number): void {
    let i = Math.imul(this.hashes[e], 0x9e3779b1) >>> 0
    for (;;) {
      i &= this.mask
      if (this.slots[i] === EMPTY) { this.slots[i] = e + 1; return }
      i++
    }
  }

  private growSlots (): void {
    const cap = this.slots.length * 2
    this.mask = cap - 1
    this.slots = new Int32Array(cap)
    for (let e = 0; e < this.count; e++) this.place(e)
  }

  private growEntries (): void {
    const n = Math.ceil(this.values.length * GROWTH)
    this.hashes = copyInto(new Uint32Array(n), this.hashes)
    this.keyOff = copyInto(new Uint32Array(n), this.keyOff)
    this.keyLen = copyInto(new Uint8Array(n), this.keyLen)
    this.values = copyInto(new Float64Array(n), this.values)
    this.onGrow(n)
  }

  /** Lets a companion per-entry array (pending deltas, marks) grow with the table's entries. */
  onGrow: (entries: number) => void = () => {}

  private growArena (need: number): void {
    let size = Math.ceil(this.arena.length * GROWTH)
    while (size < this.arenaLen + need) size = Math.ceil(size * GROWTH)
    const bigger = Buffer.allocUnsafe(size)
    this.arena.copy(bigger, 0, 0, this.arenaLen)
    this.arena = bigger
  }

  /** Whether entry e's key starts with the given bytes. */
  hasPrefix (e: number, prefix: Uint8Array): boolean {
    if (this.keyLen[e] < prefix.length) return false
    const base = this.keyOff[e]
    for (let k = 0; k < prefix.length; k++) if (this.arena[base + k] !== prefix[k]) return false
    return true
  }

  key (e: number): string {
    const off = this.keyOff[e]
    return this.arena.toString('latin1', off, off + this.keyLen[e])
  }

  /** String-keyed access for recovery and tests (keys are ASCII; hash as the front does). */
  entryOf (key: string, insert: boolean): number {
    const len = this.scratch.write(key, 0, 'latin1')
    const h = fnv1a32(key)
    return insert ? this.findOrInsert(this.scratch, 0, len, h) : this.find(this.scratch, 0, len, h)
  }
}

function copyInto<T extends Uint32Array | Uint8Array | Float64Array | Int32Array> (to: T, from: T): T {
  to.set(from as never)
  return to
}
