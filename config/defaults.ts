// Every default in one place. Each key is overridable by the environment variable named in
// config/schema.ts (README lists them).
import os from 'node:os'

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  respPort: -1, // -1: no Redis-protocol listener; 0 picks a free port
  dataDir: './data',
  partitions: 64,
  workers: os.availableParallelism(), // shard threads; capped at PARTITIONS when not given
  ackMode: 'durable' as 'durable' | 'applied',
  flushIntervalMs: 0, // 0: commit as soon as the log is free (group commit); >0: also wait this long when idle
  maxBatchOps: 65_536, // a partition host flushes early once this many ops are pending
  checkpointIntervalMs: 30_000,
  walSegmentBytes: 256 * 1024 * 1024, // a shard's WAL rolls to a new file past this size
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
  authFile: '', // API keys and their scopes (README "Security"); '' = open
  metricsOpen: false, // with AUTH_FILE: /metrics without a key
  // false: the per-request, per-frame, per-commit and forwarding histograms record nothing (their
  // series stay at 0); the other metrics are read at scrape time either way. For measuring their cost.
  metricsHistograms: true,
  tlsCertFile: '', // PEM certificate (chain): HTTPS and WSS on PORT; with tlsKeyFile
  tlsKeyFile: '', // PEM private key of tlsCertFile
  keyOpsPerSecond: 0, // with AUTH_FILE: ops per second each API key may send (node-wide; a second's worth may come at once); 0 = no limit
  clusterSecret: '', // a ring's shared secret: peer links authenticate with it (HMAC challenge/response); '' = links are not authenticated
  // Cluster storage (docs/cluster-storage.md): both set → Kafka log + Redis checkpoints.
  kafkaBrokers: '', // host:port[,host:port…]
  kafkaTopic: 'counter-deltas',
  redisUrl: '', // redis://host:port, or a comma-separated list of Redis Cluster nodes
  clickhouseUrl: '', // set → per-minute history in ClickHouse (either storage mode)
  historyFlushMs: 5000,
  historyRetentionMinutes: 1440, // per-minute history kept by each partition without ClickHouse (either storage mode); 0: none
  replicaId: 'main', // this deployment's (region's) id in every counter's PN-counter
  sampleSize: 16, // actors kept per counter's reservoir sample
  likesPerMinute: 100, // per user, per node: like/unlike token bucket refill (and burst)
  // Hot counters (README "Hot counters"): a counter incremented faster than this is split.
  hotSplitRate: 1000, // increments/s that split a counter; 0 = never split
  hotSplitWays: 16, // sub-counters of a split counter
  hotMergeRate: 100, // increments/s under which a split counter…
  hotMergeAfterMs: 3_600_000, // …for this long is merged back
  // The ring of nodes (cluster storage only; cluster/README.md): nodes with the same CLUSTER_NAME share partitions.
  clusterName: 'counterd',
  advertiseUrl: '', // '' = http://HOST:PORT (the loader fills it in once the port is known)
  nodeId: '', // '' = the advertised URL: placement hashes it, so a node restarted under the same id gets its partitions back
  clusterSessionMs: 10_000, // how long the group waits for a vanished node before its partitions move
  peerPort: 0, // peer links: shard i listens on PEER_PORT + i; 0 = any free port per shard
  // Event ingestion from Kafka (README "Event ingestion"): a topic set → shard 0 consumes it.
  ingestTopic: '', // '' = off
  ingestGroup: 'counterd-ingest',
  ingestBrokers: '', // '' = KAFKA_BROKERS (the loader fills it in)
  ingestDeadLetterTopic: '', // '' = `${ingestTopic}.dead-letter` (the loader fills it in)
  ingestSessionTimeoutMs: 10_000, // how long the group waits for a vanished member before moving its partitions
  ingestConsumers: 0 // shard threads that run a consumer (shards 0 … n−1), each a member of the group; 0 = every shard (the loader fills it in)
}

export type Defaults = typeof DEFAULTS
