// Messages between the supervisor (main thread) and a shard thread: the lifecycle only (start,
// readiness, drain, close). Requests never pass here; they reach a shard through its own uWS
// app or through the shared-memory rings between shards.
import type { ApiKeyTable } from '../core/api-keys'
import type { OwnershipChange, RecoverStats } from '../../actors/shard'
import type { RingView } from '../../cluster/ring-view'
import type { Config } from '../../config/loader'
import type { WireError } from '../core/errors'

/** workerData of a shard thread. */
export interface ShardInit {
  index: number
  shards: number
  config: Config
  epoch: number
  /** rings.out[t]: memory of the ring this shard writes to shard t; rings.in[t]: from shard t (null for itself). */
  rings: { out: Array<SharedArrayBuffer | null>, in: Array<SharedArrayBuffer | null> }
  bells: SharedArrayBuffer[]
  board: SharedArrayBuffer
  inflight: SharedArrayBuffer
  /** API keys from AUTH_FILE; null: the node is open */
  auth: ApiKeyTable | null
  /** KEY_OPS_PER_SECOND > 0: the node-wide per-key rate state (src/core/key-rate.ts); null: no limit */
  keyRates: SharedArrayBuffer | null
}

export type ToShard =
  | { t: 'listen', port: number, respPort: number } // listen on HOST:port (with the others: SO_REUSEPORT); respPort ≥ 0: also the Redis protocol (shard 0 only)
  | { t: 'recover' } // open storage, load checkpoints, replay the log
  | { t: 'serve' } // the node is ready: checkpoint what was recovered, then on the interval
  | { t: 'drain' } // stop listening; answer every accepted request
  | { t: 'close' } // close streams, final commit and checkpoint, close storage, close every socket
  | { t: 'abort' } // the node is exiting on a fatal error: close every socket now
  | { t: 'auth', table: ApiKeyTable | null } // AUTH_FILE was read again (SIGHUP): use these keys from now on
  | { t: 'ring', view: RingView | null, self: string, waitMs: number } // ring mode: route by this view and own its partitions of this shard (null: own nothing)

export type FromShard =
  | { t: 'listening', port: number, respPort: number } // -1: the port is taken (respPort −1: not asked, or taken)
  | { t: 'recovered', stats: RecoverStats, peerPort: number } // peerPort: ring mode's peer-link listener, −1 none
  | { t: 'owned', generation: number, change: OwnershipChange | null, error?: WireError } // a 'ring' message applied
  | { t: 'checkpointed' } // the checkpoint after recovery is saved
  | { t: 'drained' }
  | { t: 'closed' }
  | { t: 'aborted' }
  | { t: 'failed', stage: 'recover' | 'close' | 'commit', error: WireError, exitCode?: number }
