// Uniform reservoir sample of the actors behind a counter (Li's Algorithm L): after n adds, each
// of the n adds is in the sample with probability size/n, independently of the order. A sample
// is of events, so an actor who incremented often is proportionally more likely to appear (and
// may appear more than once). Algorithm L draws the gap to the next accepted add, so a full
// reservoir costs one comparison per add and O(size · log(n/size)) random draws in total.
//
// Randomness comes from a seeded Prng whose state is part of the encoding: a reservoir restored
// from a snapshot and fed the same later adds (log replay) makes the same choices it would have
// made without the restart.
import { CounterdError } from '../../src/core/errors'
import { ByteReader, ByteWriter } from './codec'
import { checkOptions, intOption } from './options'
import { Prng } from './prng'

const MAX_SIZE = 10_000
const MAX_ACTOR_LENGTH = 1024

export interface ReservoirOptions {
  /** Sample size, 1..10000 (default 16). */
  size?: number
  /** PRNG seed, 0..2^32-1 (default 1). Vary it per counter so samples are independent. */
  seed?: number
}

export class Reservoir {
  readonly size: number
  private readonly rng: Prng
  private readonly items: string[] = []
  private n = 0 // adds so far
  private next = 0 // index of the next add to enter the full reservoir
  private w = 0 // Algorithm L's W

  constructor (options?: ReservoirOptions) {
    const o = checkOptions(options, ['size', 'seed'])
    this.size = intOption(o, 'size', 16, 1, MAX_SIZE)
    this.rng = new Prng(intOption(o, 'seed', 1, 0, 0xffffffff))
  }

  /** Adds one event's actor. */
  add (actor: string): void {
    if (typeof actor !== 'string' || actor.length > MAX_ACTOR_LENGTH) {
      throw new CounterdError('invalid_argument', `actor must be a string of at most ${MAX_ACTOR_LENGTH} characters`)
    }
    const i = this.n++
    if (i < this.size) {
      this.items.push(actor)
      if (i === this.size - 1) {
        this.w = Math.exp(Math.log(this.rng.open()) / this.size)
        this.skip(i)
      }
    } else if (i === this.next) {
      this.items[this.rng.below(this.size)] = actor
      this.w *= Math.exp(Math.log(this.rng.open()) / this.size)
      this.skip(i)
    }
  }

  /** Adds seen so far. */
  get seen (): number { return this.n }

  /** A copy of the current sample (fewer than `size` entries until `size` adds were seen). */
  sample (): string[] {
    return this.items.slice()
  }

  private skip (i: number): void {
    // Geometric gap with success probability W; log1p keeps precision while W is tiny.
    const gap = Math.floor(Math.log(this.rng.open()) / Math.log1p(-this.w))
    this.next = Math.min(i + gap + 1, Number.MAX_SAFE_INTEGER)
  }

  /** "CRSV" v1 | u32 size | f64 n | f64 next | f64 w | 4 × u32 prng | u32 k | k × str. */
  encode (): Buffer {
    const w = new ByteWriter(64 + this.items.length * 16)
    w.magic('CRSV', 1).u32(this.size).f64(this.n).f64(this.next).f64(this.w)
    for (const s of this.rng.getState()) w.u32(s)
    w.u32(this.items.length)
    for (const item of this.items) w.str(item)
    return w.finish()
  }

  static decode (input: Uint8Array): Reservoir {
    const r = new ByteReader(input, 'Reservoir')
    r.magic('CRSV', [1])
    const size = r.u32()
    if (size < 1 || size > MAX_SIZE) r.fail(`size ${size} out of range`)
    const res = new Reservoir({ size })
    res.n = r.num('seen', 0, Number.MAX_SAFE_INTEGER)
    res.next = r.num('next', 0, Number.MAX_SAFE_INTEGER)
    res.w = r.num('w', 0, 1)
    if (!Number.isInteger(res.n) || !Number.isInteger(res.next)) r.fail('seen and next must be integers')
    res.rng.setState([r.u32(), r.u32(), r.u32(), r.u32()])
    const k = r.count(2)
    if (k !== Math.min(res.n, size)) r.fail(`${k} items for ${res.n} adds into a reservoir of ${size}`)
    if (res.n >= size && res.next < size - 1) r.fail('next add index is inside the initial fill')
    for (let i = 0; i < k; i++) {
      const s = r.str()
      if (s.length > MAX_ACTOR_LENGTH) r.fail('item too long')
      res.items.push(s)
    }
    r.end()
    return res
  }
}
