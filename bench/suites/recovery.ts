// Suite 5: recovery. counterd takes 10M increments over 1M counters (ten passes of +1 over
// post:0 … post:999999) with acks after fsync and no checkpoint in between, so the WAL holds
// them all; it is then killed with SIGKILL. Each round restarts it on a pristine copy of that
// data directory and times spawn → GET /ready = 200, then reads every counter back (each must
// be 10). The peer is Redis with an append-only file holding the same 10M INCRs, timed from
// spawn to "Ready to accept connections", then checked the same way.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { startCounterd, stopCounterd } from '../counterd'
import { encodeFrame, type Op } from '../../client/frame-codec'
import { CpuMeter } from '../proc-stats'
import { checkRedisSequence, readCounterd } from '../readback'
import { launchRedis, removeDir } from '../redis-launcher'
import { compare, target, type BenchContext, type Run, type Suite } from '../suite'
import { pushFrames } from '../ws-load'

const TYPE = 'post'
const PER_FRAME = 1000
// No checkpoint while loading or recovering: recovery must replay the whole WAL.
const NO_CHECKPOINT = { CHECKPOINT_INTERVAL_MS: String(24 * 3600 * 1000) }
const REDIS_AOF_ARGS = ['--appendonly', 'yes', '--appendfilename', 'appendonly.aof', '--appendfsync', 'everysec', '--auto-aof-rewrite-percentage', '0']

function sizes (quick: boolean): { counters: number, passes: number } {
  void quick
  return { counters: 1_000_000, passes: 10 }
}

function duBytes (dir: string): number {
  try {
    return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0])
  } catch {
    return NaN
  }
}

function copyDir (from: string, to: string): void {
  fs.rmSync(to, { recursive: true, force: true })
  fs.cpSync(from, to, { recursive: true })
}

async function prepareCounterd (ctx: BenchContext, counters: number, passes: number): Promise<{ dir: string, loadMs: number }> {
  const dir = ctx.tempDir('recovery-counterd-pristine')
  const notes: string[] = []
  const c = await startCounterd(ctx, { label: 'recovery-load', dataDir: dir, env: { ACK_MODE: 'durable', ...NO_CHECKPOINT }, profile: false })
  const framesPerPass = Math.ceil(counters / PER_FRAME)
  const blocks: Buffer[] = []
  try {
    const load = await pushFrames({
      url: `ws://127.0.0.1:${c.port}/v1/stream`,
      connections: 4,
      framesInFlight: 16,
      count: framesPerPass * passes,
      // Pass p sends the same frames as pass 0: encode each block of ids once.
      payload: (i) => {
        const block = i % framesPerPass
        let frame = blocks[block]
        if (frame === undefined) {
          const ops: Op[] = []
          for (let id = block * PER_FRAME; id < Math.min(counters, (block + 1) * PER_FRAME); id++) ops.push([TYPE, String(id), 1])
          frame = blocks[block] = encodeFrame(0, ops)
        }
        return frame
      }
    })
    if (Object.keys(load.refused).length > 0) throw new Error(`loading the WAL: frames refused ${JSON.stringify(load.refused)}`)
    ctx.log(`  counterd: ${counters * passes} increments acked (durable) in ${(load.elapsedMs / 1000).toFixed(1)} s; WAL dir ${(duBytes(dir) / 2 ** 20).toFixed(0)} MiB`)
    return { dir, loadMs: load.elapsedMs }
  } finally {
    await c.kill()
    void notes
  }
}

async function counterdRun (ctx: BenchContext, round: number, pristine: string, counters: number, passes: number): Promise<Run> {
  const dir = ctx.tempDir(`recovery-counterd-${round}`)
  copyDir(pristine, dir)
  const notes: string[] = []
  // Everything that ran meanwhile, to see how busy the machine was during the restart.
  const meter = new CpuMeter({ 'benchmark (polling /ready)': process.pid })
  const c = await startCounterd(ctx, { label: round === 1 ? 'recovery' : `recovery-${round}`, dataDir: dir, env: { ...NO_CHECKPOINT }, pollMs: 5, profile: round === 1 })
  meter.addStartedProcess('counterd', c.pid)
  const { usage } = meter.stop()
  try {
    const readyLine = c.tail().split('\n').find(l => l.includes('"msg":"ready"')) ?? ''
    const values = await readCounterd(c.port, TYPE, counters)
    let wrong = 0
    let sum = 0
    for (let i = 0; i < counters; i++) {
      sum += values[i]
      if (values[i] !== passes) wrong++
    }
    const exact = wrong === 0 && sum === counters * passes
    return {
      round,
      value: c.readyMs ?? NaN,
      exact,
      cpu: usage,
      check: `sum of ${counters} counters read back ${sum} (expected ${counters * passes}), ${wrong} not equal to ${passes}`,
      details: { listeningMs: Math.round(c.listeningMs), dataDirMiB: Math.round(duBytes(dir) / 2 ** 20), readyLog: readyLine.slice(0, 300) }
    }
  } finally {
    await stopCounterd(c, notes)
    fs.rmSync(dir, { recursive: true, force: true })
    if (notes.length > 0) ctx.log(`  ${notes.join('; ')}`)
  }
}

