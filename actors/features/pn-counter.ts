// PN-counter CRDT: one counter as seen by several replicas (clusters, regions). Each replica
// only ever grows its own two totals, P (sum of its increments) and N (sum of its decrements);
// value = ΣP − ΣN. Replicas exchange records (replica, P, N) — the sender's current totals —
// and apply them by taking the larger of each total (delta-state CRDT). Taking a maximum is
// idempotent, commutative and associative, so records may arrive late, twice, out of order or
// relayed through a third replica, and every replica that has seen the same records agrees.
// A newer record of a replica supersedes all its older ones, so only the latest needs sending.
import { CounterdError } from '../../src/core/errors'
import { ByteReader, ByteWriter } from './codec'
import { checkOptions, stringOption } from './options'

const MAX = Number.MAX_SAFE_INTEGER
const REPLICA_RE = /^[A-Za-z0-9_.:-]{1,64}$/
const MAX_REPLICAS = 1024

export interface PNCounterOptions {
  /** This replica's id (REPLICA_ID), [A-Za-z0-9_.:-]{1,64}. */
  replica: string
}

export interface PNRecord {
  replica: string
  p: number
  n: number
}

export class PNCounter {
  readonly replica: string
  // Parallel arrays: a counter usually has one to three replicas, so a scan beats a Map.
  private readonly ids: string[] = []
  private readonly ps: number[] = []
  private readonly ns: number[] = []
  private sum = 0

  constructor (options: PNCounterOptions) {
    const o = checkOptions(options, ['replica'])
    this.replica = stringOption(o, 'replica', undefined, REPLICA_RE, 'a replica id matching [A-Za-z0-9_.:-]{1,64}')
  }

  /** ΣP − ΣN over every replica seen. */
  get value (): number { return this.sum }

  /** Replicas with an entry. */
  get replicas (): number { return this.ids.length }

  /** Applies a local increment (negative: decrement). Returns the new value. */
  increment (by: number): number {
    if (!Number.isSafeInteger(by)) throw new CounterdError('invalid_delta')
    const next = this.sum + by
    if (next > MAX || next < -MAX) throw new CounterdError('value_out_of_range')
    let i = this.ids.indexOf(this.replica)
    if (i < 0) i = this.addReplica(this.replica)
    if (by >= 0) {
      if (this.ps[i] + by > MAX) throw new CounterdError('value_out_of_range', `replica ${this.replica} has counted 2^53-1 increments; its total cannot grow`)
      this.ps[i] += by
    } else {
      if (this.ns[i] - by > MAX) throw new CounterdError('value_out_of_range', `replica ${this.replica} has counted 2^53-1 decrements; its total cannot grow`)
      this.ns[i] -= by
    }
    this.sum = next
    return next
  }

  /**
   * Applies a record (some replica's totals). True when it taught this counter something.
   * Applying an old or repeated record changes nothing.
   */
  apply (replica: string, p: number, n: number): boolean {
    if (typeof replica !== 'string' || !REPLICA_RE.test(replica)) {
      throw new CounterdError('invalid_argument', 'replica must match [A-Za-z0-9_.:-]{1,64}')
    }
    if (!Number.isSafeInteger(p) || p < 0 || !Number.isSafeInteger(n) || n < 0) {
      throw new CounterdError('invalid_argument', 'p and n must be integers between 0 and 2^53-1')
    }
    let i = this.ids.indexOf(replica)
    if (i < 0) {
      if (p === 0 && n === 0) return false
      i = this.addReplica(replica)
    }
    let changed = false
    if (p > this.ps[i]) {
      this.sum += p - this.ps[i]
      this.ps[i] = p
      changed = true
    }
    if (n > this.ns[i]) {
      this.sum -= n - this.ns[i]
      this.ns[i] = n
      changed = true
    }
    return changed
  }

  /** Applies every entry of other. True when anything changed. */
  merge (other: PNCounter): boolean {
    if (!(other instanceof PNCounter)) throw new CounterdError('invalid_argument', 'merge needs a PNCounter')
    let changed = false
    for (let i = 0; i < other.ids.length; i++) {
      if (this.apply(other.ids[i], other.ps[i], other.ns[i])) changed = true
    }
    return changed
  }

  /** This replica's record, to send to the others after local increments. */
  record (): PNRecord {
    return this.entry(this.replica)
  }

  /** The totals known for a replica (zeros when unknown). */
  entry (replica: string): PNRecord {
    const i = this.ids.indexOf(replica)
    return i < 0 ? { replica, p: 0, n: 0 } : { replica, p: this.ps[i], n: this.ns[i] }
  }

  /** Every replica's totals, sorted by replica id. */
  entries (): PNRecord[] {
    return this.ids.map((replica, i) => ({ replica, p: this.ps[i], n: this.ns[i] }))
      .sort((a, b) => (a.replica < b.replica ? -1 : a.replica > b.replica ? 1 : 0))
  }

  /** "CPNC" v1 | str own replica | u16 count | count × (str replica, f64 p, f64 n), sorted by replica. */
  encode (): Buffer {
    const w = new ByteWriter(16 + 32 * this.ids.length).magic('CPNC', 1).str(this.replica).u16(this.ids.length)
    for (const e of this.entries()) w.str(e.replica).f64(e.p).f64(e.n)
    return w.finish()
  }

  static decode (input: Uint8Array): PNCounter {
    const r = new ByteReader(input, 'PNCounter')
    r.magic('CPNC', [1])
    const own = r.str()
    if (!REPLICA_RE.test(own)) r.fail('bad own replica id')
    const c = new PNCounter({ replica: own })
    const count = r.u16()
    if (count > MAX_REPLICAS) r.fail(`${count} replicas`)
    for (let k = 0; k < count; k++) {
      const id = r.str()
      if (!REPLICA_RE.test(id)) r.fail('bad replica id')
      if (c.ids.includes(id)) r.fail('replica listed twice')
      const p = r.num('p', 0, MAX)
      const n = r.num('n', 0, MAX)
      if (!Number.isInteger(p) || !Number.isInteger(n)) r.fail('totals must be integers')
      const i = c.addReplica(id)
      c.ps[i] = p
      c.ns[i] = n
      c.sum += p - n
    }
    r.end()
    return c
  }

  private addReplica (id: string): number {
    if (this.ids.length >= MAX_REPLICAS) throw new CounterdError('invalid_argument', `a counter holds at most ${MAX_REPLICAS} replicas`)
    this.ids.push(id)
    this.ps.push(0)
    this.ns.push(0)
    return this.ids.length - 1
  }
}
