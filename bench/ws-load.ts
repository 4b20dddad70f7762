// WebSocket stream load generator. Frames are prebuilt once (templates, each a complete client
// frame holding many increments); the seq of template t is t, and a connection never has the same
// template in flight twice, so every ack names exactly one frame and the acked increments are
// counted exactly, per template. Each connection keeps at most `framesInFlight` frames
// unacknowledged; an ack immediately releases the next send. Connections can be spread over
// worker threads, and over several URLs (a server with one port per thread). After the duration
// no new frame is sent and every in-flight frame is waited for, so acked counts are final when
// the run returns.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { performance } from 'node:perf_hooks'
import { ACK_ERROR, ACK_OK, encodeFrame, type Op } from '../client/frame-codec'
import { LatencyHistogram } from './histogram'
import { clientFrame, RawWebSocket } from './ws-raw-client'
import type { ZipfKeys } from './zipf'

export interface StreamTemplates {
  /** complete client WebSocket frames; template t carries seq t */
  frames: Buffer[]
  /** for template t, the id index of each op (every op adds 1 to `${type}:${id}`) */
  ids: Uint32Array[]
  type: string
  opsPerFrame: number
}

/** Builds `count` frames of `opsPerFrame` increments (+1 each) on Zipf-picked ids of one type. */
export function buildStreamTemplates (o: { count: number, opsPerFrame: number, type: string, keys: ZipfKeys, idPrefix?: string }): StreamTemplates {
  if (o.count < 1 || o.count > 0xffff) throw new RangeError(`template count must be 1..65535, got ${o.count}`)
  const frames: Buffer[] = []
  const ids: Uint32Array[] = []
  const prefix = o.idPrefix ?? ''
  for (let t = 0; t < o.count; t++) {
    const picks = o.keys.table(o.opsPerFrame)
    const ops: Op[] = Array.from(picks, id => [o.type, prefix + String(id), 1] as const)
    frames.push(clientFrame(encodeFrame(t, ops)))
    ids.push(picks)
  }
  return { frames, ids, type: o.type, opsPerFrame: o.opsPerFrame }
}

/** Expected value per id after a run: Σ over templates of (acks × occurrences in the template). */
export function expectedValues (templates: StreamTemplates, acks: Float64Array, nIds: number): Float64Array {
  const out = new Float64Array(nIds)
  for (let t = 0; t < templates.ids.length; t++) {
    const a = acks[t]
    if (a === 0) continue
    const ids = templates.ids[t]
    for (let i = 0; i < ids.length; i++) out[ids[i]] += a
  }
  return out
}

export interface WsLoadOptions {
  url: string
  /** several URLs instead (a server with one port per thread): connection i uses urls[i mod n] */
  urls?: string[]
  connections: number
  framesInFlight: number
  /** complete client frames; the payload seq of frames[t] must be t */
  frames: Buffer[]
  durationMs: number
  /** how long to wait for the last acks after the duration */
  drainTimeoutMs?: number
  /** worker threads to spread connections over (1 = this thread) */
  threads?: number
}

export interface WsLoadResult {
  /** ok acks per template */
  acks: Float64Array
  framesSent: number
  framesAcked: number
  /** error acks by code */
  errorAcks: Record<string, number>
  /** frames never answered (drain timed out or connection lost): their fate is unknown */
  unanswered: number
  /** acks for frames that were not in flight: a protocol violation */
  strayAcks: number
  /** connections closed before the end, with code and reason */
  closes: string[]
  /** first send → last answer, the slowest thread */
  elapsedMs: number
  latency: LatencyHistogram
}

interface ThreadResult {
  acks: Float64Array
  framesSent: number
  framesAcked: number
  errorAcks: Record<string, number>
  unanswered: number
  strayAcks: number
  closes: string[]
  elapsedMs: number
  histogram: Float64Array
  maxMicros: number
}

interface Conn {
  ws: RawWebSocket
  inFlight: Uint8Array
  sentAt: Float64Array
  count: number
  cursor: number
  open: boolean
}

interface Session {
  conns: Conn[]
  state: ThreadResult & { sending: boolean, lastAnswer: number, onIdle: () => void }
  latency: LatencyHistogram
  start: () => void
}

