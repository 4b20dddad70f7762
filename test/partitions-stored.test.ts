// PARTITIONS is fixed for the life of a data dir (embedded) or of a cluster's Redis: the first
// start stores it, and a start with another value stops with exit 2 and a message saying which
// value the data was written with, before touching anything.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { MAIN, startNode } from './support/node-process'
import { freePort } from './support/ports'
import { startRedis } from './support/redis'

function run (env: Record<string, string>): { status: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [MAIN], { env: { ...process.env, PORT: '0', LOG_LEVEL: 'silent', ...env }, encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

t.test('embedded: a data dir keeps its PARTITIONS; another value exits 2 and changes nothing', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-partitions-'))
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  const node = await startNode(t, { dataDir, env: { PARTITIONS: '16' } })
  await fetch(`${node.base}/v1/counter/post/1/increment`, { method: 'POST' })
  t.equal(await node.stop(), 0)
  t.equal(fs.readFileSync(path.join(dataDir, 'PARTITIONS'), 'utf8'), '16', 'stored at first start')
  const epoch = fs.readFileSync(path.join(dataDir, 'EPOCH'), 'utf8')

  const r = run({ DATA_DIR: dataDir, PARTITIONS: '32' })
  t.equal(r.status, 2, 'exit code 2')
  t.match(r.stderr, /PARTITIONS is 32 but .* was written with PARTITIONS=16/, 'the message names both values')
  t.equal(fs.readFileSync(path.join(dataDir, 'EPOCH'), 'utf8'), epoch, 'the refused start did not bump the epoch')
  t.notOk(fs.existsSync(path.join(dataDir, 'LOCK')), 'nor keep the lock')

  const again = await startNode(t, { dataDir, env: { PARTITIONS: '16' } })
  const v = await (await fetch(`${again.base}/v1/counter/post/1`)).json() as { value: number }
  t.equal(v.value, 1, 'the same value starts and finds its counters')
})

t.test('cluster: Redis keeps the cluster\'s PARTITIONS; a node with another value exits 2', async (t) => {
  const redis = await startRedis(t)
  const kafka = `127.0.0.1:${await freePort()}` // checked before the log is opened: no broker needed
  const env = { KAFKA_BROKERS: kafka, REDIS_URL: redis.url, LOG_LEVEL: 'info' }
  const first = run({ ...env, DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-partitions-')), PARTITIONS: '64' })
  t.not(first.status, 2, 'the first node stores its value (it then fails on the missing broker, which is another matter)')
  const second = run({ ...env, DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-partitions-')), PARTITIONS: '8', WORKERS: '2' })
  t.equal(second.status, 2, 'a node with another PARTITIONS exits 2')
  const fatal = second.stdout.split('\n').find((l) => l.includes('"level":60')) ?? ''
  t.match(fatal, /"code":"partitions_mismatch"/, 'its fatal log line has the code')
  t.match(fatal, /PARTITIONS is 8 but Redis \(counterd:partitions\) holds data written with PARTITIONS=64/, 'and says why')
})
