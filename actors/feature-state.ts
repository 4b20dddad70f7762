// Per-partition state beyond plain counts: likes, unique-count HyperLogLogs, actor samples, and
// what other replicas (regions) contributed to each counter. Lives with the partition's counters,
// changes through the same log (FeatureOp entries and foreign-replica records) and is saved in the
// same checkpoints (encode/decode), so it recovers exactly like the counts do.
import { CounterdError } from '../src/core/errors'
import { fnv1a32 } from '../src/core/keys'
import { FEATURE_ACTOR, FEATURE_LIKE, FEATURE_UNLIKE, type FeatureOp } from '../src/core/records'
import { ByteReader, ByteWriter } from './features/codec'
import { HyperLogLog } from './features/hll'
import { LikeSet } from './features/like-set'
import { PNCounter, type PNRecord } from './features/pn-counter'
import { Reservoir } from './features/reservoir'

export class FeatureState {
  likes = new LikeSet()
  readonly hlls = new Map<string, HyperLogLog>()
  readonly samples = new Map<string, Reservoir>()
  readonly remote = new Map<string, PNCounter>() // counter key → other replicas' totals
  private readonly changedHlls = new Set<string>()

  constructor (readonly replica: string, readonly sampleSize: number) {}

  /** An increment named its actor: the counter's unique count and sample see it. True when the HLL changed. */
  addActor (key: string, actor: string): boolean {
    let hll = this.hlls.get(key)
    if (hll === undefined) this.hlls.set(key, hll = new HyperLogLog())
    const changed = hll.add(actor)
    if (changed) this.changedHlls.add(key)
    let sample = this.samples.get(key)
    // Seeded by the key, so replaying the same actors after a restart makes the same choices.
    if (sample === undefined) this.samples.set(key, sample = new Reservoir({ size: this.sampleSize, seed: fnv1a32(key) }))
    sample.add(actor)
    return changed
  }

  unique (key: string): number {
    return this.hlls.get(key)?.count() ?? 0
  }

  sample (key: string, n: number): string[] {
    const all = this.samples.get(key)?.sample() ?? []
    return all.slice(0, n)
  }

  /** Applies a logged feature op (replay). */
  apply (op: FeatureOp): void {
    if (op.kind === FEATURE_ACTOR) this.addActor(op.key, op.arg)
    else if (op.kind === FEATURE_LIKE) this.likes.like(op.key, op.arg)
    else if (op.kind === FEATURE_UNLIKE) this.likes.unlike(op.key, op.arg)
  }

  /** Another replica's totals for a counter; returns by how much the counter's value changed. */
  applyRemote (key: string, replica: string, p: number, n: number): number {
    let pn = this.remote.get(key)
    if (pn === undefined) {
      if (p === 0 && n === 0) return 0
      this.remote.set(key, pn = new PNCounter({ replica: this.replica }))
    }
    const before = pn.value
    pn.apply(replica, p, n)
    return pn.value - before
  }

  remoteOf (key: string): PNRecord[] {
    return this.remote.get(key)?.entries() ?? []
  }

  /** HyperLogLogs changed since the last call, as Redis HLL strings. */
  takeChangedHlls (): Array<[string, Buffer]> {
    const out: Array<[string, Buffer]> = []
    for (const key of this.changedHlls) out.push([key, (this.hlls.get(key) as HyperLogLog).encode()])
    this.changedHlls.clear()
    return out
  }

  encode (): Buffer {
    const w = new ByteWriter(1024).magic('CFEA', 1)
    w.blob(this.likes.encode())
    w.u32(this.hlls.size)
    for (const [key, hll] of this.hlls) w.str(key).blob(hll.encode())
    w.u32(this.samples.size)
    for (const [key, s] of this.samples) w.str(key).blob(s.encode())
    w.u32(this.remote.size)
    for (const [key, pn] of this.remote) w.str(key).blob(pn.encode())
    return w.finish()
  }

  /** Replaces this state with a decoded one (a checkpoint load). */
  load (buf: Uint8Array): void {
    const r = new ByteReader(buf, 'partition feature state')
    r.magic('CFEA', [1])
    this.likes = LikeSet.decode(r.blob())
    this.hlls.clear()
    this.samples.clear()
    this.remote.clear()
    for (let i = r.u32(); i > 0; i--) this.hlls.set(r.str(), HyperLogLog.decode(r.blob()))
    for (let i = r.u32(); i > 0; i--) this.samples.set(r.str(), Reservoir.decode(r.blob()))
    for (let i = r.u32(); i > 0; i--) {
      const key = r.str()
      const pn = PNCounter.decode(r.blob())
      if (pn.replica !== this.replica) throw new CounterdError('corrupt_state', `checkpoint was written by replica ${pn.replica}, this node is ${this.replica}`)
      this.remote.set(key, pn)
    }
    r.end()
  }
}
