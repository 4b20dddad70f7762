// The counters of one partition, keyed by the key's bytes: an open-addressing hash table over
// typed arrays plus a byte arena for the keys. Ops arrive as bytes with their FNV-1a hash already
// computed by the front, so applying one costs a probe and an add, with no string and no Map entry
// per op.
//
// Entries are never removed (a counter reset to 0 keeps its slot; snapshots skip zeros and a
// restart drops them), which keeps probing simple, and an entry's index never changes.
//
// Layout, per entry: one 16-byte record, read through three views of the chunk holding it,
//   f64[2i]     the counter's value
//   f32[4i + 2] a float32 the owner keeps with the entry (the partition keeps the recent rate)
//   u32[4i + 3] the key word: 2 flag bits for the owner | 1 bit "inline" | 29 bits, either
//               inline: 6 bits type index | 23 bits id, for an id that is a decimal number
//                       below 2^23 written without leading zeros ("post:123456"), or
//               else:   where the key sits in the arena, 15 bits chunk | 14 bits offset
// so a lookup and an update touch two or three places (slot, record, maybe the key) rather than
// one array per field: at millions of counters each is a cache miss, and those misses are most of
// an op's cost. Keys are "type:id" (src/core/keys.ts) and a partition sees few types, so a key
// names its type by an index into the table's types; in the arena a key is u8 length | u8 type
// index | the id's bytes, or u8 length | 255 | the key's bytes when it has no type (or the table
// already knows 255 types). Decimal ids are the common case (ids handed out by a database), and
// they need no arena bytes at all; any other id costs 2 + its length there.
//
// The slots: u32 each, at most 80% full, growing by half (so 53–80% full, 5 to 7.5 bytes per
// entry), in chunks of 4096 (a small table has one shorter chunk). A slot holds the entry index + 1
// in its low `bits` bits (0 = empty) and the mixed hash's low bits above them as a tag, so a probe
// rejects a different key without touching the record or the key, and no per-entry hash is kept
// (growth rehashes from the keys: cheap, and rare). The home slot is ⌊m · slots / 2^32⌋ for m the
// full-avalanche mix of the FNV hash: a partition's keys all share FNV mod P (P = the partition
// count), hence many low bits.
//
// Memory: records and keys live in chunks of 16 KiB (1024 records; 16384 key bytes) that are
// allocated once and never copied or freed; only a small table's first chunk grows (doubling)
// until it is full size. A table carries at most one partly used chunk of each. Full-size chunks,
// slots' included, come from this thread's ChunkPool, and old slot chunks go back to it. (Whole
// arrays grown by copying left holes of every size in the heap the service's transient buffers
// churn in: they stayed in the resident set, up to as much again as the tables themselves.)
// About 16 bytes per entry, plus 2 + id length for ids stored in the arena, plus the slots.
import { FNV_OFFSET, FNV_PRIME, fnv1a32 } from '../src/core/keys'

const MAX_LOAD = 0.8
const SLOT_GROWTH = 1.5
const MIN_SLOTS = 16
// Every chunk is 16 KiB, so a chunk freed by slot growth fits any chunk allocated later.
const SLOT_CHUNK_BITS = 12
const SLOT_CHUNK = 1 << SLOT_CHUNK_BITS
const IN_SLOT_CHUNK = SLOT_CHUNK - 1
const CHUNK_BITS = 10
const CHUNK = 1 << CHUNK_BITS // records per chunk
const IN_CHUNK = CHUNK - 1
const ARENA_BITS = 14
const ARENA_CHUNK = 1 << ARENA_BITS // key bytes per arena chunk
const IN_ARENA = ARENA_CHUNK - 1
const MAX_ARENA_CHUNKS = 1 << (29 - ARENA_BITS)
const INLINE = 0x20000000 // key word: the key is in the word
const PLACE = 0x1fffffff // key word: the arena place, or the inline type and id
const ID_BITS = 23
const MAX_INLINE_ID = (1 << ID_BITS) - 1
const MAX_INLINE_TYPES = 64
const TWO32 = 4294967296
const CHUNK_BYTES = 16384 // records, key bytes and slots all come in chunks of this size
const SLAB_BYTES = 1 << 20
const COLON = 0x3a
const ZERO = 0x30
const RAW = 255 // a stored key's type index when it is stored whole
const MAX_TYPE = 32 // longest type (src/core/keys.ts MAX_TYPE_LEN)

