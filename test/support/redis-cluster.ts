// Starts a private Redis Cluster for one test: N masters (default 3, no replicas) on free ports in
// temp dirs, joined with `redis-cli --cluster create`, stopped in teardown. Each node can be paused
// (SIGSTOP), resumed, stopped and restarted on the same ports and dir (nodes.conf keeps its
// identity; pass persistent: true to keep data across a restart, with an fsync-always AOF).
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { freePort } from './ports'
import { pauseProcess, resumeProcess, sleep, stopProcess, track } from './process-control'
import { waitForLine, type TeardownHost } from './redis'

export interface ClusterNode {
  port: number
  url: string
  dir: string
  readonly proc: ChildProcess
  pause: () => void
  resume: () => void
  stop: (signal?: NodeJS.Signals) => Promise<void>
  restart: () => Promise<void>
}

export interface RedisCluster {
  nodes: ClusterNode[]
  /** Startup nodes as "redis://127.0.0.1:PORT" (any one is enough for a cluster client). */
  urls: string[]
  stop: () => Promise<void>
}

export interface RedisClusterOptions {
  masters?: number
  persistent?: boolean
}

export async function startRedisCluster (t: TeardownHost, opts: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = opts.masters ?? 3
  const nodes: ClusterNode[] = []
  const stopAll = async (): Promise<void> => {
    await Promise.all(nodes.map(async (n) => await n.stop('SIGKILL')))
  }
  t.teardown(async () => {
    await stopAll()
    for (const n of nodes) fs.rmSync(n.dir, { recursive: true, force: true })
  })
  for (let i = 0; i < masters; i++) nodes.push(await startNode(opts.persistent === true))

  await redisCli(['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'])
  for (const n of nodes) await waitClusterOk(n.port)
  return { nodes, urls: nodes.map((n) => n.url), stop: stopAll }
}

async function startNode (persistent: boolean): Promise<ClusterNode> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const busPort = await freePort()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-redis-cluster-'))
    const args = [
      '--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1', '--dir', dir,
      '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000',
      '--protected-mode', 'no', '--save', '',
      ...(persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'])
    ]
    let proc = track(spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }))
    if (await waitForLine(proc, /Ready to accept connections/, 10_000)) {
      const node: ClusterNode = {
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
            if (await waitForLine(proc, /Ready to accept connections/, 10_000)) break
            await stopProcess(proc)
            if (i >= 5) throw new Error(`redis cluster node on port ${port} did not restart`)
            await sleep(300)
          }
          await waitClusterOk(port)
        }
      }
      return node
    }
    await stopProcess(proc)
    fs.rmSync(dir, { recursive: true, force: true })
    if (attempt >= 3) throw new Error(`redis-server (cluster mode) did not start on port ${port}`)
  }
}

async function redisCli (args: string[]): Promise<string> {
  return await new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`redis-cli ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`))
      else resolve(stdout)
    })
  })
}

/** Waits until the node sees every slot served (cluster_state:ok). */
export async function waitClusterOk (port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    try {
      last = await redisCli(['-p', String(port), 'cluster', 'info'])
      if (/cluster_state:ok/.test(last)) return
    } catch (err) {
      last = (err as Error).message
    }
    await sleep(100)
  }
  throw new Error(`redis cluster node ${port} is not ok after ${timeoutMs} ms: ${last}`)
}
