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
  if ((config.kafkaBrokers === '') !== (config.redisUrl === '')) {
    throw new ConfigError('KAFKA_BROKERS and REDIS_URL go together: cluster storage needs both (the log in Kafka, checkpoints in Redis); set both or neither')
  }
  return Object.freeze(config)
}

/** Cluster storage (Kafka log + Redis checkpoints) rather than the embedded WAL and snapshot files. */
export function isClusterStorage (config: Config): boolean {
  return config.kafkaBrokers !== ''
}