/** The two owner flags an entry's record has room for. */
export const FLAG_A = 0x40000000
export const FLAG_B = 0x80000000
/** Entry e's record is record e & (2^RECORD_CHUNK_BITS − 1) of chunk e >>> RECORD_CHUNK_BITS. */
export const RECORD_CHUNK_BITS = CHUNK_BITS

/** Murmur3's finalizer: every output bit depends on every input bit. */
export function mix32 (h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** FNV-1a of bytes, as the front computes it for a key. */
export function hashBytes (buf: Uint8Array, off: number, len: number): number {
  let h = FNV_OFFSET
  for (let k = off, end = off + len; k < end; k++) h = Math.imul(h ^ buf[k], FNV_PRIME)
  return h >>> 0
}

/**
 * Where full-size chunks (16 KiB: records, keys, slots) come from: carved out of 1 MiB slabs that
 * belong to this thread, and reused once a table gives them back (old slot chunks). A slab is
 * large enough for the allocator to map it on its own, away from the heap the service's transient
 * buffers churn in, and its pages count in the resident set only once a chunk there is used; so
 * the tables' memory is just their chunks, never holes between someone else's buffers.
 */
class ChunkPool {
  private slab: ArrayBuffer | null = null
  private used = SLAB_BYTES
  private readonly spare: Uint8Array[] = []
  slabs = 0

  /** A zeroed chunk. */
  take (): Uint8Array {
    const reused = this.spare.pop()
    if (reused !== undefined) return reused.fill(0)
    if (this.used === SLAB_BYTES) {
      this.slab = new ArrayBuffer(SLAB_BYTES)
      this.used = 0
      this.slabs++
    }
    const chunk = new Uint8Array(this.slab as ArrayBuffer, this.used, CHUNK_BYTES)
    this.used += CHUNK_BYTES
    return chunk
  }

  give (chunk: ArrayBufferView): void {
    if (chunk.byteLength !== CHUNK_BYTES) return // a small table's own array: the GC takes it
    this.spare.push(new Uint8Array(chunk.buffer, chunk.byteOffset, CHUNK_BYTES))
  }
}

/** This thread's chunk pool (every table of a thread shares it). */
export const chunkPool = new ChunkPool()

/** Decimal digits of n (0 ≤ n ≤ MAX_INLINE_ID, which has 7). */
function digits (n: number): number {
  return n < 10000 ? (n < 100 ? (n < 10 ? 1 : 2) : (n < 1000 ? 3 : 4)) : (n < 1000000 ? (n < 100000 ? 5 : 6) : 7)
}

export class KeyTable {
  count = 0
  private size: number // slots
  private bits: number // low bits of a slot holding entry + 1
  private mask: number
  private maxCount: number // entries the slot array takes before it grows
  private slots: Uint32Array[] = [] // chunks of SLOT_CHUNK slots: slot i is slots[i >>> 12][i & 4095]
  /** Record chunks: entry e is record e & 1023 of chunk e >>> 10, seen through three views. */
  f64s: Float64Array[] = []
  f32s: Float32Array[] = []
  u32s: Uint32Array[] = []
  private capacityNow = 0
  /** Key chunks: an arena key's place is chunk << 14 | offset. */
  private readonly arenas: Buffer[] = []
  private arenaLen = 0 // bytes used in the last arena chunk
  /** The types ("type" of "type:id" keys) this table has seen; a stored key names its type by index. */
  private readonly types: Buffer[] = []
  private readonly typeHashes: number[] = [] // FNV-1a state after "type:"
  private lastType = 0
  private readonly scratch = Buffer.allocUnsafe(256) // entryOf's key
  private readonly keyScratch = Buffer.allocUnsafe(256) // a stored key rebuilt (rehash, key(), hasPrefix)

  constructor (capacity = 64) {
    capacity = Math.max(capacity, 1)
    this.size = MIN_SLOTS
    this.bits = 0
    this.mask = 0
    this.maxCount = 0
    this.resizeSlots(slotsFor(capacity))
    this.addRecordChunk(Math.min(Math.max(capacity, 16), CHUNK))
    this.arenas.push(Buffer.allocUnsafe(256))
  }

  /** Entries the record chunks hold before another is needed. */
  get capacity (): number { return this.capacityNow }

  /** Bytes held by the table's arrays (slots, records, key chunks), for probes and tests. */
  get byteSize (): number {
    let n = 0
    for (const c of this.slots) n += c.byteLength
    for (const c of this.u32s) n += c.byteLength
    for (const a of this.arenas) n += a.length
    return n
  }

  /** Entry e's value. */
  value (e: number): number { return this.f64s[e >>> CHUNK_BITS][(e & IN_CHUNK) << 1] }

  setValue (e: number, v: number): void { this.f64s[e >>> CHUNK_BITS][(e & IN_CHUNK) << 1] = v }

  /** Entry e's float32 kept for the owner. */
  aux (e: number): number { return this.f32s[e >>> CHUNK_BITS][((e & IN_CHUNK) << 2) + 2] }

  setAux (e: number, v: number): void { this.f32s[e >>> CHUNK_BITS][((e & IN_CHUNK) << 2) + 2] = v }

  /** Whether entry e has the owner flag `flag` (FLAG_A or FLAG_B). */
  hasFlag (e: number, flag: number): boolean {
    return (this.u32s[e >>> CHUNK_BITS][((e & IN_CHUNK) << 2) + 3] & flag) !== 0
  }

  setFlag (e: number, flag: number): void {
    const c = this.u32s[e >>> CHUNK_BITS]
    const w = ((e & IN_CHUNK) << 2) + 3
    c[w] = (c[w] | flag) >>> 0
  }

  clearFlag (e: number, flag: number): void {
    const c = this.u32s[e >>> CHUNK_BITS]
    const w = ((e & IN_CHUNK) << 2) + 3
    c[w] = (c[w] & ~flag) >>> 0
  }

  private keyWord (e: number): number {
    return this.u32s[e >>> CHUNK_BITS][((e & IN_CHUNK) << 2) + 3]
  }

  /** Entry index of the key held in buf[off, off+len) with FNV-1a hash h, or -1. */
  find (buf: Uint8Array, off: number, len: number, h: number): number {
    const r = this.probe(buf, off, len, h)
    return r >= 0 ? r : -1
  }

  /**
   * The key's entry index (≥ 0), or −1 − the empty slot where it would go. The home slot is
   * ⌊m · slots / 2^32⌋ for m the mixed hash; a slot's tag (the hash's low bits above the entry
   * bits) rejects most other keys without touching their records.
   */
  private probe (buf: Uint8Array, off: number, len: number, h: number): number {
    const m = mix32(h)
    const size = this.size
    const mask = this.mask
    const tag = m << this.bits
    const slots = this.slots
    let i = Math.floor(m * size / TWO32)
    for (;;) {
      const s = slots[i >>> SLOT_CHUNK_BITS][i & IN_SLOT_CHUNK]
      if (s === 0) return -1 - i
      if ((s & ~mask) === tag) {
        const e = (s & mask) - 1
        if (this.sameKey(e, buf, off, len)) return e
      }
      if (++i === size) i = 0
    }
  }

  /** Whether entry e's key is buf[off, off+len). */
  private sameKey (e: number, buf: Uint8Array, off: number, len: number): boolean {
    const w = this.keyWord(e)
    if ((w & INLINE) !== 0) {
      const type = this.types[(w >>> ID_BITS) & (MAX_INLINE_TYPES - 1)]
      const tl = type.length
      for (let k = 0; k < tl; k++) if (type[k] !== buf[off + k]) return false
      if (buf[off + tl] !== COLON) return false
      // The id: decimal digits, no leading zero, equal to the stored number.
      const start = off + tl + 1
      const n = off + len - start
      if (n < 1 || n > 7 || (buf[start] === ZERO && n > 1)) return false
      let v = 0
      for (let k = start, end = off + len; k < end; k++) {
        const d = buf[k] - ZERO
        if (d < 0 || d > 9) return false
        v = v * 10 + d
      }
      return v === (w & MAX_INLINE_ID)
    }
    const place = w & PLACE
    const a = this.arenas[place >>> ARENA_BITS]
    let base = place & IN_ARENA
    if (a[base] !== len) return false
    const t = a[base + 1]
    base += 2
    if (t !== RAW) {
      const type = this.types[t]
      const tl = type.length
      for (let k = 0; k < tl; k++) if (type[k] !== buf[off + k]) return false
      if (buf[off + tl] !== COLON) return false
      off += tl + 1
      len -= tl + 1
    }
    for (let k = 0; k < len; k++) if (a[base + k] !== buf[off + k]) return false
    return true
  }

  /** Entry index of the key, inserted with value 0 if it was not there. */
  findOrInsert (buf: Uint8Array, off: number, len: number, h: number): number {
    if (this.count >= this.maxCount) this.resizeSlots(Math.ceil(this.size * SLOT_GROWTH))
    const found = this.probe(buf, off, len, h)
    if (found >= 0) return found
    const i = -1 - found // the empty slot the probe ended on: records and keys growing leave it be
    const e = this.count
    if (e === this.capacityNow) this.growRecords()
    const word = this.storeKey(buf, off, len)
    const c = e >>> CHUNK_BITS
    const r = (e & IN_CHUNK) << 2
    this.f64s[c][r >>> 1] = 0
    this.u32s[c][r + 2] = 0
    this.u32s[c][r + 3] = word
    this.slots[i >>> SLOT_CHUNK_BITS][i & IN_SLOT_CHUNK] = ((mix32(h) << this.bits) | (e + 1)) >>> 0
    this.count = e + 1
    return e
  }

  /** Stores a key: returns its key word (inline, or its place in the arena). */
  private storeKey (buf: Uint8Array, off: number, len: number): number {
    if (len > 255) throw new RangeError(`a key of ${len} bytes is longer than 255`)
    const t = this.typeOf(buf, off, len)
    const skip = t === RAW ? 0 : this.types[t].length + 1
    if (t < MAX_INLINE_TYPES) {
      const start = off + skip
      const n = len - skip
      if (n >= 1 && n <= 7 && (buf[start] !== ZERO || n === 1)) {
        let v = 0
        let k = start
        for (; k < off + len; k++) {
          const d = buf[k] - ZERO
          if (d < 0 || d > 9) break
          v = v * 10 + d
        }
        if (k === off + len && v <= MAX_INLINE_ID) return (INLINE | t << ID_BITS | v) >>> 0
      }
    }
    const need = 2 + len - skip
    let c = this.arenas.length - 1
    let a = this.arenas[c]
    let o = this.arenaLen
    if (o + need > a.length) {
      if (a.length < ARENA_CHUNK) {
        // The first chunk grows until it is full size.
        let n = a.length * 2
        while (n < o + need) n *= 2
        const bigger = Buffer.allocUnsafe(Math.min(n, ARENA_CHUNK))
        a.copy(bigger, 0, 0, o)
        a = this.arenas[c] = bigger
      } else {
        if (++c === MAX_ARENA_CHUNKS) throw new RangeError(`a partition cannot hold more than ${MAX_ARENA_CHUNKS * ARENA_CHUNK} bytes of keys`)
        const chunk = chunkPool.take()
        a = Buffer.from(chunk.buffer, chunk.byteOffset, ARENA_CHUNK)
        this.arenas.push(a)
        o = 0
      }
    }
    const place = c << ARENA_BITS | o
    a[o++] = len
    a[o++] = t
    for (let k = off + skip, end = off + len; k < end; k++) a[o++] = buf[k]
    this.arenaLen = o
    return place
  }

  /** Index of the key's type ("type" of "type:id") in this table's types, added if new; or RAW. */
  private typeOf (buf: Uint8Array, off: number, len: number): number {
    let tl = 0
    while (tl < len && tl <= MAX_TYPE && buf[off + tl] !== COLON) tl++
    if (tl === 0 || tl === len || tl > MAX_TYPE) return RAW
    const types = this.types
    // Most keys of a run share the type of the key before: try that one first.
    for (let n = 0, t = this.lastType; n < types.length; n++, t = t + 1 === types.length ? 0 : t + 1) {
      const type = types[t]
      if (type.length !== tl) continue
      let k = 0
      while (k < tl && type[k] === buf[off + k]) k++
      if (k === tl) { this.lastType = t; return t }
    }
    if (types.length === RAW) return RAW
    types.push(Buffer.from(buf.subarray(off, off + tl)))
    this.typeHashes.push(hashBytes(buf, off, tl + 1))
    return (this.lastType = types.length - 1)
  }

  private growRecords (): void {
    const last = this.u32s.length - 1
    const have = this.u32s[last].length >>> 2
    if (have < CHUNK) {
      // The first chunk grows (doubling) until it is full size.
      const u32 = new Uint32Array(Math.min(have * 2, CHUNK) * 4)
      u32.set(this.u32s[last])
      this.u32s[last] = u32
      this.f64s[last] = new Float64Array(u32.buffer, u32.byteOffset, u32.length >>> 1)
      this.f32s[last] = new Float32Array(u32.buffer, u32.byteOffset, u32.length)
      this.capacityNow += (u32.length >>> 2) - have
    } else {
      this.addRecordChunk(CHUNK)
    }
    this.onGrow(this.capacityNow)
  }

  private addRecordChunk (records: number): void {
    const u32 = records === CHUNK ? u32View(chunkPool.take()) : new Uint32Array(records * 4)
    this.u32s.push(u32)
    this.f64s.push(new Float64Array(u32.buffer, u32.byteOffset, u32.length >>> 1))
    this.f32s.push(new Float32Array(u32.buffer, u32.byteOffset, u32.length))
    this.capacityNow += records
  }

  /** Lets a companion per-entry array grow with the table's capacity. */
  onGrow: (entries: number) => void = () => {}

  /** Makes room for `entries` entries in all (slots sized once: a bulk load rehashes nothing). */
  reserve (entries: number): void {
    const size = slotsFor(entries)
    if (size > this.size) this.resizeSlots(size)
  }

  private resizeSlots (size: number): void {
    size = Math.max(size, MIN_SLOTS)
    if (size > SLOT_CHUNK) size = Math.ceil(size / SLOT_CHUNK) * SLOT_CHUNK
    let bits = 1
    const maxCount = Math.floor(size * MAX_LOAD)
    while ((1 << bits) <= maxCount) bits++
    if (bits > 30) throw new RangeError(`a partition cannot hold ${maxCount} counters`)
    this.size = size
    this.bits = bits
    this.mask = (1 << bits) - 1
    this.maxCount = maxCount
    // The rehash reads the keys, not the old slots: their chunks can serve the new ones.
    for (const c of this.slots) chunkPool.give(c)
    const slots: Uint32Array[] = this.slots = []
    for (let n = 0; n < size; n += SLOT_CHUNK) slots.push(size - n >= SLOT_CHUNK ? u32View(chunkPool.take()) : new Uint32Array(size - n))
    for (let e = 0; e < this.count; e++) {
      const m = mix32(this.hashOf(e))
      let i = Math.floor(m * size / TWO32)
      while (slots[i >>> SLOT_CHUNK_BITS][i & IN_SLOT_CHUNK] !== 0) if (++i === size) i = 0
      slots[i >>> SLOT_CHUNK_BITS][i & IN_SLOT_CHUNK] = ((m << bits) | (e + 1)) >>> 0
    }
  }

  /** FNV-1a of entry e's key (as the front hashed it). */
  private hashOf (e: number): number {
    const n = this.copyKey(e, this.keyScratch, 0)
    return hashBytes(this.keyScratch, 1, n - 1)
  }

  /** Gives every full-size chunk back to the pool; the table is empty afterwards. */
  dispose (): void {
    for (const c of this.slots) chunkPool.give(c)
    for (const c of this.u32s) chunkPool.give(c)
    for (const a of this.arenas) chunkPool.give(a)
    this.slots = []
    this.u32s = []
    this.f64s = []
    this.f32s = []
    this.arenas.length = 0
    this.count = 0
    this.capacityNow = 0
    this.arenaLen = 0
    this.types.length = 0
    this.typeHashes.length = 0
    this.lastType = 0
    this.resizeSlots(MIN_SLOTS)
    this.addRecordChunk(16)
    this.arenas.push(Buffer.allocUnsafe(256))
  }

  /** Entry e's key length in bytes. */
  keyLength (e: number): number {
    const w = this.keyWord(e)
    if ((w & INLINE) !== 0) return this.types[(w >>> ID_BITS) & (MAX_INLINE_TYPES - 1)].length + 1 + digits(w & MAX_INLINE_ID)
    const place = w & PLACE
    return this.arenas[place >>> ARENA_BITS][place & IN_ARENA]
  }

  /** Copies entry e's key as u8 length | key bytes into `to` at `o`; returns the offset after it. */
  copyKey (e: number, to: Uint8Array, o: number): number {
    const w = this.keyWord(e)
    if ((w & INLINE) !== 0) {
      const type = this.types[(w >>> ID_BITS) & (MAX_INLINE_TYPES - 1)]
      let v = w & MAX_INLINE_ID
      const nd = digits(v)
      to[o++] = type.length + 1 + nd
      for (let j = 0; j < type.length; j++) to[o++] = type[j]
      to[o++] = COLON
      for (let j = o + nd - 1; j >= o; j--) {
        const d = v % 10
        to[j] = ZERO + d
        v = (v - d) / 10
      }
      return o + nd
    }
    const place = w & PLACE
    const a = this.arenas[place >>> ARENA_BITS]
    let k = place & IN_ARENA
    const len = a[k]
    const t = a[k + 1]
    to[o++] = len
    let end = k + 2 + len
    if (t !== RAW) {
      const type = this.types[t]
      for (let j = 0; j < type.length; j++) to[o++] = type[j]
      to[o++] = COLON
      end -= type.length + 1
    }
    for (k += 2; k < end; k++) to[o++] = a[k]
    return o
  }

  /** Whether entry e's key starts with the given bytes. */
  hasPrefix (e: number, prefix: Uint8Array): boolean {
    if (this.keyLength(e) < prefix.length) return false
    this.copyKey(e, this.keyScratch, 0)
    for (let k = 0; k < prefix.length; k++) if (this.keyScratch[1 + k] !== prefix[k]) return false
    return true
  }

  /** Whether the key of entry e holds the byte `b` anywhere (a scan for marked keys without a string per key). */
  hasByte (e: number, b: number): boolean {
    const n = this.copyKey(e, this.keyScratch, 0)
    for (let k = 1; k < n; k++) if (this.keyScratch[k] === b) return true
    return false
  }

  key (e: number): string {
    const n = this.copyKey(e, this.keyScratch, 0)
    return this.keyScratch.toString('latin1', 1, n)
  }

  /** String-keyed access for recovery and tests (keys are ASCII; hash as the front does). */
  entryOf (key: string, insert: boolean): number {
    const len = this.scratch.write(key, 0, 'latin1')
    const h = fnv1a32(key)
    return insert ? this.findOrInsert(this.scratch, 0, len, h) : this.find(this.scratch, 0, len, h)
  }
}

function u32View (chunk: Uint8Array): Uint32Array {
  return new Uint32Array(chunk.buffer, chunk.byteOffset, chunk.byteLength >>> 2)
}

/** Slots that hold `entries` at most MAX_LOAD full. */
function slotsFor (entries: number): number {
  return Math.max(MIN_SLOTS, Math.ceil((entries + 1) / MAX_LOAD))
}
