// Who liked what, for every item of one partition: a user's like counts once, unlike undoes only
// a real like, counts are exact. Sized for tens of millions of likes per process, so nothing is
// stored per like but one 64-bit hash:
//
//   likes   one HashTable64 of H(item, user) = MurmurHash64A(user, seed = MurmurHash64A(item)):
//           the user's 64-bit hash, keyed by item. 8 bytes a slot, load 0.65..0.85.
//   counts  one HashTable64 of MurmurHash64A(item) → likes of that item (12 bytes a slot).
//   bloom   a blocked Bloom filter over the like hashes, 8 bits per like slot, k = 6: answers
//           most "has not liked" lookups (and unlikes of nothing) without probing the table.
//
// One shared table rather than a typed array per item: a typed array costs ~150 bytes of
// headers, which alone would exceed the 16 bytes a like budget when most items have few likes.
// What it gives up: listing the users of an item (not needed: samples come from reservoir.ts).
//
// Collisions: two different (item, user) pairs share a like hash with probability 2^-64 per
// pair. With N likes stored, a new like is wrongly taken for a duplicate (or has-liked answers
// true) with probability N / 2^64 (5·10^-13 at N = 10^7); over the life of 10^7 likes, the
// chance that it ever happens is about N² / 2^65 ≈ 3·10^-6. Same bound for two items sharing a count.
import { BloomFilter } from './bloom'
import { ByteReader, ByteWriter } from './codec'
import { HashTable64 } from './hash-table64'
import { CounterdError } from '../../src/core/errors'
import { murmur64String } from './murmur64'
import { checkOptions, intOption } from './options'

const ITEM = new Uint32Array(2)
const PAIR = new Uint32Array(2)
const BLOOM_BITS_PER_SLOT = 8
const BLOOM_HASHES = 6

export interface LikeSetOptions {
  /** Like slots to start with (default 1024); the table grows by 30% when 85% full. */
  initialCapacity?: number
  /**
   * Keep a like count per item (default true). Pass false when the count lives elsewhere (the
   * item's counter, moved by +1/−1 when like()/unlike() return true): saves 14-18 bytes per
   * liked item, which matters when most items have few likes.
   */
  trackCounts?: boolean
}

export interface LikeSetStats {
  likes: number
  items: number
  /** has-liked / unlike lookups the Bloom filter answered alone ("not liked"). */
  bloomNegatives: number
  /** lookups that probed the exact table. */
  tableLookups: number
  /** bytes held by the three typed arrays. */
  bytes: number
}

export class LikeSet {
  readonly trackCounts: boolean
  private likes: HashTable64
  private counts: HashTable64
  private bloom: BloomFilter
  private bloomSlots: number
  private removedSinceRebuild = 0
  private bloomNegatives = 0
  private tableLookups = 0

  constructor (options?: LikeSetOptions) {
    const o = checkOptions(options, ['initialCapacity', 'trackCounts'])
    const initial = intOption(o, 'initialCapacity', 1024, 16, 2 ** 30)
    if (o.trackCounts !== undefined && typeof o.trackCounts !== 'boolean') {
      throw new CounterdError('invalid_option', 'options.trackCounts must be true or false')
    }
    this.trackCounts = o.trackCounts !== false
    this.likes = new HashTable64(false, initial)
    this.counts = new HashTable64(true, 4)
    this.bloomSlots = initial
    this.bloom = newBloom(initial)
  }

  /** Records user's like of item. True when it is new (the item's count went up by one). */
  like (item: string, user: string): boolean {
    this.hash(item, user)
    const lo = PAIR[0]
    const hi = PAIR[1]
    // An insert probes the table anyway (to find a free slot), so the filter cannot save work here.
    if (!this.likes.add(lo, hi)) return false
    if (this.trackCounts) this.counts.adjust(ITEM[0], ITEM[1], 1)
    if (this.likes.capacity !== this.bloomSlots) this.rebuildBloom()
    else this.bloom.addHash(lo, hi)
    return true
  }

  /** Removes user's like of item. True when there was one (the count went down by one). */
  unlike (item: string, user: string): boolean {
    this.hash(item, user)
    const lo = PAIR[0]
    const hi = PAIR[1]
    if (!this.bloom.mayContainHash(lo, hi)) {
      this.bloomNegatives++
      return false
    }
    this.tableLookups++
    if (!this.likes.delete(lo, hi)) return false
    if (this.trackCounts) this.counts.adjust(ITEM[0], ITEM[1], -1)
    // Removed likes leave their bits set; rebuild once they could be a quarter of the filter.
    if (++this.removedSinceRebuild > Math.max(1024, this.likes.size >>> 2)) this.rebuildBloom()
    return true
  }

  hasLiked (item: string, user: string): boolean {
    this.hash(item, user)
    if (!this.bloom.mayContainHash(PAIR[0], PAIR[1])) {
      this.bloomNegatives++
      return false
    }
    this.tableLookups++
    return this.likes.has(PAIR[0], PAIR[1])
  }

