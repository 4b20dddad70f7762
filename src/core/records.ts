// The data the log and checkpoints carry: delta records, dedup entries, feature ops, checkpoints.
// Shared by the storage implementations and the partition actors (storage/types.ts has the contracts).

/** Dedup state travels with the deltas so exactly-once survives a crash. */
export const DEDUP_STREAM = 1 // tag = clientId, value = last applied frame seq
export const DEDUP_IDEMPOTENCY = 2 // tag = key + '\n' + Idempotency-Key, value = the value returned
export type DedupKind = typeof DEDUP_STREAM | typeof DEDUP_IDEMPOTENCY

export interface DedupEntry {
  kind: DedupKind
  tag: string
  value: number
  ts: number // ms since the Unix epoch when it was recorded; entries expire after the dedup window
}

/**
 * One group commit of one partition: the net change of every key touched since the previous
 * record. `seq` grows by one per record of a partition, across restarts and owners; `epoch` grows
 * each time the partition changes owner (a new process counts as a new owner).
 */
export interface DeltaRecord {
  partition: number
  epoch: number
  seq: number
  ts: number
  keys: string[]
  deltas: number[] // parallel to keys
  dedup: DedupEntry[]
  /**
   * Whose counts these are (REPLICA_ID). A node's own ops are logged under its own replica id with
   * deltas only; what it merged from another replica is logged under that replica's id with the
   * replica's totals (ps, ns) after the merge, which is also what replicas send each other.
   */
  replica?: string
  ps?: number[] // parallel to keys: the replica's increment total (P of its PN-counter)
  ns?: number[] // parallel to keys: its decrement total (N)
  features?: FeatureOp[]
}

/** Changes to per-counter feature state, logged in order with the deltas. */
export const FEATURE_ACTOR = 1 // key: counter, arg: actor (unique-count HyperLogLog + sample)
export const FEATURE_LIKE = 2 // key: item "type:id", arg: user id
export const FEATURE_UNLIKE = 3
export type FeatureKind = typeof FEATURE_ACTOR | typeof FEATURE_LIKE | typeof FEATURE_UNLIKE

export interface FeatureOp {
  kind: FeatureKind
  key: string
  arg: string
}

/** A partition's state as of log record `seq` (everything up to and including it). */
export interface Checkpoint {
  partition: number
  epoch: number
  seq: number
  ts: number
  keys: string[]
  values: number[] // parallel to keys; 0 = the counter was reset (or never existed)
  dedup: DedupEntry[]
  ps?: number[] // parallel to keys: this node's own replica totals (P, N) of each counter
  ns?: number[]
  /** Everything else of the partition (likes, HyperLogLogs, samples, other replicas' totals), encoded. */
  features?: Buffer
  /** The partition's HyperLogLogs changed since the last save, as Redis HLL strings (PFCOUNT-readable). */
  hlls?: Array<[string, Buffer]>
  /**
   * Optional: where record `seq` sits in the log (Kafka: its offset in its Kafka partition), from
   * DeltaLog.positionOf. Lets replay start there instead of at the beginning of the log.
   */
  logOffset?: number
}
