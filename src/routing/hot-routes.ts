// What one shard thread knows of the ring's split (hot) counters: which counters are split, and
// for each the sub-counters to send an increment to — one of this shard's own partitions if it
// has one, else one of this node's, else any. The table is refreshed by polling every shard
// (src/front/hot-counters.ts); an increment goes to a sub-counter only while the split is
// known to be current, and never while it merges: the home counter always takes increments, so
// routing there is never wrong, only slower.
import { CounterdError } from '../core/errors'
import { hotNames, type HotNames } from '../core/hot-keys'
import { fnv1a32 } from '../core/keys'
import { OP_GET, OP_GET_PART } from '../core/op-codec'
import type { Router, UnitOwner } from './router'

/** A split counter as its home shard describes it. */
export interface HotSplitInfo {
  key: string
  ways: number
  merging: boolean
}

export interface HotEntry {
  names: HotNames
  merging: boolean
  firstSeen: number // ms: when this thread first heard of the split
  refreshed: number // ms: when a poll last confirmed it
  routable: boolean
  near: number[] // sub indices to spread this thread's increments over
  next: number // round-robin position in `near`
}

export class HotRoutes {
  private readonly byKey = new Map<string, HotEntry>()
  // The hot path finds a split by the op's hash (no key string), then checks the key's bytes.
  private readonly byHash = new Map<number, HotEntry>()
  /** Per partition: split counters homed there (any state): the hot path's one check. */
  readonly homes: Uint8Array

  constructor (private readonly partitions: number, private readonly self: number, private readonly localShards: number,
    private readonly routableAfterMs: number, private staleAfterMs: number) {
    this.homes = new Uint8Array(partitions)
  }

  get size (): number { return this.byKey.size }

  /** A split counter's entry (for reads: merging ones too), or undefined. */
  get (key: string): HotEntry | undefined {
    return this.byKey.get(key)
  }

  entries (): IterableIterator<HotEntry> {
    return this.byKey.values()
  }

  /**
   * A poll's answer. `complete`: every shard answered, so a counter missing from `list` is no
   * longer split; otherwise entries not heard of are kept for reads but not routed to.
   */
  update (list: readonly HotSplitInfo[], complete: boolean, now: number, route: Int32Array): void {
    const heard = new Set<string>()
    for (const s of list) {
      heard.add(s.key)
      let e = this.byKey.get(s.key)
      if (e === undefined || e.names.ways !== s.ways) {
        e = { names: hotNames(s.key, s.ways, this.partitions), merging: s.merging, firstSeen: now, refreshed: now, routable: false, near: [], next: 0 }
        this.byKey.set(s.key, e)
        this.nearOf(e, route)
      }
      e.merging = s.merging
      e.refreshed = now
    }
    for (const [key, e] of this.byKey) {
      if (!heard.has(key) && complete) this.byKey.delete(key)
      else e.routable = !e.merging && heard.has(key) && now - e.firstSeen >= this.routableAfterMs && now - e.refreshed < this.staleAfterMs
    }
    this.homes.fill(0)
    this.byHash.clear()
    for (const e of this.byKey.values()) {
      this.homes[e.names.partition] = 1
      this.byHash.set(e.names.hash, e) // two splits of one hash: one spreads, the other counts at home
    }
  }

  /** The split counter of hash `hash` if its increments may go to sub-counters now, else null. */
  routable (hash: number): HotEntry | null {
    const e = this.byHash.get(hash)
    return e === undefined || !e.routable ? null : e
  }

  /** The sub-counter index the next increment of `e` goes to (round-robin over the near ones). */
  next (e: HotEntry): number {
    const j = e.near[e.next]
    e.next = e.next + 1 === e.near.length ? 0 : e.next + 1
    return j
  }

  /** Stops routing to splits no poll confirmed lately (a poll that hangs must not keep them routable). */
  expire (now: number): void {
    for (const e of this.byKey.values()) if (now - e.refreshed >= this.staleAfterMs) e.routable = false
  }

  /** Routes nothing to sub-counters from now on; reads still know the splits (the thread is stopping). */
  freeze (): void {
    this.staleAfterMs = -1
    for (const e of this.byKey.values()) e.routable = false
  }

  /** Routes changed (ring mode): which sub-counters are near changes too. */
  reroute (route: Int32Array): void {
    for (const e of this.byKey.values()) this.nearOf(e, route)
  }


  private nearOf (e: HotEntry, route: Int32Array): void {
    const parts = e.names.subPartitions
    const mine: number[] = []
    const node: number[] = []
    for (let j = 0; j < parts.length; j++) {
      const t = route[parts[j]]
      if (t === this.self) mine.push(j)
      else if (t < this.localShards) node.push(j)
    }
    e.near = mine.length > 0 ? mine : node.length > 0 ? node : parts.map((_, j) => j)
    e.next = 0
  }
}