  /** Likes of item (0 for an item nobody liked). Needs trackCounts. */
  count (item: string): number {
    if (!this.trackCounts) throw new CounterdError('invalid_option', 'count() needs options.trackCounts (this LikeSet was made without it)')
    if (typeof item !== 'string') throw new CounterdError('invalid_argument', 'item must be a string')
    murmur64String(item, 0, 0, ITEM)
    return this.counts.get(ITEM[0], ITEM[1])
  }

  /** Likes over all items. */
  get size (): number { return this.likes.size }
  /** Items with at least one like (0 without trackCounts). */
  get items (): number { return this.counts.size }

  stats (): LikeSetStats {
    return {
      likes: this.likes.size,
      items: this.counts.size,
      bloomNegatives: this.bloomNegatives,
      tableLookups: this.tableLookups,
      bytes: this.likes.byteSize + this.counts.byteSize + this.bloom.byteSize
    }
  }

  /**
   * "CLKS" v1 | u8 flags (1 = counts tracked) | u32 items | u32 likes |
   * items × (u32 lo, u32 hi, u32 count) | likes × (u32 lo, u32 hi). The Bloom filter is rebuilt on decode.
   */
  encode (): Buffer {
    const items = new Uint32Array(3 * this.counts.size)
    let k = 0
    for (let s = 0; s < this.counts.capacity; s++) {
      if (!this.counts.isUsed(s)) continue
      items[k++] = this.counts.loAt(s)
      items[k++] = this.counts.hiAt(s)
      items[k++] = this.counts.valueAt(s)
    }
    const likes = new Uint32Array(2 * this.likes.size)
    k = 0
    for (let s = 0; s < this.likes.capacity; s++) {
      if (!this.likes.isUsed(s)) continue
      likes[k++] = this.likes.loAt(s)
      likes[k++] = this.likes.hiAt(s)
    }
    return new ByteWriter(14 + items.byteLength + likes.byteLength).magic('CLKS', 1)
      .u8(this.trackCounts ? 1 : 0).u32(this.counts.size).u32(this.likes.size)
      .words(items, 0, items.length).words(likes, 0, likes.length).finish()
  }

  /** Decodes an encoding; trackCounts comes from the encoding, initialCapacity from options. */
  static decode (input: Uint8Array, options?: { initialCapacity?: number }): LikeSet {
    const r = new ByteReader(input, 'LikeSet')
    r.magic('CLKS', [1])
    const flags = r.u8()
    if (flags > 1) r.fail(`unknown flags ${flags}`)
    const nItems = r.count(12)
    const nLikes = r.u32()
    if (nLikes * 8 + nItems * 12 !== input.length - r.offset) r.fail(`sizes (${nItems} items, ${nLikes} likes) do not match the input`)
    const items = new Uint32Array(3 * nItems)
    r.words(items, items.length)
    const likes = new Uint32Array(2 * nLikes)
    r.words(likes, likes.length)
    r.end()
    if (flags === 0 && nItems !== 0) r.fail('item counts in a set that does not track them')
    const set = new LikeSet({ ...options, trackCounts: flags === 1 })
    set.counts.reserve(nItems)
    set.likes.reserve(nLikes)
    let total = 0
    for (let i = 0; i < items.length; i += 3) {
      if (items[i + 2] === 0) r.fail('an item with 0 likes')
      if (!set.counts.add(items[i], items[i + 1])) r.fail('an item listed twice')
      set.counts.adjust(items[i], items[i + 1], items[i + 2])
      total += items[i + 2]
    }
    if (flags === 1 && total !== nLikes) r.fail(`item counts add up to ${total}, not ${nLikes} likes`)
    for (let i = 0; i < likes.length; i += 2) {
      if (!set.likes.add(likes[i], likes[i + 1])) r.fail('a like listed twice')
    }
    set.rebuildBloom()
    return set
  }

  private hash (item: string, user: string): void {
    if (typeof item !== 'string' || typeof user !== 'string') {
      throw new CounterdError('invalid_argument', 'item and user must be strings')
    }
    murmur64String(item, 0, 0, ITEM)
    murmur64String(user, ITEM[1], ITEM[0], PAIR)
    if ((PAIR[0] | PAIR[1]) === 0) PAIR[1] = 1 // the table's stand-in for the zero key, here too
  }

  private rebuildBloom (): void {
    const likes = this.likes
    this.bloomSlots = likes.capacity
    this.bloom = newBloom(likes.capacity)
    for (let s = 0; s < likes.capacity; s++) {
      if (likes.isUsed(s)) this.bloom.addHash(likes.loAt(s), likes.hiAt(s))
    }
    this.removedSinceRebuild = 0
  }
}

function newBloom (slots: number): BloomFilter {
  return new BloomFilter({ capacity: slots, bitsPerItem: BLOOM_BITS_PER_SLOT, hashes: BLOOM_HASHES })
}
