// Hot counters, per shard thread: (1) polls every shard of the ring for the split counters they
// home, so this thread's router spreads their increments (routing/hot-routes.ts) and its reads
// sum their parts; (2) for the counters homed on this thread's shard, splits one that rises past
// HOT_SPLIT_RATE and merges back one that stayed under HOT_MERGE_RATE for HOT_MERGE_AFTER_MS.
//
// A merge: the split is marked merging (increments go home again); once every front has stopped
// sending to the sub-counters (the grace: polls, plus what may still wait for a moving partition),
// each sub-counter is drained into its drained marker and the home counter absorbs it, one
// partition per step, each step durable before the next (src/core/hot-keys.ts: the value is the
// same after every step, so a crash anywhere loses nothing and the steps are simply run again).
// When a round moves nothing, the split ends.
import type { Logger } from 'pino'
import type { Shard } from '../../actors/shard'
import type { CounterdError } from '../core/errors'
import { hotNames, type HotNames } from '../core/hot-keys'
import { HotRoutes, PartsRead, type HotSplitInfo } from '../routing/hot-routes'
import type { FrontContext } from './context'

/** How often a thread asks every shard for the split counters. */
export const HOT_POLL_MS = 500
/** How often the home side measures rates and takes merge steps. */
const TICK_MS = 1000
/** Candidates per partition checked for a split each tick (the fastest rising). */
const CANDIDATES = 4

export interface HotOptions {
  splitRate: number
  ways: number
  mergeRate: number
  mergeAfterMs: number
  /** How long a merge waits after marking the split merging before draining sub-counters. */
  graceMs: number
}

/** A read of a split counter's parts as a promise (the home side's rate measurement). */
class TotalRead extends PartsRead {
  constructor (names: HotNames, private readonly resolve: (v: number) => void, private readonly reject: (e: CounterdError) => void) {
    super(names, { key: names.key, hash: names.hash })
  }

  protected done (err: CounterdError | null): void {
    if (err !== null) this.reject(err)
    else this.resolve(this.sum)
  }
}

export class HotCounters {
  readonly routes: HotRoutes
  private pollTimer: NodeJS.Timeout | null = null
  private tickTimer: NodeJS.Timeout | null = null
  private polling = false
  private ticking = false
  private candidates = new Map<string, { value: number, at: number }>()
  private readonly totals = new Map<string, { total: number, at: number }>()
  private readonly lowSince = new Map<string, number>()
  private readonly mergingSince = new Map<string, number>()
  private readonly logger: Logger

  constructor (private readonly ctx: FrontContext, private readonly shard: Shard, private readonly o: HotOptions) {
    const r = ctx.router
    // A split is routed to once every thread has had two polls to learn it (reads must sum the
    // sub-counters before any increment lands there); not while polls fail.
    this.routes = new HotRoutes(r.partitions, r.index, r.shards, 2 * HOT_POLL_MS, 4 * HOT_POLL_MS)
    this.logger = ctx.logger
  }

  start (): void {
    this.ctx.router.hot = this.routes
    this.pollTimer = setInterval(() => { void this.poll() }, HOT_POLL_MS)
    this.tickTimer = setInterval(() => { void this.tick() }, TICK_MS)
    this.pollTimer.unref()
    this.tickTimer.unref()
  }

  stop (): void {
    if (this.pollTimer !== null) clearInterval(this.pollTimer)
    if (this.tickTimer !== null) clearInterval(this.tickTimer)
    this.pollTimer = this.tickTimer = null
    this.routes.freeze()
  }

  /** Asks every shard of the ring for the split counters it homes. */
  async poll (): Promise<void> {
    this.routes.expire(Date.now())
    if (this.polling) return
    this.polling = true
    try {
      const r = this.ctx.router
      const asks: Array<Promise<unknown>> = []
      for (let t = 0; t < r.shards; t++) asks.push(r.control(t, 'hot-splits', null))
      for (const t of this.ctx.ring?.otherNodes() ?? []) asks.push(r.control(t, 'node', { name: 'hot-splits', args: null }).then((perShard) => (perShard as unknown[][]).flat()))
      const answers = await Promise.allSettled(asks)
      const list: HotSplitInfo[] = []
      let complete = true
      for (const a of answers) {
        if (a.status === 'fulfilled') list.push(...(a.value as HotSplitInfo[]))
        else complete = false
      }
      this.routes.update(list, complete, Date.now(), r.routes)
    } finally {
      this.polling = false
    }
  }

  private async tick (): Promise<void> {
    if (this.ticking) return
    this.ticking = true
    try {
      await this.findHot()
      for (const split of this.shard.hotSplits()) await this.step(split.key, split.ways, split.merging)
    } catch (err) {
      // A partition moving away, a log outage: the next tick tries again.
      this.logger.debug({ err }, 'a hot-counter step failed; retrying at the next tick')
    } finally {
      this.ticking = false
    }
  }

  /** Splits the counters of this shard whose increments since the last tick pass the split rate. */
  private async findHot (): Promise<void> {
    if (this.o.splitRate <= 0) return
    const now = Date.now()
    const next = new Map<string, { value: number, at: number }>()
    for (const c of this.shard.hotCandidates(CANDIDATES)) {
      next.set(c.key, { value: c.value, at: now })
      const prev = this.candidates.get(c.key)
      if (prev === undefined || now <= prev.at) continue
      const rate = (c.value - prev.value) * 1000 / (now - prev.at)
      if (rate < this.o.splitRate) continue
      await this.shard.hotSet(c.key, this.o.ways, false)
      this.logger.info({ key: c.key, rate: Math.round(rate), ways: this.o.ways }, 'hot counter split')
    }
    this.candidates = next
  }

  private async readTotal (names: HotNames): Promise<number> {
    return await new Promise<number>((resolve, reject) => {
      const read = new TotalRead(names, resolve, reject)
      if (!read.send(this.ctx.router)) reject(new Error('overloaded'))
    })
  }

  /** One tick of a split counter homed here: watch its rate; merge it back once it cooled down. */
  private async step (key: string, ways: number, merging: boolean): Promise<void> {
    const now = Date.now()
    const names = hotNames(key, ways, this.ctx.router.partitions)
    if (!merging) {
      const total = await this.readTotal(names)
      const prev = this.totals.get(key)
      this.totals.set(key, { total, at: now })
      if (prev === undefined || now <= prev.at) return
      const rate = (total - prev.total) * 1000 / (now - prev.at)
      if (rate >= this.o.mergeRate) { this.lowSince.delete(key); return }
      const since = this.lowSince.get(key) ?? now
      this.lowSince.set(key, since)
      if (now - since < this.o.mergeAfterMs) return
      await this.shard.hotSet(key, ways, true)
      this.mergingSince.set(key, now)
      this.logger.info({ key, ways }, 'hot counter cooled down; merging it back')
      return
    }
    const since = this.mergingSince.get(key) ?? now
    this.mergingSince.set(key, since)
    if (now - since < this.o.graceMs) return
    let moved = false
    const r = this.ctx.router
    for (let j = 0; j < ways; j++) {
      const d = await r.control(r.shardOf(names.subPartitions[j]), 'hot-drain', { key, ways, j }) as { drained: number, moved: number }
      if (d.moved !== 0) moved = true
      await this.shard.hotAbsorb(key, ways, j, d.drained)
    }
    if (moved) return // what arrived during the grace was moved: one more round confirms nothing is left
    await this.shard.hotSet(key, 0, false)
    this.totals.delete(key)
    this.lowSince.delete(key)
    this.mergingSince.delete(key)
    this.logger.info({ key, ways }, 'hot counter merged back')
  }
}