/** Whether bytes src[start…start+len) spell `key` (ASCII). */
export function bytesEqual (src: Uint8Array, start: number, len: number, key: string): boolean {
  if (len !== key.length) return false
  for (let i = 0; i < len; i++) if (src[start + i] !== key.charCodeAt(i)) return false
  return true
}

/** Whether a stream frame's key (namespace prefix, type, ':', id) spells `key`. */
export function frameKeyEquals (prefix: Uint8Array | null, src: Uint8Array, typeStart: number, typeLen: number, idStart: number, idLen: number, key: string): boolean {
  const pl = prefix === null ? 0 : prefix.length
  if (pl + typeLen + 1 + idLen !== key.length) return false
  for (let i = 0; i < pl; i++) if ((prefix as Uint8Array)[i] !== key.charCodeAt(i)) return false
  if (!bytesEqual(src, typeStart, typeLen, key.slice(pl, pl + typeLen))) return false
  return key.charCodeAt(pl + typeLen) === 0x3a && bytesEqual(src, idStart, idLen, key.slice(pl + typeLen + 1))
}

/**
 * A read of a counter that may be split, summed as hot-keys.ts says, right whatever this thread's
 * table says: the home answers OP_GET with the ways + 0.5 when the counter is split, and then the
 * parts are read (again, when the table had them wrong). Parts are numbered 0 home's answer,
 * 1 home's stored value, 2…W+1 subs, then drained, then absorbed; a shard answers the parts it
 * was given in the order they were added.
 */
export abstract class PartsRead implements UnitOwner {
  parts = 0
  values: Float64Array
  protected error: CounterdError | null = null
  private order: number[][] = []
  private router: Router | null = null

  constructor (public names: HotNames | null, readonly home: { key: string, hash: number }) {
    this.values = new Float64Array(2)
  }

  /** Whether the home said the counter is split (then `names` are its parts). */
  get split (): boolean { return !Number.isInteger(this.values[0]) }

  /** The counter's value: home + Σ (sub + drained − absorbed) when split, else the home's. */
  get sum (): number {
    const v = this.values
    if (!this.split || this.names === null) return v[0]
    const w = this.names.ways
    let total = v[1]
    for (let j = 2; j < 2 + w; j++) total += v[j] + v[w + j] - v[2 * w + j]
    return total
  }

  /**
   * Sends the unit, and while the router refuses it (its rings or the in-flight bound are full)
   * tries again shortly instead of failing: these reads complete a command the node already took
   * (an increment they answer is applied), so they wait as the commands behind them do. What is in
   * flight completes and frees room, so the wait ends.
   */
  start (router: Router): void {
    if (this.send(router)) { this.retryMs = 0; return }
    this.retryMs = Math.min(Math.max(1, this.retryMs * 2), 50)
    setTimeout(() => this.start(router), this.retryMs)
  }

  private retryMs = 0

  /** Sends the unit; false when the router refused it (overloaded). */
  send (router: Router): boolean {
    this.router = router
    this.order = []
    this.error = null
    const n = this.names
    this.values = new Float64Array(n === null ? 2 : 2 + 3 * n.ways)
    router.beginUnit(this, null, -1, true, true)
    this.add(router, 0, OP_GET, this.home.key, this.home.hash)
    this.add(router, 1, OP_GET_PART, this.home.key, this.home.hash)
    if (n !== null) {
      for (let j = 0; j < n.ways; j++) this.add(router, 2 + j, OP_GET, n.subs[j], n.subHashes[j])
      for (let j = 0; j < n.ways; j++) this.add(router, 2 + n.ways + j, OP_GET, n.drained[j], fnv1a32(n.drained[j]))
      for (let j = 0; j < n.ways; j++) this.add(router, 2 + 2 * n.ways + j, OP_GET, n.absorbed[j], fnv1a32(n.absorbed[j]))
    }
    return router.endUnit()
  }

  private add (router: Router, part: number, kind: number, key: string, hash: number): void {
    (this.order[router.shardOf(hash % router.partitions)] ??= []).push(part)
    router.op(kind, hash, key)
  }

  onApplied (shard: number, values: Float64Array | null, n: number): void {
    if (values === null) return
    const order = this.order[shard]
    for (let j = 0; j < n; j++) this.values[order[j]] = values[j]
  }

  onPartDone (err: CounterdError | null): void {
    if (err !== null) this.error ??= err
    if (--this.parts > 0) return
    if (this.error === null && this.split) {
      const ways = Math.floor(this.values[0])
      if (this.names === null || this.names.ways !== ways) {
        const router = this.router as Router
        this.names = hotNames(this.home.key, ways, router.partitions)
        this.start(router)
        return
      }
    }
    this.done(this.error)
  }

  protected abstract done (err: CounterdError | null): void
}
