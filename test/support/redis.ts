// Starts a private redis-server for one test on a free port in a temp dir; stopped in teardown.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { freePort } from './ports'

export interface TeardownHost { teardown: (fn: () => void | Promise<void>) => void }

export interface RedisServer {
  port: number
  url: string
  dir: string
  proc: ChildProcess
  stop: () => Promise<void>
}

export async function startRedis (t: TeardownHost, extraArgs: string[] = []): Promise<RedisServer> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-redis-'))
    const proc = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
      '--save', '', '--appendonly', 'no', '--protected-mode', 'no', ...extraArgs
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    const ready = await waitForLine(proc, /Ready to accept connections/, 10_000)
    if (ready) {
      const stop = async (): Promise<void> => {
        await killAndWait(proc)
        fs.rmSync(dir, { recursive: true, force: true })
      }
      t.teardown(stop)
      return { port, url: `redis://127.0.0.1:${port}`, dir, proc, stop }
    }
    await killAndWait(proc)
    fs.rmSync(dir, { recursive: true, force: true })
    if (attempt >= 3) throw new Error(`redis-server did not start on port ${port}`)
  }
}

/** Resolves true when a line of the child's output matches, false when it exits or times out. */
export async function waitForLine (proc: ChildProcess, re: RegExp, timeoutMs: number): Promise<boolean> {
  return await new Promise((resolve) => {
    let seen = ''
    const done = (ok: boolean): void => {
      clearTimeout(timer)
      proc.stdout?.off('data', onData)
      proc.stderr?.off('data', onData)
      proc.off('exit', onExit)
      resolve(ok)
    }
    const onData = (chunk: Buffer): void => {
      seen = (seen + chunk.toString('utf8')).slice(-8192)
      if (re.test(seen)) done(true)
    }
    const onExit = (): void => done(false)
    const timer = setTimeout(() => done(false), timeoutMs)
    proc.stdout?.on('data', onData)
    proc.stderr?.on('data', onData)
    proc.on('exit', onExit)
  })
}

export async function killAndWait (proc: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return
  await new Promise<void>((resolve) => {
    proc.once('exit', () => resolve())
    proc.kill(signal)
  })
}
