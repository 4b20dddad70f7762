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
  t.equal(c.respPort, -1, 'no Redis-protocol listener unless RESP_PORT is set')
  t.equal(loadConfig({ RESP_PORT: '6380' }).respPort, 6380)
  t.equal(loadConfig({ RESP_PORT: '0', PORT: '0' }).respPort, 0, 'both may pick free ports')
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
    [{ PARTITIONS: '4', WORKERS: '8' }, /^WORKERS \(8\) must not exceed PARTITIONS \(4\)/],
    [{ RESP_PORT: '-1' }, /^RESP_PORT must be an integer from 0 to 65535, got "-1"$/],
    [{ RESP_PORT: 'redis' }, /^RESP_PORT must be an integer from 0 to 65535/],
    [{ RESP_PORT: '9000', PORT: '9000' }, /^RESP_PORT must differ from PORT \(both are 9000\)/],
    [{ HISTORY_RETENTION_MINUTES: '-5' }, /^HISTORY_RETENTION_MINUTES must be an integer from 0 to 43200, got "-5"$/],
    [{ HISTORY_RETENTION_MINUTES: '1 day' }, /^HISTORY_RETENTION_MINUTES must be an integer/],
    [{ KEY_OPS_PER_SECOND: '-1' }, /^KEY_OPS_PER_SECOND must be an integer from 0 to 1000000000, got "-1"$/],
    [{ KEY_OPS_PER_SECOND: '10' }, /^KEY_OPS_PER_SECOND limits each API key: it needs AUTH_FILE/],
    [{ CLUSTER_SECRET: 'short-secret' }, /^CLUSTER_SECRET must be 16 to 1024 printable ASCII characters without spaces \(got 12 characters; the value is not shown\)$/],
    [{ CLUSTER_SECRET: 'a secret with spaces 123' }, /^CLUSTER_SECRET must be 16 to 1024 printable ASCII/]
  ]
  for (const [env, re] of cases) t.throws(() => loadConfig(env), { name: 'ConfigError', message: re }, JSON.stringify(env))
  t.ok(new ConfigError('x') instanceof Error)
})

t.test('event ingestion settings', async (t) => {
  const off = loadConfig({})
  t.same([off.ingestTopic, off.ingestGroup, off.ingestBrokers, off.ingestDeadLetterTopic], ['', 'counterd-ingest', '', ''], 'off by default')
  const embedded = loadConfig({ INGEST_TOPIC: 'likes', INGEST_BROKERS: 'k1:9092,k2:9092', WORKERS: '3' })
  t.same([embedded.ingestBrokers, embedded.ingestDeadLetterTopic, embedded.ingestConsumers], ['k1:9092,k2:9092', 'likes.dead-letter', 3],
    'an embedded node names its brokers; the dead-letter topic follows the topic; a consumer per shard')
  const cluster = loadConfig({ INGEST_TOPIC: 'likes', KAFKA_BROKERS: 'k:9092', REDIS_URL: 'redis://r:6379', INGEST_GROUP: 'g.1', INGEST_DEAD_LETTER_TOPIC: 'dlq', INGEST_CONSUMERS: '2', WORKERS: '2' })
  t.same([cluster.ingestBrokers, cluster.ingestGroup, cluster.ingestDeadLetterTopic, cluster.ingestConsumers], ['k:9092', 'g.1', 'dlq', 2], 'brokers default to KAFKA_BROKERS')
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ INGEST_TOPIC: 'likes' }, /^INGEST_TOPIC needs brokers: set INGEST_BROKERS \(or KAFKA_BROKERS/],
    [{ INGEST_TOPIC: 'a topic' }, /^INGEST_TOPIC must be a Kafka topic name/],
    [{ INGEST_TOPIC: 'likes', INGEST_BROKERS: 'k1' }, /^INGEST_BROKERS must be a comma-separated list of host:port, got "k1"$/],
    [{ INGEST_GROUP: 'g/1' }, /^INGEST_GROUP must be a consumer group id/],
    [{ INGEST_DEAD_LETTER_TOPIC: 'x y' }, /^INGEST_DEAD_LETTER_TOPIC must be a Kafka topic name/],
    [{ INGEST_TOPIC: 'likes', INGEST_BROKERS: 'k:1', INGEST_DEAD_LETTER_TOPIC: 'likes' }, /^INGEST_DEAD_LETTER_TOPIC must differ from INGEST_TOPIC/],
    [{ INGEST_TOPIC: 'counter-deltas', KAFKA_BROKERS: 'k:9092', REDIS_URL: 'redis://r:6379' }, /^INGEST_TOPIC must differ from KAFKA_TOPIC \(counter-deltas\)/],
    [{ INGEST_TOPIC: 'likes', INGEST_BROKERS: 'k:1', INGEST_CONSUMERS: '3', WORKERS: '2' }, /^INGEST_CONSUMERS \(3\) must not exceed WORKERS \(2\)/],
    [{ INGEST_CONSUMERS: '-1' }, /^INGEST_CONSUMERS must be an integer from 0 to 256/],
    [{ INGEST_SESSION_TIMEOUT_MS: '10' }, /^INGEST_SESSION_TIMEOUT_MS must be an integer from 1000/]
  ]
  for (const [env, re] of cases) t.throws(() => loadConfig(env), { name: 'ConfigError', message: re }, JSON.stringify(env))
})

t.test('the node exits 2 with the message on a bad setting', async (t) => {
  const r = spawnSync(process.execPath, [MAIN], { env: { ...process.env, ACK_MODE: 'sometimes' }, encoding: 'utf8' })
  t.equal(r.status, 2)
  t.match(r.stderr, /invalid configuration: ACK_MODE must be one of durable, applied/)
})
