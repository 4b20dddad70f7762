// Messages between the router (main thread) and an actor host (worker thread). A write or read
// task carries one part per partition touched in one event-loop tick; a part's ops are packed in
// one transferable byte buffer so a batch crosses threads without per-op objects.
//
// op encoding inside PartBatch.ops:
//   u8 kind | u8 keyLen | u32 FNV-1a hash of the key (LE) | key bytes (ASCII) | [f64 delta if kind = OP_INCR]
// The hash, computed once by the front for routing, is also the actor's hash-table hash.
export const OP_HEADER_BYTES = 6

export const OP_INCR = 1 // write: f64 delta follows the key
export const OP_RESET = 2 // write
export const OP_GET = 3 // read: the value
export const OP_INCR_ACTOR = 4 // write: f64 delta, then u8 argLen | actor
export const OP_LIKE = 5 // write: key = item "type:id", then u8 argLen | user
export const OP_UNLIKE = 6 // write: as OP_LIKE
export const OP_HAS_LIKED = 7 // read: as OP_LIKE; 1 or 0
export const OP_LIKE_COUNT = 8 // read: key = item
export const OP_UNIQUE = 9 // read: HyperLogLog estimate of distinct actors
export const OP_RATE = 10 // read: increments per second over about the last minute

/** Whether an op kind carries an f64 delta after its key, and a length-prefixed argument after that. */
export const OP_HAS_DELTA = [false, true, false, false, true, false, false, false, false, false, false]
export const OP_HAS_ARG = [false, false, false, false, true, true, true, true, false, false, false]

/** Bytes of the op starting at `o`. */
export function opSize (buf: Uint8Array, o: number): number {
  const kind = buf[o]
  let n = OP_HEADER_BYTES + buf[o + 1]
  if (OP_HAS_DELTA[kind]) n += 8
  if (OP_HAS_ARG[kind]) n += 1 + buf[o + n]
  return n
}

export interface PartBatch {
  p: number // partition
  ops: Uint8Array
  n: number // ops in this part
  // Units are the requests/frames the ops came from, in order; unit u covers ops [ends[u-1], ends[u]).
  ends: number[]
  tags: Array<string | null> // dedup tag per unit: clientId (stream) or key+'\n'+Idempotency-Key (HTTP)
  seqs: number[] // frame seq per unit (stream tags only)
  wantValues: boolean // HTTP needs the value after each op; streams only need ok/refused
}

export interface PartResult {
  values: Float64Array | null // value after each op (or the stored value for an idempotent retry)
  refused: number[] // op indexes refused as out of range (nothing applied for them)
  dups: number[] // unit indexes recognised as resends (nothing applied)
}

export interface WriteTask { t: 'write', parts: PartBatch[] }
export interface ReadTask { t: 'read', parts: PartBatch[] }
export interface ControlTask { t: 'recover' | 'checkpoint' | 'close' | 'stats' }
export interface HistoryTask { t: 'history', key: string, from: number, to: number, step: 'minute' | 'hour' | 'day' }
export interface SampleTask { t: 'sample', p: number, key: string, n: number }
export interface ReplicasTask { t: 'replicas', p: number, key: string }
export interface TopTask { t: 'top', type: string | null, k: number }
export interface ExportTask { t: 'export' }
/** Other replicas' records to merge (each must carry totals); resolves once they are durable. */
export interface MergeTask { t: 'merge', records: Array<import('../src/log/types').DeltaRecord> }
export type HostTask = WriteTask | ReadTask | ControlTask | HistoryTask | SampleTask | ReplicasTask | TopTask | ExportTask | MergeTask

export interface RecoverStats {
  partitions: number
  counters: number
  records: number
  ms: number
}

export interface HostStats {
  counters: number
  pendingOps: number
  durableRecords: number
  logOk: boolean
  logError?: string
  history?: import('../src/sinks/clickhouse-history').HistoryStatus
  likes: number
}

/** Given to each actor host thread at start (workerData). */
export interface HostInit {
  hostIndex: number
  partitions: number[]
  epoch: number
  config: import('../config/loader').Config
}
