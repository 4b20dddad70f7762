// Starts a private clickhouse-server for one test on free ports in a temp dir (the packaged config
// with overrides after `--`), stopped in teardown. restart() keeps the ports and the data dir, so a
// test can stop the server, check the client copes, and bring the same data back.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { freePort } from './ports'
import { isRunning, pauseProcess, resumeProcess, sleep, stopProcess, track } from './process-control'
import type { TeardownHost } from './redis'

export interface ClickHouseServer {
  httpPort: number
  url: string // http://127.0.0.1:PORT
  dir: string
  readonly proc: ChildProcess
  pause: () => void
  resume: () => void
  /** Stops the server (SIGTERM, or SIGKILL to simulate a crash); the data dir stays for restart(). */
  stop: (signal?: NodeJS.Signals) => Promise<void>
  /** Starts it again on the same ports and data dir. */
  restart: () => Promise<void>
}

const CONFIG = '/etc/clickhouse-server/config.xml'
const READY_TIMEOUT_MS = 30_000

export async function startClickHouse (t: TeardownHost): Promise<ClickHouseServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-ch-'))
  let proc: ChildProcess | null = null
  let ports: [number, number, number] = [0, 0, 0]

  const spawnServer = (): ChildProcess => {
    const [httpPort, tcpPort, interPort] = ports
    const child = spawn('clickhouse-server', [
      `--config-file=${CONFIG}`, '--',
      `--http_port=${httpPort}`, `--tcp_port=${tcpPort}`, `--interserver_http_port=${interPort}`,
      `--path=${dir}/`, `--tmp_path=${dir}/tmp/`, `--user_files_path=${dir}/uf/`,
      `--format_schema_path=${dir}/fs/`, `--logger.log=${dir}/ch.log`, `--logger.errorlog=${dir}/ch.err.log`,
      '--logger.level=warning'
    ], { stdio: ['ignore', 'ignore', 'ignore'] })
    return track(child)
  }

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (proc !== null) await stopProcess(proc, signal)
  }
  t.teardown(async () => {
    await stop('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  })

  for (let attempt = 0; ; attempt++) {
    ports = [await freePort(), await freePort(), await freePort()]
    proc = spawnServer()
    if (await waitReady(proc, ports[0])) break
    await stop('SIGKILL')
    if (attempt >= 3) throw new Error(`clickhouse-server did not start (log in ${dir}/ch.err.log): ${tail(`${dir}/ch.err.log`)}`)
  }

  return {
    httpPort: ports[0],
    url: `http://127.0.0.1:${ports[0]}`,
    dir,
    get proc () { return proc as ChildProcess },
    pause: () => { if (proc !== null) pauseProcess(proc) },
    resume: () => { if (proc !== null) resumeProcess(proc) },
    stop,
    restart: async () => {
      await stop('SIGTERM')
      // The old process may hold the port for a moment after exit; retry on the same ports.
      for (let attempt = 0; ; attempt++) {
        proc = spawnServer()
        if (await waitReady(proc, ports[0])) return
        await stop('SIGKILL')
        if (attempt >= 5) throw new Error(`clickhouse-server did not restart: ${tail(`${dir}/ch.err.log`)}`)
        await sleep(500)
      }
    }
  }
}

async function waitReady (proc: ChildProcess, port: number): Promise<boolean> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (!isRunning(proc)) return false
    // A ping can reach another test's server that won the port race; ours then exits on bind.
    if (await ping(port)) {
      await sleep(200)
      return isRunning(proc)
    }
    await sleep(100)
  }
  return false
}

async function ping (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/ping', timeout: 1000 }, (res) => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(false))
  })
}

function tail (file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').slice(-1000)
  } catch {
    return '(no log)'
  }
}
