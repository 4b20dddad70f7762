// Messages between the router (main thread) and an actor host (worker thread). A write or read
// task carries one part per partition touched in one event-loop tick; a part's ops are packed in
// one transferable byte buffer so a batch crosses threads without per-op objects.
//
// op encoding inside PartBatch.ops:
//   u8 kind | u8 keyLen | u32 FNV-1a hash of the key (LE) | key bytes (ASCII) | [f64 delta if kind = OP_INCR]
// The hash, computed once by the front for routing, is also the actor's hash-table hash.
export const OP_HEADER_BYTES = 6

export const OP_INCR = 1
export const OP_RESET = 2
export const OP_GET = 3

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
export type HostTask = WriteTask | ReadTask | ControlTask | HistoryTask

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
}

/** Given to each actor host thread at start (workerData). */
export interface HostInit {
  hostIndex: number
  partitions: number[]
  epoch: number
  config: import('../config/loader').Config
}
