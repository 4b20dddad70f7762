// A private single redis-server that can be paused (SIGSTOP), resumed, stopped and restarted on the
// same port and dir, for outage tests of a node. With persistent: true it keeps its data across a
// restart (AOF, fsync always), as a production Redis holding checkpoints would.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { freePort } from './ports'
import { pauseProcess, resumeProcess, sleep, stopProcess, track } from './process-control'
import { waitForLine, type TeardownHost } from './redis'

export interface ControlledRedis {
  port: number
  url: string
  dir: string
  readonly proc: ChildProcess
  pause: () => void
  resume: () => void
  stop: (signal?: NodeJS.Signals) => Promise<void>
  restart: () => Promise<void>
}

export async function startControlledRedis (t: TeardownHost, opts: { persistent?: boolean } = {}): Promise<ControlledRedis> {
  const persistence = opts.persistent === true ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-redis-'))
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--protected-mode', 'no', ...persistence]
    let proc = track(spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }))
    if (await waitForLine(proc, /Ready to accept connections/, 10_000)) {
      drainOutput(proc)
      t.teardown(async () => {
        await stopProcess(proc, 'SIGKILL')
        fs.rmSync(dir, { recursive: true, force: true })
      })
      return {
        port,
        url: `redis://127.0.0.1:${port}`,
        dir,
        get proc () { return proc },
        pause: () => pauseProcess(proc),
        resume: () => resumeProcess(proc),
        stop: async (signal = 'SIGTERM') => { await stopProcess(proc, signal) },
        restart: async () => {
          await stopProcess(proc, 'SIGTERM')
          for (let i = 0; ; i++) {
            proc = track(spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }))
            if (await waitForLine(proc, /Ready to accept connections/, 10_000)) { drainOutput(proc); return }
            await stopProcess(proc)
            if (i >= 5) throw new Error(`redis-server on port ${port} did not restart`)
            await sleep(300)
          }
        }
      }
    }
    await stopProcess(proc)
    fs.rmSync(dir, { recursive: true, force: true })
    if (attempt >= 3) throw new Error(`redis-server did not start on port ${port}`)
  }
}

function drainOutput (proc: ChildProcess): void {
  proc.stdout?.resume()
  proc.stderr?.resume()
}
