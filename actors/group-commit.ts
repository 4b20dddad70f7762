// Group commit of one shard: everything applied since the last commit becomes one log append (one
// record per touched partition, one write + one sync however many ops), and whoever waits for
// durability is released when that append is confirmed. While an append is in flight, new ops
// gather and go out together the moment it completes.
//
// A failed append is retried with the very same records, in order, until the log takes them;
// acks stay held meanwhile, so the fronts shed new work once too much is in flight.
import { performance } from 'node:perf_hooks'
import type { Logger } from 'pino'
import { CounterdError } from '../src/core/errors'
import type { DeltaRecord } from '../src/core/records'
import type { DeltaLog } from '../src/storage/types'

/** Something that waits until everything applied before it is durable. */
export interface DurableWaiter {
  onDurable: () => void
}

/** Told of every append: how long it took and what it carried, or that it failed (metrics). */
export interface CommitObserver {
  committed: (seconds: number, ops: number, records: number) => void
  failed: () => void
}

export interface GroupCommitOptions {
  log: DeltaLog
  /** Moves everything pending in the shard's partitions into records (appended to `out`). */
  seal: (now: number, out: DeltaRecord[]) => void
  /** Records just made durable (the history sink sees them here). */
  onDurable?: (records: readonly DeltaRecord[]) => void
  maxBatchOps: number
  flushIntervalMs: number
  logger: Logger
  observer?: CommitObserver
  /**
   * The log refused an append because a newer owner claimed one of its partitions (`fenced`):
   * nothing of it (nor after it) is acknowledged; the host must stop (fail-stop).
   */
  onFenced?: (err: CounterdError) => void
}

class Batch {
  ops = 0
  started = 0 // when its append began (performance.now())
  records: DeltaRecord[] = []
  waiters: DurableWaiter[] = []

  get empty (): boolean { return this.records.length === 0 && this.waiters.length === 0 }

  reset (): void {
    this.ops = 0
    this.records = []
    this.waiters = []
  }

  /** Takes `later`'s content after this batch's (a failed append retried with what came since). */
  absorb (later: Batch): void {
    this.ops += later.ops
    for (const r of later.records) this.records.push(r)
    for (const w of later.waiters) this.waiters.push(w)
    later.reset()
  }
}

export class GroupCommit {
  /** Ops applied but not yet durable (their acks may be out already with ack=applied). */
  unlogged = 0
  /** Records confirmed by the log since start, and the appends (commits) that carried them. */
  durableRecords = 0
  commits = 0
  /** Why the last append failed, while appends keep failing. */
  logError: string | undefined
  /** Windows handed to the log so far: a waiter registered now joins window `window`. */
  window = 0

  private next = new Batch() // the open window: applied ops gather here
  private inFlight: Batch | null = null
  private windowOps = 0 // ops applied since the last seal
  private timer: NodeJS.Timeout | null = null
  private immediate: NodeJS.Immediate | null = null
  private retryDelayMs = 0
  private readonly flushBound = (): void => this.flush()

  constructor (private readonly o: GroupCommitOptions) {}

  get pendingOps (): number { return this.windowOps }

  /** Where a partition seals a record early (a net delta about to leave the exact range). */
  get sealedInto (): DeltaRecord[] { return this.next.records }

  /** `ops` were just applied: schedules a commit (at once when the batch is full). */
  applied (ops: number): void {
    this.windowOps += ops
    this.unlogged += ops
    if (this.windowOps >= this.o.maxBatchOps) { this.flush(); return }
    if (this.inFlight !== null || this.timer !== null || this.immediate !== null) return
    // With the default 0, the commit starts at the end of this event-loop turn, so every op
    // already queued in this turn joins it.
    if (this.o.flushIntervalMs > 0) this.timer = setTimeout(this.flushBound, this.o.flushIntervalMs)
    else this.immediate = setImmediate(this.flushBound)
  }

  /** Releases `w` once everything applied so far is durable. */
  waitDurable (w: DurableWaiter): void {
    this.next.waiters.push(w)
    if (this.inFlight === null && this.timer === null && this.immediate === null) this.immediate = setImmediate(this.flushBound)
  }

  /** Resolves once everything applied so far is durable. */
  async barrier (): Promise<void> {
    await new Promise<void>((resolve) => {
      this.waitDurable({ onDurable: resolve })
      this.flush()
    })
  }

  /** Seals the open window now (checkpoints seal first so a partition's state matches its seq). */
  seal (): void {
    this.o.seal(Date.now(), this.next.records)
    this.next.ops += this.windowOps
    this.windowOps = 0
  }

  /** Seals and starts the append unless one is in flight (then it follows that one). */
  flush (): void {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null }
    if (this.immediate !== null) { clearImmediate(this.immediate); this.immediate = null }
    this.seal()
    this.pump()
  }

  private pump (): void {
    if (this.inFlight !== null || this.next.empty) return
    const batch = this.next
    this.inFlight = batch
    this.next = new Batch()
    this.window++
    batch.started = performance.now()
    this.o.log.append(batch.records).then(() => this.done(batch), (err: Error) => this.failed(batch, err))
  }

  private done (batch: Batch): void {
    this.inFlight = null
    this.retryDelayMs = 0
    if (this.logError !== undefined) this.o.logger.info('log writes succeed again')
    this.logError = undefined
    this.durableRecords += batch.records.length
    this.commits++
    this.unlogged -= batch.ops
    this.o.observer?.committed((performance.now() - batch.started) / 1000, batch.ops, batch.records.length)
    this.o.onDurable?.(batch.records)
    for (const w of batch.waiters) w.onDurable()
    // Group commit: whatever arrived during this append goes out next, at the end of this
    // event-loop turn, so that the requests arriving in the same turn join it (measured: larger
    // commits and more requests per second than starting it right here).
    if (this.windowOps > 0) {
      if (this.immediate === null && this.timer === null) this.immediate = setImmediate(this.flushBound)
    } else {
      this.pump()
    }
  }

  private failed (batch: Batch, err: Error): void {
    if (err instanceof CounterdError && err.code === 'fenced') {
      // Stays in flight: no waiter of it or of any later batch is ever released.
      this.logError = err.message
      this.o.logger.fatal({ err }, 'log append fenced: a newer owner claimed a partition of this shard')
      this.o.onFenced?.(err)
      return
    }
    this.retryDelayMs = Math.min(Math.max(this.retryDelayMs * 2, 10), 1000)
    this.logError = err.message
    this.o.observer?.failed()
    this.o.logger.error({ err, retryInMs: this.retryDelayMs }, 'log append failed; retrying')
    setTimeout(() => {
      this.inFlight = null
      batch.absorb(this.next)
      this.next = batch
      this.pump()
    }, this.retryDelayMs)
  }
}