async function connectAll (o: WsLoadOptions, connections: number, firstIndex: number): Promise<Session> {
  const T = o.frames.length
  if (o.framesInFlight >= T) throw new RangeError(`framesInFlight (${o.framesInFlight}) must be below the template count (${T})`)
  const latency = new LatencyHistogram()
  const state = {
    acks: new Float64Array(T),
    framesSent: 0,
    framesAcked: 0,
    errorAcks: {} as Record<string, number>,
    unanswered: 0,
    strayAcks: 0,
    closes: [] as string[],
    elapsedMs: 0,
    histogram: latency.counts,
    maxMicros: 0,
    sending: false,
    lastAnswer: 0,
    onIdle: () => {}
  }
  const conns: Conn[] = []
  const fill = (c: Conn): void => {
    while (state.sending && c.open && c.count < o.framesInFlight) {
      let t = c.cursor
      while (c.inFlight[t] === 1) t = t + 1 === T ? 0 : t + 1
      c.cursor = t + 1 === T ? 0 : t + 1
      c.inFlight[t] = 1
      c.count++
      c.sentAt[t] = performance.now()
      state.framesSent++
      c.ws.sendFrame(o.frames[t])
    }
  }
  const answered = (c: Conn, t: number): boolean => {
    if (t >= T || c.inFlight[t] === 0) {
      state.strayAcks++
      return false
    }
    c.inFlight[t] = 0
    c.count--
    const now = performance.now()
    state.lastAnswer = now
    latency.record((now - c.sentAt[t]) * 1000)
    return true
  }
  for (let i = 0; i < connections; i++) {
    const c: Conn = {
      ws: undefined as unknown as RawWebSocket,
      inFlight: new Uint8Array(T),
      sentAt: new Float64Array(T),
      count: 0,
      // Spread connections over the templates so they do not all send the same frames at once.
      cursor: Math.floor((firstIndex + i) * T / Math.max(1, o.connections * 2)) % T,
      open: true
    }
    const urls = o.urls ?? [o.url]
    c.ws = await RawWebSocket.connect(urls[(firstIndex + i) % urls.length], {
      onMessage: (payload) => {
        if (payload.length < 5) { state.strayAcks++; return }
        const t = payload.readUInt32LE(1)
        if (payload[0] === ACK_OK) {
          if (answered(c, t)) { state.acks[t]++; state.framesAcked++ }
        } else if (payload[0] === ACK_ERROR) {
          if (answered(c, t)) {
            let code = 'unparseable_error_ack'
            try { code = String((JSON.parse(payload.toString('utf8', 5)) as { code: unknown }).code) } catch {}
            state.errorAcks[code] = (state.errorAcks[code] ?? 0) + 1
          }
        } else {
          state.strayAcks++
        }
        if (state.sending) fill(c)
        else if (c.count === 0) state.onIdle()
      },
      onClose: (code, reason) => {
        c.open = false
        if (state.sending || c.count > 0) state.closes.push(`${code} ${reason}`)
        state.onIdle()
      }
    })
    conns.push(c)
  }
  const start = (): void => {
    state.sending = true
    for (const c of conns) {
      c.ws.socket.cork()
      fill(c)
      c.ws.socket.uncork()
    }
  }
  return { conns, state, latency, start }
}

async function runConnections (o: WsLoadOptions, connections: number, firstIndex: number, go: Promise<void>, onConnected: () => void): Promise<ThreadResult> {
  const { conns, state, latency, start } = await connectAll(o, connections, firstIndex)
  onConnected()
  await go
  const t0 = performance.now()
  state.lastAnswer = t0
  start()
  await new Promise(resolve => setTimeout(resolve, o.durationMs))
  state.sending = false
  const inFlight = (): number => conns.reduce((n, c) => n + (c.open ? c.count : 0), 0)
  if (inFlight() > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, o.drainTimeoutMs ?? 30_000)
      state.onIdle = () => {
        if (inFlight() === 0) { clearTimeout(timer); resolve() }
      }
    })
  }
  state.unanswered = conns.reduce((n, c) => n + c.count, 0)
  state.elapsedMs = state.lastAnswer - t0
  for (const c of conns) c.ws.close()
  return {
    acks: state.acks,
    framesSent: state.framesSent,
    framesAcked: state.framesAcked,
    errorAcks: state.errorAcks,
    unanswered: state.unanswered,
    strayAcks: state.strayAcks,
    closes: state.closes,
    elapsedMs: state.elapsedMs,
    histogram: latency.counts,
    maxMicros: latency.maxMicros
  }
}

function merge (parts: ThreadResult[], templates: number): WsLoadResult {
  const latency = new LatencyHistogram()
  const out: WsLoadResult = {
    acks: new Float64Array(templates),
    framesSent: 0,
    framesAcked: 0,
    errorAcks: {},
    unanswered: 0,
    strayAcks: 0,
    closes: [],
    elapsedMs: 0,
    latency
  }
  for (const p of parts) {
    for (let t = 0; t < templates; t++) out.acks[t] += p.acks[t]
    out.framesSent += p.framesSent
    out.framesAcked += p.framesAcked
    for (const [k, v] of Object.entries(p.errorAcks)) out.errorAcks[k] = (out.errorAcks[k] ?? 0) + v
    out.unanswered += p.unanswered
    out.strayAcks += p.strayAcks
    out.closes.push(...p.closes)
    out.elapsedMs = Math.max(out.elapsedMs, p.elapsedMs)
    const h = new LatencyHistogram(p.histogram)
    h.maxMicros = p.maxMicros
    latency.merge(h)
  }
  return out
}

