// Tasks between the router (main thread) and an actor host thread, and what they answer.
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
export interface MergeTask { t: 'merge', records: Array<import('../src/core/records').DeltaRecord> }
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
  history?: import('../src/storage/clickhouse-history').HistoryStatus
  likes: number
}

/** Given to each actor host thread at start (workerData). */
export interface HostInit {
  hostIndex: number
  partitions: number[]
  epoch: number
  config: import('../config/loader').Config
}
