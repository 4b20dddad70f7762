// Every default in one place. Each key is overridable by the environment variable named in
// config/schema.ts (README lists them).
import os from 'node:os'

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  dataDir: './data',
  partitions: 64,
  workers: os.availableParallelism(), // shard threads; capped at PARTITIONS when not given
  ackMode: 'durable' as 'durable' | 'applied',
  flushIntervalMs: 0, // 0: commit as soon as the log is free (group commit); >0: also wait this long when idle
  maxBatchOps: 65_536, // a partition host flushes early once this many ops are pending
  checkpointIntervalMs: 30_000,
  dedupWindowMs: 10 * 60_000,
  dedupMaxEntries: 100_000, // per partition, per dedup kind
  maxBodyBytes: 64 * 1024,
  maxFrameBytes: 1024 * 1024,
  maxOpsPerFrame: 10_000,
  maxQueryKeys: 1000,
  maxInflightOps: 2_000_000, // across the node; past it new work gets 503 / overloaded
  maxInflightFrames: 1024, // per WebSocket connection
  maxWsBackpressureBytes: 4 * 1024 * 1024,
  shardRingBytes: 1024 * 1024, // each shared-memory ring between two shards (one per direction)
  retryAfterSeconds: 1,
  logLevel: 'info',
  // Cluster storage (docs/cluster-storage.md): both set → Kafka log + Redis checkpoints.
  kafkaBrokers: '', // host:port[,host:port…]
  kafkaTopic: 'counter-deltas',
  redisUrl: '', // redis://host:port, or a comma-separated list of Redis Cluster nodes
  clickhouseUrl: '', // set → per-minute history in ClickHouse (either storage mode)
  historyFlushMs: 5000,
  historyRetentionMinutes: 1440, // per-minute history kept by each partition without ClickHouse (embedded mode); 0: none
  replicaId: 'main', // this deployment's (region's) id in every counter's PN-counter
  sampleSize: 16, // actors kept per counter's reservoir sample
  likesPerMinute: 100 // per user, per node: like/unlike token bucket refill (and burst)
}

export type Defaults = typeof DEFAULTS
