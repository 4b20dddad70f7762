// Runs a real counterd node process (dist/src/main.js) for a test: port 0, a temp data dir,
// stopped in teardown. kill9() and restart() are what the crash tests are made of.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { TeardownHost } from './redis'

export const MAIN = path.join(__dirname, '..', '..', 'src', 'main.js')

export interface NodeProcess {
  port: number
  /** the Redis-protocol port when RESP_PORT was set, else -1 */
  respPort: number
  base: string
  dataDir: string
  proc: ChildProcess
  output: () => string
  kill9: () => Promise<void>
  stop: () => Promise<number | null> // SIGTERM; resolves with the exit code
  restart: () => Promise<NodeProcess>
}

export interface StartOptions {
  env?: Record<string, string>
  dataDir?: string
  waitReady?: boolean
}

export async function startNode (t: TeardownHost, opts: StartOptions = {}): Promise<NodeProcess> {
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-test-'))
  const proc = spawn(process.execPath, [MAIN], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      out += chunk.toString('utf8')
      const m = /"port":(\d+),"msg":"listening"/.exec(out)
      if (m !== null) resolve(Number(m[1]))
    }
    proc.stdout?.on('data', onData)
    proc.stderr?.on('data', (c: Buffer) => { out += c.toString('utf8') })
    void exited.then((code) => reject(new Error(`counterd exited with ${code} before listening:\n${out}`)))
  })
  const respPort = Number(/"respPort":(\d+),"port":\d+,"msg":"listening"/.exec(out)?.[1] ?? -1)
  const base = `http://127.0.0.1:${port}`
  const kill9 = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    proc.kill('SIGKILL')
    await exited
  }
  const node: NodeProcess = {
    port,
    respPort,
    base,
    dataDir,
    proc,
    output: () => out,
    kill9,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode
      proc.kill('SIGTERM')
      return await exited
    },
    restart: async () => {
      await kill9()
      return await startNode(t, { ...opts, dataDir })
    }
  }
  t.teardown(async () => {
    await kill9()
    if (opts.dataDir === undefined) fs.rmSync(dataDir, { recursive: true, force: true })
  })
  if (opts.waitReady !== false) await waitReady(base)
  return node
}

export async function waitReady (base: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const r = await fetch(`${base}/ready`)
      if (r.status === 200) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`${base} not ready after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

export async function getValue (base: string, type: string, id: string): Promise<number> {
  const r = await fetch(`${base}/v1/counter/${type}/${id}`)
  const body = await r.json() as { value: number }
  if (r.status !== 200) throw new Error(`GET ${type}/${id}: ${r.status} ${JSON.stringify(body)}`)
  return body.value
}

export async function queryValues (base: string, keys: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (let i = 0; i < keys.length; i += 1000) {
    const r = await fetch(`${base}/v1/counters/query`, { method: 'POST', body: JSON.stringify({ keys: keys.slice(i, i + 1000) }) })
    const body = await r.json() as { values: Record<string, number> }
    if (r.status !== 200) throw new Error(`query: ${r.status} ${JSON.stringify(body)}`)
    Object.assign(out, body.values)
  }
  return out
}
