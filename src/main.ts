// `npm start` / `node dist/src/main.js`: one node with the configuration from the environment.
import pino from 'pino'
import { ConfigError, loadConfig } from '../config/loader'
import { CounterNode, StartError } from './node/counter-node'

async function main (): Promise<void> {
  let config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`counterd: invalid configuration: ${err.message}\n`)
      process.exit(2)
    }
    throw err
  }
  const logger = pino({ level: config.logLevel })
  const fatal = (err: Error, exitCode = 1): void => {
    logger.fatal({ err }, 'fatal error; exiting')
    process.exit(exitCode)
  }
  let node: CounterNode
  try {
    node = await CounterNode.start(config, logger, fatal)
  } catch (err) {
    if (err instanceof StartError) {
      process.stderr.write(`counterd: cannot start: ${err.message}\n`)
      logger.fatal({ err }, 'cannot start')
      process.exit(2)
    }
    fatal(err as Error)
    return
  }
  const stop = (signal: string): void => {
    logger.info({ signal }, 'draining')
    node.close().then(() => process.exit(0), fatal)
  }
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
  process.on('SIGHUP', () => node.reloadApiKeys())
}

void main()
