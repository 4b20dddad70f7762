// Launches a Node.js server process (counterd or the naive baseline) for a benchmark: waits for
// its `{"msg":"listening","port":N}` log line, optionally for `GET /ready` to answer 200, and
// stops it with SIGTERM (or SIGKILL, to simulate a crash). With a profile directory the process
// runs under `node --cpu-prof`, which writes one .cpuprofile per thread when it exits.
import { spawn, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import { expectExit, trackChild } from './children'

export interface NodeService {
  name: string
  proc: ChildProcess
  pid: number
  port: number
  /** the whole listening line (the bench's uWS peers add `ports`, one per thread) */
  listening: Record<string, unknown>
  /** milliseconds from spawn to the listening line */
  listeningMs: number
  /** milliseconds from spawn to GET /ready = 200 (when waitReady), else null */
  readyMs: number | null
  /** the last lines the process wrote (for error reports) */
  tail: () => string
  /** SIGTERM, wait for exit (SIGKILL after the grace period); resolves the exit code */
  stop: (graceMs?: number) => Promise<number | null>
  kill: () => Promise<void>
}

export interface NodeServiceOptions {
  name: string
  script: string
  env?: Record<string, string>
  nodeArgs?: string[]
  /** write CPU profiles of every thread here (node --cpu-prof) */
  profileDir?: string
  waitReady?: boolean
  timeoutMs?: number
  /** poll interval for /ready */
  pollMs?: number
}

export async function httpGetStatus (port: number, path: string, timeoutMs = 2000): Promise<number> {
  return await new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: timeoutMs, agent: false }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(0))
  })
}

function exited (proc: ChildProcess): boolean {
  return proc.exitCode !== null || proc.signalCode !== null
}

export async function startNodeService (o: NodeServiceOptions): Promise<NodeService> {
  const nodeArgs = [...(o.nodeArgs ?? [])]
  if (o.profileDir !== undefined) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${o.profileDir}`)
  const started = process.hrtime.bigint()
  const sinceStart = (): number => Number(process.hrtime.bigint() - started) / 1e6
  const proc = spawn(process.execPath, [...nodeArgs, o.script], {
    env: { ...process.env, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  trackChild(proc, o.name)
  let tail = ''
  const timeoutMs = o.timeoutMs ?? 60_000
  const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let buffered = ''
    let found = false
    const timer = setTimeout(() => fail(new Error(`${o.name} printed no listening line within ${timeoutMs} ms`)), timeoutMs)
    const fail = (e: Error): void => {
      if (found) return
      found = true
      clearTimeout(timer)
      reject(e)
    }
    proc.on('error', fail)
    proc.on('exit', (code, sig) => fail(new Error(`${o.name} exited (${String(code ?? sig)}) before listening: ${tail.slice(-2000)}`)))
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString('utf8')
      tail = (tail + text).slice(-8192)
      if (found) return
      buffered += text
      let nl: number
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        if (!line.includes('"listening"')) continue
        try {
          const rec = JSON.parse(line) as { msg?: unknown, port?: unknown }
          if (rec.msg === 'listening' && typeof rec.port === 'number') {
            found = true
            clearTimeout(timer)
            resolve(rec as Record<string, unknown>)
            return
          }
        } catch {}
      }
      if (buffered.length > 65536) buffered = buffered.slice(-8192)
    }
    proc.stdout?.on('data', onData)
    proc.stderr?.on('data', (c: Buffer) => { tail = (tail + c.toString('utf8')).slice(-8192) })
  })
  const port = listening.port as number
  const listeningMs = sinceStart()
  let readyMs: number | null = null
  if (o.waitReady === true) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (exited(proc)) throw new Error(`${o.name} exited before ready: ${tail.slice(-2000)}`)
      if (await httpGetStatus(port, '/ready') === 200) break
      if (Date.now() > deadline) throw new Error(`${o.name} not ready within ${timeoutMs} ms`)
      await new Promise(resolve => setTimeout(resolve, o.pollMs ?? 20))
    }
    readyMs = sinceStart()
  }
  const waitExit = async (): Promise<number | null> => {
    if (exited(proc)) return proc.exitCode
    return await new Promise(resolve => proc.once('exit', (code) => resolve(code)))
  }
  return {
    name: o.name,
    proc,
    pid: proc.pid as number,
    port,
    listening,
    listeningMs,
    readyMs,
    tail: () => tail,
    stop: async (graceMs = 30_000) => {
      if (exited(proc)) return proc.exitCode
      expectExit(proc)
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs)
      proc.kill('SIGTERM')
      const code = await waitExit()
      clearTimeout(timer)
      return code
    },
    kill: async () => {
      if (exited(proc)) return
      expectExit(proc)
      proc.kill('SIGKILL')
      await waitExit()
    }
  }
}
