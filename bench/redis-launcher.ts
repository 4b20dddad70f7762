// Starts and stops the benchmark's own redis-server (peer and naive-baseline backend) on a free
// port, so `npm run bench` needs nothing running beforehand.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { freePort } from '../test/support/ports'
import { expectExit, trackChild } from './children'
import { killAndWait, waitForLine } from '../test/support/redis'

export interface RedisInstance {
  port: number
  url: string
  dir: string
  proc: ChildProcess
  pid: number
  /** milliseconds from spawn to "Ready to accept connections" */
  startMs: number
  /** SIGTERM (a normal shutdown, which may save if persistence is on); keeps the directory */
  stop: () => Promise<void>
  /** SIGKILL, like a crash; keeps the directory */
  kill: () => Promise<void>
}

export interface RedisLaunchOptions {
  /** data directory; a fresh temp dir when omitted */
  dir?: string
  /** extra redis-server arguments, after the defaults (later ones win) */
  args?: string[]
  /** wait this long for readiness (loading a big AOF takes a while) */
  readyTimeoutMs?: number
  port?: number
}

export async function redisVersion (): Promise<string> {
  return await new Promise((resolve) => {
    const p = spawn('redis-server', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    p.stdout.on('data', (c: Buffer) => { out += c.toString() })
    p.on('error', () => resolve('not installed'))
    p.on('close', () => resolve(/v=(\S+)/.exec(out)?.[1] ?? out.trim()))
  })
}

export async function launchRedis (opts: RedisLaunchOptions = {}): Promise<RedisInstance> {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-bench-redis-'))
  fs.mkdirSync(dir, { recursive: true })
  for (let attempt = 0; ; attempt++) {
    const port = opts.port ?? await freePort()
    const started = process.hrtime.bigint()
    const proc = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
      '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'notice',
      ...(opts.args ?? [])
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    trackChild(proc, 'redis-server')
    const ready = await waitForLine(proc, /Ready to accept connections/, opts.readyTimeoutMs ?? 60_000)
    const startMs = Number(process.hrtime.bigint() - started) / 1e6
    if (ready && proc.pid !== undefined) {
      // Nobody reads the pipes from here on; drain them so a chatty server never blocks.
      proc.stdout?.resume()
      proc.stderr?.resume()
      return {
        port,
        url: `redis://127.0.0.1:${port}`,
        dir,
        proc,
        pid: proc.pid,
        startMs,
        stop: async () => { expectExit(proc); await killAndWait(proc, 'SIGTERM') },
        kill: async () => { expectExit(proc); await killAndWait(proc, 'SIGKILL') }
      }
    }
    expectExit(proc)
    await killAndWait(proc)
    if (attempt >= 3 || opts.port !== undefined) throw new Error(`redis-server did not become ready on port ${port} (dir ${dir})`)
  }
}

export function removeDir (dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true })
}
