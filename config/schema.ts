// What each setting is, which environment variable sets it, and what values it accepts.
// Validation happens once at start; an error names the variable and what was expected.
import type { Defaults } from './defaults'

type Parser<T> = (raw: string, name: string) => T

export class ConfigError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

function integer (min: number, max: number): Parser<number> {
  return (raw, name) => {
    const s = raw.trim()
    const n = /^-?\d+$/.test(s) ? Number(s) : NaN
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`)
    }
    return n
  }
}

function oneOf<T extends string> (...values: T[]): Parser<T> {
  return (raw, name) => {
    if (!(values as string[]).includes(raw)) {
      throw new ConfigError(`${name} must be one of ${values.join(', ')}, got ${JSON.stringify(raw)}`)
    }
    return raw as T
  }
}

function pattern (re: RegExp, expected: string): Parser<string> {
  return (raw, name) => {
    if (!re.test(raw)) throw new ConfigError(`${name} must be ${expected}, got ${JSON.stringify(raw)}`)
    return raw
  }
}

function powerOfTwo (min: number, max: number): Parser<number> {
  const int = integer(min, max)
  return (raw, name) => {
    const n = int(raw, name)
    if ((n & (n - 1)) !== 0) throw new ConfigError(`${name} must be a power of two from ${min} to ${max}, got ${JSON.stringify(raw)}`)
    return n
  }
}

function nonEmpty (raw: string, name: string): string {
  if (raw.trim() === '') throw new ConfigError(`${name} must not be empty`)
  return raw
}

/** A shared secret: checked like the others, but never echoed in the message. */
function secret (raw: string, name: string): string {
  if (!/^[\x21-\x7e]{16,1024}$/.test(raw)) throw new ConfigError(`${name} must be 16 to 1024 printable ASCII characters without spaces (got ${raw.length} characters; the value is not shown)`)
  return raw
}

const BROKERS_RE = /^[^\s:,]+:\d{1,5}(,[^\s:,]+:\d{1,5})*$/
const TOPIC_RE = /^[A-Za-z0-9._-]{1,249}$/

export const SCHEMA: { [K in keyof Defaults]: { env: string, parse: Parser<Defaults[K]> } } = {
  host: { env: 'HOST', parse: nonEmpty },
  port: { env: 'PORT', parse: integer(0, 65535) },
  respPort: { env: 'RESP_PORT', parse: integer(0, 65535) },
  dataDir: { env: 'DATA_DIR', parse: nonEmpty },
  partitions: { env: 'PARTITIONS', parse: integer(1, 65535) },
  workers: { env: 'WORKERS', parse: integer(1, 256) },
  ackMode: { env: 'ACK_MODE', parse: oneOf('durable', 'applied') },
  flushIntervalMs: { env: 'FLUSH_INTERVAL_MS', parse: integer(0, 10_000) },
  maxBatchOps: { env: 'MAX_BATCH_OPS', parse: integer(1, 10_000_000) },
  checkpointIntervalMs: { env: 'CHECKPOINT_INTERVAL_MS', parse: integer(100, 86_400_000) },
  walSegmentBytes: { env: 'WAL_SEGMENT_BYTES', parse: integer(4096, 16 * 1024 * 1024 * 1024) },
  dedupWindowMs: { env: 'DEDUP_WINDOW_MS', parse: integer(1000, 7 * 86_400_000) },
  dedupMaxEntries: { env: 'DEDUP_MAX_ENTRIES', parse: integer(1, 100_000_000) },
  maxBodyBytes: { env: 'MAX_BODY_BYTES', parse: integer(64, 64 * 1024 * 1024) },
  maxFrameBytes: { env: 'MAX_FRAME_BYTES', parse: integer(64, 64 * 1024 * 1024) },
  maxOpsPerFrame: { env: 'MAX_OPS_PER_FRAME', parse: integer(1, 65535) },
  maxQueryKeys: { env: 'MAX_QUERY_KEYS', parse: integer(1, 100_000) },
  maxInflightOps: { env: 'MAX_INFLIGHT_OPS', parse: integer(1, 1_000_000_000) },
  maxInflightFrames: { env: 'MAX_INFLIGHT_FRAMES', parse: integer(1, 1_000_000) },
  maxWsBackpressureBytes: { env: 'MAX_WS_BACKPRESSURE_BYTES', parse: integer(1024, 1024 * 1024 * 1024) },
  shardRingBytes: { env: 'SHARD_RING_BYTES', parse: powerOfTwo(65536, 256 * 1024 * 1024) },
  retryAfterSeconds: { env: 'RETRY_AFTER_SECONDS', parse: integer(1, 3600) },
  logLevel: { env: 'LOG_LEVEL', parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent') },
  authFile: { env: 'AUTH_FILE', parse: nonEmpty },
  tlsCertFile: { env: 'TLS_CERT_FILE', parse: nonEmpty },
  tlsKeyFile: { env: 'TLS_KEY_FILE', parse: nonEmpty },
  keyOpsPerSecond: { env: 'KEY_OPS_PER_SECOND', parse: integer(0, 1_000_000_000) },
  clusterSecret: { env: 'CLUSTER_SECRET', parse: secret },
  metricsOpen: { env: 'METRICS_OPEN', parse: (raw, name) => oneOf('true', 'false')(raw, name) === 'true' },
  metricsHistograms: { env: 'METRICS_HISTOGRAMS', parse: (raw, name) => oneOf('true', 'false')(raw, name) === 'true' },
  kafkaBrokers: { env: 'KAFKA_BROKERS', parse: pattern(BROKERS_RE, 'a comma-separated list of host:port') },
  kafkaTopic: { env: 'KAFKA_TOPIC', parse: pattern(TOPIC_RE, 'a Kafka topic name ([A-Za-z0-9._-]{1,249})') },
  redisUrl: { env: 'REDIS_URL', parse: pattern(/^rediss?:\/\/\S+$/, 'a redis:// URL or a comma-separated list of them') },
  clickhouseUrl: { env: 'CLICKHOUSE_URL', parse: pattern(/^https?:\/\/\S+$/, 'an http(s):// URL of ClickHouse') },
  historyFlushMs: { env: 'HISTORY_FLUSH_MS', parse: integer(100, 3_600_000) },
  historyRetentionMinutes: { env: 'HISTORY_RETENTION_MINUTES', parse: integer(0, 43_200) },
  replicaId: { env: 'REPLICA_ID', parse: pattern(/^[A-Za-z0-9_.:-]{1,64}$/, 'a replica id matching [A-Za-z0-9_.:-]{1,64}') },
  sampleSize: { env: 'SAMPLE_SIZE', parse: integer(1, 1000) },
  likesPerMinute: { env: 'LIKES_PER_MINUTE', parse: integer(1, 1_000_000) },
  hotSplitRate: { env: 'HOT_SPLIT_RATE', parse: integer(0, 1_000_000_000) },
  hotSplitWays: { env: 'HOT_SPLIT_WAYS', parse: integer(2, 256) },
  hotMergeRate: { env: 'HOT_MERGE_RATE', parse: integer(0, 1_000_000_000) },
  hotMergeAfterMs: { env: 'HOT_MERGE_AFTER_MS', parse: integer(0, 30 * 86_400_000) },
  clusterName: { env: 'CLUSTER_NAME', parse: pattern(/^[A-Za-z0-9._-]{1,100}$/, 'a cluster name matching [A-Za-z0-9._-]{1,100}') },
  advertiseUrl: { env: 'ADVERTISE_URL', parse: pattern(/^https?:\/\/[^\s/]+$/, 'an http(s)://host:port URL without a path') },
  nodeId: { env: 'NODE_ID', parse: pattern(/^[A-Za-z0-9._:/-]{1,200}$/, 'a node id matching [A-Za-z0-9._:/-]{1,200}') },
  clusterSessionMs: { env: 'CLUSTER_SESSION_MS', parse: integer(1000, 300_000) },
  peerPort: { env: 'PEER_PORT', parse: integer(0, 65535) },
  ingestTopic: { env: 'INGEST_TOPIC', parse: pattern(TOPIC_RE, 'a Kafka topic name ([A-Za-z0-9._-]{1,249})') },
  ingestGroup: { env: 'INGEST_GROUP', parse: pattern(/^[A-Za-z0-9._-]{1,249}$/, 'a consumer group id ([A-Za-z0-9._-]{1,249})') },
  ingestBrokers: { env: 'INGEST_BROKERS', parse: pattern(BROKERS_RE, 'a comma-separated list of host:port') },
  ingestDeadLetterTopic: { env: 'INGEST_DEAD_LETTER_TOPIC', parse: pattern(TOPIC_RE, 'a Kafka topic name ([A-Za-z0-9._-]{1,249})') },
  ingestSessionTimeoutMs: { env: 'INGEST_SESSION_TIMEOUT_MS', parse: integer(1000, 300_000) },
  ingestConsumers: { env: 'INGEST_CONSUMERS', parse: integer(0, 256) }
}
