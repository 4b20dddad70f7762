// Runs one uWS server on several worker threads of one process (the bare HTTP peer, the WebSocket
// ceiling): each thread has its own uws.App() and event loop, nothing shared, so the process can
// use every core without a lock or a message on the request path.
//
// Every thread listens on the same port, as counterd's shards do: uWS sets SO_REUSEPORT on a
// listen socket with a given port (not on port 0, whose ephemeral port it keeps exclusive), and
// the kernel spreads connections over the threads. For PORT=0 the main thread first asks the
// kernel for a free port.
//
// The process prints one line {"msg":"listening","port":P,"ports":[P,…]} when every thread
// listens (what bench/node-service.ts waits for) and exits on SIGTERM.
import type * as UWS from '@trufflesuite/uws-js-unofficial'
import { Worker } from 'node:worker_threads'
import os from 'node:os'
import { freePort } from '../src/node/free-port'

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const uws: typeof UWS = require('@trufflesuite/uws-js-unofficial')

export interface ThreadData {
  /** 0 … threads-1 */
  index: number
  host: string
  port: number
}

/** WORKERS from the environment (like counterd's), else one thread per core. */
export function threadCount (): number {
  const n = Number(process.env.WORKERS ?? os.availableParallelism())
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new RangeError(`WORKERS must be an integer 1..256, got ${String(process.env.WORKERS)}`)
  return n
}

/** Worker side: listen, then tell the main thread the port (or the failure). */
export function listenAndReport (app: UWS.TemplatedApp, data: ThreadData, report: (m: { kind: 'listening', port: number } | { kind: 'error', message: string }) => void): void {
  app.listen(data.host, data.port, (socket) => {
    if (socket === false) report({ kind: 'error', message: `thread ${data.index} cannot listen on ${data.host}:${data.port}` })
    else report({ kind: 'listening', port: uws.us_socket_local_port(socket) })
  })
}

/**
 * Main side: starts `threads` workers running `script` (which must call listenAndReport with the
 * ThreadData it gets as workerData), waits until all listen, prints the listening line, and
 * hands every later message of a worker to `onMessage`.
 */
export async function startThreads (script: string, onMessage: (index: number, msg: unknown) => void = () => {}): Promise<Worker[]> {
  const threads = threadCount()
  const host = process.env.HOST ?? '127.0.0.1'
  const given = Number(process.env.PORT ?? '0')
  const port = given !== 0 ? given : await freePort(host)
  const workers: Worker[] = []
  const ports: number[] = []
  for (let index = 0; index < threads; index++) {
    const data: ThreadData = { index, host, port }
    const w = new Worker(script, { workerData: data })
    workers.push(w)
    ports.push(await new Promise<number>((resolve, reject) => {
      w.once('error', reject)
      // One handler for the thread's life: the first message says whether it listens, the
      // others (answers to the main thread's requests) go to onMessage.
      let listening = false
      w.on('message', (m: { kind?: string, port?: number, message?: string }) => {
        if (listening) { onMessage(index, m); return }
        listening = true
        if (m.kind === 'listening' && typeof m.port === 'number') resolve(m.port)
        else reject(new Error(m.message ?? `thread ${index} did not listen`))
      })
    }))
    // A thread that dies takes its share of the connections with it: stop the whole process.
    w.on('error', (e) => { process.stderr.write(`thread ${index}: ${e.stack ?? e.message}\n`); process.exit(1) })
  }
  process.stdout.write(JSON.stringify({ msg: 'listening', port: ports[0], ports, threads, host }) + '\n')
  process.on('SIGTERM', () => process.exit(0))
  return workers
}
