// What a cluster-mode node's Redis checkpoints cost Redis, per counter: docs/scaling.md quotes it.
// One node with cluster storage (the librdkafka mock hosted by kcat, a private redis-server), then
//   1. `counters` new counters (`post:<7 digits>`, 12-byte keys), +1 each through the stream;
//   2. the same counters +1 again (every one changed, none new);
// after each, the suite waits until the node's checkpoints hold every counter, and reads Redis'
// own figures: the checkpoint script's calls and microseconds (INFO commandstats: evalsha/eval),
// used_memory, and Redis' CPU time. Reported per counter written.
//
//   npx tsc -p . && node dist/bench/checkpoint-probe.js [counters, default 1000000]
import Redis from 'ioredis'
import { encodeFrame, type Op } from '../client/frame-codec'
import { startCounterd, stopCounterd } from './counterd'
import { launchKafkaMock } from './kafka-launcher'
import { launchRedis, removeDir } from './redis-launcher'
import type { BenchContext } from './suite'
import { pushFrames } from './ws-load'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const PARTITIONS = 64
const INTERVAL_MS = 2000
const FIRST_ID = 1_000_000

interface RedisFigures { scriptCalls: number, scriptUsec: number, usedMemory: number, cpuSec: number }

async function figures (r: Redis): Promise<RedisFigures> {
  const stats = await r.info('commandstats')
  let scriptCalls = 0
  let scriptUsec = 0
  for (const m of stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+),usec=(\d+)/gm)) {
    scriptCalls += Number(m[1])
    scriptUsec += Number(m[2])
  }
  const mem = Number(/used_memory:(\d+)/.exec(await r.info('memory'))?.[1])
  const cpu = await r.info('cpu')
  const cpuSec = Number(/used_cpu_sys:([\d.]+)/.exec(cpu)?.[1]) + Number(/used_cpu_user:([\d.]+)/.exec(cpu)?.[1])
  return { scriptCalls, scriptUsec, usedMemory: mem, cpuSec }
}

/** Waits until every partition's checkpoint holds `want` for each counter (sampled: all fields counted, a sample read). */
async function waitCheckpointed (r: Redis, counters: number, want: number, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let fields = 0
    for (let p = 0; p < PARTITIONS; p++) fields += await r.hlen(`counterd:{p${p}}:values`)
    if (fields === counters) {
      // Every counter is there; the latest values too? (a sample of 1000, one per partition hash)
      let ok = true
      for (let p = 0; p < PARTITIONS && ok; p++) {
        const vals = await r.hrandfield(`counterd:{p${p}}:values`, 16, 'WITHVALUES') as string[]
        for (let i = 1; i < vals.length; i += 2) if (Number(vals[i]) !== want) ok = false
      }
      if (ok) return
    }
    if (Date.now() > deadline) throw new Error(`checkpoints hold ${fields} of ${counters} counters after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

async function main (): Promise<void> {
  const counters = Number(process.argv[2] ?? 1_000_000)
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-checkpoint-probe-'))
  let n = 0
  const ctx: BenchContext = {
    quick: false, rounds: 1, durationSec: 0,
    counterdScript: path.join(__dirname, '..', 'src', 'main.js'),
    counterdEnv: {},
    log: (m) => process.stdout.write(m + '\n'),
    tempDir: (label) => { const d = path.join(root, `${++n}-${label}`); fs.mkdirSync(d, { recursive: true }); return d }
  }
  const kafka = await launchKafkaMock(1)
  const redis = await launchRedis()
  const client = new Redis(redis.url)
  const notes: string[] = []
  try {
    const node = await startCounterd(ctx, {
      label: 'checkpoint-probe',
      env: {
        WORKERS: '2', KAFKA_BROKERS: kafka.brokers.join(','), KAFKA_TOPIC: 'probe-deltas', REDIS_URL: redis.url,
        CLUSTER_NAME: 'probe', CHECKPOINT_INTERVAL_MS: String(INTERVAL_MS)
      }
    })
    try {
      const perFrame = 1000
      for (const pass of [1, 2]) {
        const before = await figures(client)
        const t0 = Date.now()
        const r = await pushFrames({
          url: `ws://127.0.0.1:${node.port}/v1/stream`,
          connections: 2,
          framesInFlight: 4,
          count: Math.ceil(counters / perFrame),
          payload: (i) => {
            const ops: Op[] = []
            for (let id = i * perFrame; id < Math.min(counters, (i + 1) * perFrame); id++) ops.push(['post', String(FIRST_ID + id), 1])
            return encodeFrame(0, ops)
          }
        })
        if (Object.keys(r.refused).length > 0) throw new Error(`frames refused: ${JSON.stringify(r.refused)}`)
        await waitCheckpointed(client, counters, pass)
        const after = await figures(client)
        const calls = after.scriptCalls - before.scriptCalls
        const usec = after.scriptUsec - before.scriptUsec
        const line = {
          pass: pass === 1 ? 'new counters' : 'every counter changed again',
          counters,
          secondsUntilCheckpointed: (Date.now() - t0) / 1000,
          checkpointScriptCalls: calls,
          redisScriptUsecPerCounter: Math.round(usec / counters * 100) / 100,
          redisScriptMsPerCall: Math.round(usec / Math.max(calls, 1) / 10) / 100,
          redisCpuUsecPerCounter: Math.round((after.cpuSec - before.cpuSec) * 1e6 / counters * 100) / 100,
          redisMemoryBytesPerCounter: Math.round((after.usedMemory - before.usedMemory) / counters * 10) / 10
        }
        process.stdout.write(JSON.stringify(line) + '\n')
      }
    } finally {
      await stopCounterd(node, notes)
    }
  } finally {
    client.disconnect()
    await redis.stop()
    removeDir(redis.dir)
    await kafka.stop()
    fs.rmSync(root, { recursive: true, force: true })
    for (const x of notes) process.stdout.write(x + '\n')
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`)
  process.exit(1)
})