/**
 * Writes the append-only file Redis itself would write for these INCRs (RESP commands after a
 * SELECT 0), as a single-file AOF: redis-server 7 migrates it into its AOF directory at start
 * and replays it command by command. Writing it directly takes seconds; sending 10M INCRs
 * through a Redis with appendonly on takes far longer and measures nothing we report.
 */
function writeRedisAof (dir: string, counters: number, passes: number): number {
  const file = path.join(dir, 'appendonly.aof')
  const fd = fs.openSync(file, 'w')
  try {
    fs.writeSync(fd, '*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n')
    const total = counters * passes
    for (let i = 0; i < total;) {
      let chunk = ''
      for (let k = 0; k < 50_000 && i < total; k++, i++) {
        const key = `${TYPE}:${i % counters}`
        chunk += `*2\r\n$4\r\nINCR\r\n$${key.length}\r\n${key}\r\n`
      }
      fs.writeSync(fd, chunk)
    }
  } finally {
    fs.closeSync(fd)
  }
  return fs.statSync(file).size
}

async function prepareRedis (ctx: BenchContext, counters: number, passes: number): Promise<string> {
  const dir = ctx.tempDir('recovery-redis-pristine')
  const bytes = writeRedisAof(dir, counters, passes)
  ctx.log(`  redis: ${counters * passes} INCRs in the AOF (${(bytes / 2 ** 20).toFixed(0)} MiB)`)
  return dir
}

async function redisRun (ctx: BenchContext, round: number, pristine: string, counters: number, passes: number): Promise<Run> {
  const dir = ctx.tempDir(`recovery-redis-${round}`)
  copyDir(pristine, dir)
  const meter = new CpuMeter({ 'benchmark (waiting for redis)': process.pid })
  const r = await launchRedis({ dir, args: REDIS_AOF_ARGS, readyTimeoutMs: 300_000 })
  meter.addStartedProcess('redis', r.pid)
  const { usage } = meter.stop()
  try {
    const { sum, wrong, dbsize } = await checkRedisSequence(r.url, `${TYPE}:`, counters, passes)
    const exact = sum === counters * passes && wrong === 0 && dbsize === counters
    return {
      round,
      value: r.startMs,
      exact,
      cpu: usage,
      check: `${dbsize} keys, sum ${sum}, ${wrong} not equal to ${passes} (expected ${counters} keys summing to ${counters * passes})`,
      details: { dataDirMiB: Math.round(duBytes(dir) / 2 ** 20) }
    }
  } finally {
    await r.kill()
    removeDir(dir)
  }
}

export const recovery: Suite = {
  name: 'recovery',
  title: 'Recovery (start → ready)',
  async run (ctx: BenchContext) {
    const { counters, passes } = sizes(ctx.quick)
    const rounds = ctx.quick ? 1 : ctx.rounds
    const prepared = await prepareCounterd(ctx, counters, passes)
    const redisDir = await prepareRedis(ctx, counters, passes)
    const subjectRuns: Run[] = []
    const peerRuns: Run[] = []
    try {
      for (let round = 1; round <= rounds; round++) {
        const a = await counterdRun(ctx, round, prepared.dir, counters, passes)
        subjectRuns.push(a)
        ctx.log(`  round ${round} counterd ready in ${Math.round(a.value)} ms ${a.exact ? 'exact' : 'NOT EXACT: ' + a.check}`)
        const b = await redisRun(ctx, round, redisDir, counters, passes)
        peerRuns.push(b)
        ctx.log(`  round ${round} redis    ready in ${Math.round(b.value)} ms ${b.exact ? 'exact' : 'NOT EXACT: ' + b.check}`)
      }
    } finally {
      fs.rmSync(prepared.dir, { recursive: true, force: true })
      removeDir(redisDir)
    }
    const comparison = compare({
      name: 'recovery',
      label: `Recovery, ${counters / 1e6}M counters / ${counters * passes / 1e6}M WAL increments (start → ready)`,
      unit: 'ms',
      higherIsBetter: false,
      subject: { system: 'counterd', config: `SIGKILLed after ${counters * passes} durable increments, no checkpoint: the WAL is replayed in full; ready = GET /ready 200 (polled every 5 ms)`, runs: subjectRuns },
      peer: { system: 'redis', config: `appendonly yes, an AOF of ${counters * passes} INCRs (no base snapshot); ready = "Ready to accept connections"`, runs: peerRuns },
      targets: (s) => [target('< 2 s', s.value.median, v => v < 2000)]
    })
    return {
      comparisons: [comparison],
      notes: [
        `counterd loaded the WAL at ${(counters * passes / (prepared.loadMs / 1000) / 1e6).toFixed(2)}M increments/s (ack=durable, 4 connections).`,
        'The Redis AOF is written by the benchmark in the format Redis writes (RESP commands after SELECT 0, the single-file layout that redis-server 7 migrates at start); Redis replays it command by command like any AOF.',
        'Both data directories are copied from a pristine prepared copy before every round, so each round recovers the same data; the copies sit in the page cache (a warm restart).'
      ]
    }
  }
}


