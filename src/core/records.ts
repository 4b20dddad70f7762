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
   * Optional: the partition's per-minute history as of `seq`, encoded (actors/partition-state.ts
   * encodeHistory); kept by snapshot files, absent where ClickHouse keeps history.
   */
  history?: Buffer
  /**
   * Optional: where record `seq` sits in the log (Kafka: its offset in its Kafka partition), from
   * DeltaLog.positionOf. Lets replay start there instead of at the beginning of the log.
   */
  logOffset?: number
  /**
   * Optional, not enumerable: the same counters as keys/values/ps/ns in binary form, without a
   * string per key (what PartitionState.capture makes and snapshot files store). A checkpoint made
   * by packedCheckpoint() decodes keys/values/ps/ns from it on first use.
   */
  readonly packed?: PackedCounters
}

/**
 * A checkpoint's counters in binary form. `keys` holds `count` keys in order, each as
 * u8 length | key bytes (ASCII), the encoding log records and snapshot files use.
 */
export interface PackedCounters {
  count: number
  keys: Uint8Array
  values: Float64Array
  /** This replica's P of each counter; null: P = value + N (no other replica contributed). */
  ps: Float64Array | null
  /** This replica's N of each counter; null: 0 for every counter. */
  ns: Float64Array | null
}

export type CheckpointFields = Omit<Checkpoint, 'keys' | 'values' | 'ps' | 'ns' | 'packed'>

/**
 * A checkpoint whose counters are `packed`: keys, values, ps and ns are plain enumerable fields
 * to every reader (a spread copies them, decoded), built on first use; `packed` is kept as a
 * non-enumerable field for the readers that take the binary form (snapshot files, loads).
 * Assigning keys, values, ps or ns replaces them and drops `packed`.
 */
export function packedCheckpoint (fields: CheckpointFields, packed: PackedCounters): Checkpoint {
  const cp = { ...fields } as Checkpoint
  let decoded: { keys: string[], values: number[], ps: number[], ns: number[] } | null = null
  const unpacked = (): NonNullable<typeof decoded> => (decoded ??= unpackCounters(packed))
  Object.defineProperty(cp, 'packed', { value: packed, enumerable: false, configurable: true, writable: false })
  for (const name of ['keys', 'values', 'ps', 'ns'] as const) {
    Object.defineProperty(cp, name, {
      enumerable: true,
      configurable: true,
      get: () => unpacked()[name],
      set: (v: unknown) => {
        // A changed field no longer matches the binary form: fix every field, drop `packed`.
        const now = unpacked()
        for (const f of ['keys', 'values', 'ps', 'ns'] as const) {
          Object.defineProperty(cp, f, { value: f === name ? v : now[f], enumerable: true, configurable: true, writable: true })
        }
        Object.defineProperty(cp, 'packed', { value: undefined, enumerable: false, configurable: true, writable: false })
      }
    })
  }
  return cp
}

/** Strings and numbers of packed counters (what a checkpoint's keys/values/ps/ns hold). */
export function unpackCounters (p: PackedCounters): { keys: string[], values: number[], ps: number[], ns: number[] } {
  const keys: string[] = new Array(p.count)
  const values: number[] = new Array(p.count)
  const ps: number[] = new Array(p.count)
  const ns: number[] = new Array(p.count)
  const buf = Buffer.from(p.keys.buffer, p.keys.byteOffset, p.keys.byteLength)
  let o = 0
  for (let i = 0; i < p.count; i++) {
    const len = buf[o]
    keys[i] = buf.toString('latin1', o + 1, o + 1 + len)
    o += 1 + len
    const v = p.values[i]
    const n = p.ns === null ? 0 : p.ns[i]
    values[i] = v
    ns[i] = n
    ps[i] = p.ps === null ? v + n : p.ps[i]
  }
  return { keys, values, ps, ns }
}

/** Packs string-keyed counters; ps/ns absent: P = max(value, 0), N = max(−value, 0) (Checkpoint's rule). */
export function packCounters (keys: readonly string[], values: readonly number[], ps?: readonly number[], ns?: readonly number[]): PackedCounters {
  const n = keys.length
  let bytes = 0
  for (let i = 0; i < n; i++) bytes += 1 + keys[i].length
  const buf = Buffer.allocUnsafe(bytes)
  const vals = new Float64Array(n)
  const pArr = new Float64Array(n)
  const nArr = new Float64Array(n)
  let needP = false
  let needN = false
  let o = 0
  for (let i = 0; i < n; i++) {
    const k = keys[i]
    if (k.length > 255) throw new RangeError(`key of ${k.length} characters cannot be packed`)
    buf[o++] = k.length
    o += buf.write(k, o, 'latin1')
    const v = values[i]
    const pv = ps?.[i] ?? Math.max(v, 0)
    const nv = ns?.[i] ?? Math.max(-v, 0)
    vals[i] = v
    pArr[i] = pv
    nArr[i] = nv
    if (nv !== 0) needN = true
    if (pv !== v + nv) needP = true
  }
  return { count: n, keys: buf, values: vals, ps: needP ? pArr : null, ns: needN ? nArr : null }
}
