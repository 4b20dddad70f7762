// Turns the environment (and optional overrides, for tests and embedding) into the frozen Config.
// The given options (partial, strings from the environment) and the filled config are two types.
import path from 'node:path'
import { DEFAULTS, type Defaults } from './defaults'
import { ConfigError, SCHEMA } from './schema'

export type Config = Readonly<Defaults>
export type ConfigOverrides = Partial<Defaults>
export { ConfigError }

export function loadConfig (env: NodeJS.ProcessEnv = process.env, overrides: ConfigOverrides = {}): Config {
  const filled: Record<string, unknown> = { ...DEFAULTS }
  for (const key of Object.keys(SCHEMA) as Array<keyof Defaults>) {
    const { env: name, parse } = SCHEMA[key]
    const raw = env[name]
    if (raw !== undefined && raw !== '') filled[key] = parse(raw, name)
    if (overrides[key] !== undefined) filled[key] = parse(String(overrides[key]), `options.${key}`)
  }
  filled.dataDir = path.resolve(filled.dataDir as string)
  // One shard per core by default, but never more shards than partitions to own.
  if ((env[SCHEMA.workers.env] ?? '') === '' && overrides.workers === undefined) filled.workers = Math.min(DEFAULTS.workers, filled.partitions as number)
  const config = filled as Defaults
  if (config.workers > config.partitions) {
    throw new ConfigError(`WORKERS (${config.workers}) must not exceed PARTITIONS (${config.partitions}): every worker holds at least one partition`)
  }
  if ((config.tlsCertFile === '') !== (config.tlsKeyFile === '')) {
    throw new ConfigError('TLS_CERT_FILE and TLS_KEY_FILE go together: set both (HTTPS and WSS) or neither')
  }
  if (config.respPort === config.port && config.port !== 0) {
    throw new ConfigError(`RESP_PORT must differ from PORT (both are ${config.port}): the Redis protocol has its own listener`)
  }
  if (config.hotSplitRate > 0 && config.hotMergeRate >= config.hotSplitRate) {
    throw new ConfigError(`HOT_MERGE_RATE (${config.hotMergeRate}) must be below HOT_SPLIT_RATE (${config.hotSplitRate}): a counter between them would split and merge back in turn`)
  }
  if ((config.kafkaBrokers === '') !== (config.redisUrl === '')) {
    throw new ConfigError('KAFKA_BROKERS and REDIS_URL go together: cluster storage needs both (the log in Kafka, checkpoints in Redis); set both or neither')
  }
  if (config.keyOpsPerSecond > 0 && config.authFile === '') {
    throw new ConfigError('KEY_OPS_PER_SECOND limits each API key: it needs AUTH_FILE (an open node has no keys to limit)')
  }
  resolveIngest(config)
  return Object.freeze(config)
}

/**
 * Event ingestion: brokers default to KAFKA_BROKERS, the dead-letter topic to `<topic>.dead-letter`.
 * Neither topic may be the delta log's own (counterd would consume its own records).
 */
function resolveIngest (config: Defaults): void {
  if (config.ingestTopic === '') return
  if (config.ingestConsumers === 0) config.ingestConsumers = config.workers
  if (config.ingestConsumers > config.workers) {
    throw new ConfigError(`INGEST_CONSUMERS (${config.ingestConsumers}) must not exceed WORKERS (${config.workers}): each consumer runs in its own shard thread`)
  }
  if (config.ingestBrokers === '') config.ingestBrokers = config.kafkaBrokers
  if (config.ingestBrokers === '') {
    throw new ConfigError('INGEST_TOPIC needs brokers: set INGEST_BROKERS (or KAFKA_BROKERS, which it defaults to)')
  }
  if (config.ingestDeadLetterTopic === '') config.ingestDeadLetterTopic = `${config.ingestTopic}.dead-letter`
  if (config.ingestDeadLetterTopic === config.ingestTopic) {
    throw new ConfigError(`INGEST_DEAD_LETTER_TOPIC must differ from INGEST_TOPIC (${config.ingestTopic}): a dead letter would be consumed again`)
  }
  if (config.kafkaBrokers !== '') {
    for (const [name, topic] of [['INGEST_TOPIC', config.ingestTopic], ['INGEST_DEAD_LETTER_TOPIC', config.ingestDeadLetterTopic]]) {
      if (topic === config.kafkaTopic) throw new ConfigError(`${name} must differ from KAFKA_TOPIC (${topic}): that topic is counterd's own delta log`)
    }
  }
}

/** Cluster storage (Kafka log + Redis checkpoints) rather than the embedded WAL and snapshot files. */
export function isClusterStorage (config: Config): boolean {
  return config.kafkaBrokers !== ''
}