/** Runs the load; with threads > 1 the connections are split over worker threads. */
export async function runWsLoad (o: WsLoadOptions): Promise<WsLoadResult> {
  const threads = Math.max(1, Math.min(o.threads ?? 1, o.connections))
  if (threads === 1) {
    const r = await runConnections(o, o.connections, 0, Promise.resolve(), () => {})
    return merge([r], o.frames.length)
  }
  const workers: Worker[] = []
  const connected: Array<Promise<void>> = []
  const results: Array<Promise<ThreadResult>> = []
  let first = 0
  for (let i = 0; i < threads; i++) {
    const share = Math.floor(o.connections / threads) + (i < o.connections % threads ? 1 : 0)
    const w = new Worker(__filename, { workerData: { options: o, connections: share, firstIndex: first } })
    first += share
    workers.push(w)
    connected.push(new Promise((resolve, reject) => {
      w.once('error', reject)
      w.once('message', (m: { kind: string }) => { if (m.kind === 'connected') resolve() })
    }))
  }
  await Promise.all(connected)
  for (const w of workers) {
    results.push(new Promise((resolve, reject) => {
      w.once('error', reject)
      w.on('message', (m: { kind: string, result?: ThreadResult }) => { if (m.kind === 'done' && m.result !== undefined) resolve(m.result) })
    }))
    w.postMessage({ kind: 'go' })
  }
  const parts = await Promise.all(results)
  await Promise.all(workers.map(async w => await w.terminate()))
  return merge(parts, o.frames.length)
}

if (!isMainThread && parentPort !== null && (workerData as { options?: unknown })?.options !== undefined) {
  const port = parentPort
  const d = workerData as { options: WsLoadOptions, connections: number, firstIndex: number }
  // Buffers arrive as Uint8Arrays after the structured clone.
  const frames = d.options.frames.map(f => Buffer.from(f.buffer, f.byteOffset, f.byteLength))
  let release: () => void = () => {}
  const go = new Promise<void>((resolve) => { release = resolve })
  port.on('message', (m: { kind: string }) => { if (m.kind === 'go') release() })
  runConnections({ ...d.options, frames }, d.connections, d.firstIndex, go, () => port.postMessage({ kind: 'connected' }))
    .then((result) => port.postMessage({ kind: 'done', result }))
    .catch((e: unknown) => { throw e })
}

export interface PushOptions {
  url: string
  connections: number
  framesInFlight: number
  /** number of frames to deliver */
  count: number
  /** payload of frame i (encodeFrame output; its seq is overwritten) */
  payload: (i: number) => Buffer
  /** give up on a frame after this many retriable error acks */
  maxRetries?: number
}

export interface PushResult {
  acked: number
  /** frames refused for good, by error code */
  refused: Record<string, number>
  retries: number
  elapsedMs: number
}

const RETRIABLE = new Set(['overloaded', 'not_ready', 'storage_unavailable'])

/**
 * Delivers frames 0..count-1 once each (loading data for the memory and recovery suites):
 * each connection keeps a bounded number in flight; a frame refused with a retriable error is
 * sent again, so when this resolves every frame is either acknowledged or counted as refused.
 */
export async function pushFrames (o: PushOptions): Promise<PushResult> {
  const started = performance.now()
  const result: PushResult = { acked: 0, refused: {}, retries: 0, elapsedMs: 0 }
  const retryQueue: number[] = []
  const attempts = new Map<number, number>()
  let next = 0
  let outstanding = o.count
  let fail: (e: Error) => void = () => {}
  let finish: () => void = () => {}
  const done = new Promise<void>((resolve, reject) => { finish = resolve; fail = reject })
  const frameOf = (i: number): Buffer => {
    const p = o.payload(i)
    p.writeUInt32LE(i, 1)
    return clientFrame(p)
  }
  const sockets: RawWebSocket[] = []
  const inFlight: number[] = []
  const pump = (k: number): void => {
    while (inFlight[k] < o.framesInFlight) {
      const i = retryQueue.length > 0 ? retryQueue.shift() as number : next < o.count ? next++ : -1
      if (i < 0) return
      inFlight[k]++
      sockets[k].sendFrame(frameOf(i))
    }
  }
  for (let k = 0; k < o.connections; k++) {
    inFlight.push(0)
    sockets.push(await RawWebSocket.connect(o.url, {
      onMessage: (payload) => {
        inFlight[k]--
        const i = payload.readUInt32LE(1)
        if (payload[0] === ACK_OK) {
          result.acked++
          outstanding--
        } else {
          let code = 'unparseable_error_ack'
          try { code = String((JSON.parse(payload.toString('utf8', 5)) as { code: unknown }).code) } catch {}
          const n = (attempts.get(i) ?? 0) + 1
          attempts.set(i, n)
          if (RETRIABLE.has(code) && n <= (o.maxRetries ?? 100)) {
            result.retries++
            retryQueue.push(i)
          } else {
            result.refused[code] = (result.refused[code] ?? 0) + 1
            outstanding--
          }
        }
        if (outstanding === 0) finish()
        else pump(k)
      },
      onClose: (code, reason) => { if (outstanding > 0) fail(new Error(`stream closed with ${code} ${reason} while loading`)) }
    }))
  }
  for (let k = 0; k < sockets.length; k++) pump(k)
  if (o.count === 0) finish()
  try {
    await done
  } finally {
    for (const s of sockets) s.close()
  }
  result.elapsedMs = performance.now() - started
  return result
}
