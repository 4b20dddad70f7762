// The contract between partition actors and storage. Embedded mode implements it with a local
// WAL and snapshot files; cluster mode with Kafka and Redis. Actors never know which.
import type { Checkpoint, DeltaRecord } from '../core/records'

/** Where a partition's replay may start: its loaded checkpoint (a Checkpoint fits). */
export interface ReplayStart {
  seq: number
  logOffset?: number
}

export interface DeltaLog {
  /** Appends records (any partitions of this host) durably; resolves once every one is durable. */
  append (records: DeltaRecord[]): Promise<void>
  /**
   * Calls onRecord for each stored record of the given partitions, in log order per partition.
   * `from` (optional): partition → its loaded checkpoint; a log with positions skips what is at or
   * before `logOffset` (records at or below `seq` may still be handed over; the caller skips them).
   */
  replay (partitions: readonly number[], onRecord: (r: DeltaRecord) => void, from?: ReadonlyMap<number, ReplayStart>): Promise<void>
  /**
   * Optional: a log position to store as Checkpoint.logOffset for a checkpoint at `seq` (every
   * record of the partition after `seq` lies after it), or undefined when unknown.
   */
  positionOf? (partition: number, seq: number): number | undefined
  /** Optional: whether appends currently succeed (for /ready and /metrics). */
  status? (): { ok: boolean, error?: string }
  /**
   * Checkpoints now hold every partition in `upTo` up to the seq given: log data at or below it
   * may be dropped (WAL segments deleted; Kafka may record the offsets for a faster replay).
   */
  checkpointed (upTo: ReadonlyMap<number, number>): Promise<void>
  close (): Promise<void>
}

export interface CheckpointStore {
  /** True: save() takes only counters changed since the last save (0 = reset). False: the whole state. */
  readonly incremental: boolean
  load (partition: number): Promise<Checkpoint | null>
  save (checkpoints: Checkpoint[]): Promise<void>
  close (): Promise<void>
  /** Cluster mode: fencing for a new owner (a higher epoch than any stored or claimed). */
  claimEpoch?: (partitions: readonly number[], atLeast?: number) => Promise<number>
  /** Cluster mode (ring handoff): which ring member holds each partition now, or null when released. */
  holders?: (partitions: readonly number[]) => Promise<Array<string | null>>
  /** Records `holder` (null: released) for these partitions; release also ends this store's claim. */
  setHolder?: (partitions: readonly number[], holder: string | null) => Promise<void>
}
