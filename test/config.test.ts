// Configuration: defaults, environment overrides, and errors that name the variable.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { ConfigError, loadConfig } from '../config/loader'
import { MAIN } from './support/node-process'

t.test('defaults and overrides', async (t) => {
  const c = loadConfig({})
  t.equal(c.port, 8080)
  t.equal(c.host, '127.0.0.1')
  t.equal(c.partitions, 64)
  t.equal(c.ackMode, 'durable')
  t.ok(Object.isFrozen(c), 'the filled config is frozen')
  const o = loadConfig({ PORT: '0', PARTITIONS: '16', WORKERS: '4', ACK_MODE: 'applied', FLUSH_INTERVAL_MS: '5', DATA_DIR: '/tmp/x' })
  t.same([o.port, o.partitions, o.workers, o.ackMode, o.flushIntervalMs, o.dataDir], [0, 16, 4, 'applied', 5, '/tmp/x'])
  t.equal(c.historyRetentionMinutes, 1440, 'a day of per-minute history by default')
  t.equal(loadConfig({ HISTORY_RETENTION_MINUTES: '0' }).historyRetentionMinutes, 0, '0 turns it off')
})

t.test('bad values are refused, naming the variable', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: '70000' }, /^PORT must be an integer from 0 to 65535, got "70000"$/],
    [{ PORT: '80x' }, /^PORT must be an integer/],
    [{ PARTITIONS: '0' }, /^PARTITIONS must be an integer from 1/],
    [{ WORKERS: '-1' }, /^WORKERS must be an integer from 1/],
    [{ ACK_MODE: 'fast' }, /^ACK_MODE must be one of durable, applied, got "fast"$/],
    [{ FLUSH_INTERVAL_MS: '1.5' }, /^FLUSH_INTERVAL_MS must be an integer/],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL must be one of/],
    [{ HISTORY_RETENTION_MINUTES: '-5' }, /^HISTORY_RETENTION_MINUTES must be an integer from 0 to 43200, got "-5"$/],
    [{ HISTORY_RETENTION_MINUTES: '1 day' }, /^HISTORY_RETENTION_MINUTES must be an integer/],
    [{ PARTITIONS: '4', WORKERS: '8' }, /^WORKERS \(8\) must not exceed PARTITIONS \(4\)/]
  ]
  for (const [env, re] of cases) t.throws(() => loadConfig(env), { name: 'ConfigError', message: re }, JSON.stringify(env))
  t.ok(new ConfigError('x') instanceof Error)
})

t.test('the node exits 2 with the message on a bad setting', async (t) => {
  const r = spawnSync(process.execPath, [MAIN], { env: { ...process.env, ACK_MODE: 'sometimes' }, encoding: 'utf8' })
  t.equal(r.status, 2)
  t.match(r.stderr, /invalid configuration: ACK_MODE must be one of durable, applied/)
})
