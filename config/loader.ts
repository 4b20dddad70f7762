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
  const config = filled as Defaults
  if (config.workers > config.partitions) {
    throw new ConfigError(`WORKERS (${config.workers}) must not exceed PARTITIONS (${config.partitions}): every worker holds at least one partition`)
  }
  return Object.freeze(config)
}
