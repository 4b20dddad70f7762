// The WebSocket ceiling for the ws-stream suite: a uWS server that accepts counterd's binary
// `/v1/stream` frames (docs/stream-protocol.md), decodes and validates each one whole with
// counterd's own decoder (every server of this protocol must), and acks it at once with the
// 5-byte ok ack (0x81 | u32 seq), applying nothing. It is what the same load generator reaches
// when the server does no more than receive, check and ack frames: counterd ÷ ceiling is the share
// of that left after routing, applying and (with ack=durable) the fsync. Run as its own process:
//   WORKERS=2 PORT=0 node dist/bench/ws-ceiling-server.js
// WORKERS threads (default: one per core) on one port (see bench/uws-threads.ts); it prints
// {"msg":"listening","port":P,"ports":[…]} and exits on SIGTERM.
import { isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { ACK_OK, HEADER_BYTES, decodeBinaryFrame, encodeAckError } from '../src/core/binary-frame'
import { FrameOps } from '../src/core/frame-ops'
import { listenAndReport, startThreads, uws, type ThreadData } from './uws-threads'

// counterd's defaults: MAX_FRAME_BYTES, MAX_OPS_PER_FRAME
const MAX_FRAME_BYTES = 1024 * 1024
const MAX_OPS_PER_FRAME = 10_000

function worker (data: ThreadData, port: MessagePort): void {
  // uWS copies what it sends, so one ack buffer per thread is reused for every frame.
  const ack = new Uint8Array(5)
  ack[0] = ACK_OK
  const ops = new FrameOps(MAX_OPS_PER_FRAME)
  const app = uws.App()
  app.ws('/v1/stream', {
    compression: uws.DISABLED,
    // counterd's own settings for the stream (src/front/stream.ts)
    maxPayloadLength: MAX_FRAME_BYTES * 4,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    message: (ws, message, isBinary) => {
      const frame = new Uint8Array(message)
      if (!isBinary || frame.length < HEADER_BYTES) {
        ws.end(1007, 'expected a binary frame of at least its 7-byte header')
        return
      }
      const bad = decodeBinaryFrame(frame, ops)
      if (bad !== null) {
        ws.send(encodeAckError(ops.seq, bad.toWire()), true)
        return
      }
      // The seq is echoed byte for byte (little-endian in both).
      ack[1] = frame[1]
      ack[2] = frame[2]
      ack[3] = frame[3]
      ack[4] = frame[4]
      ws.send(ack, true)
    }
  })
  app.any('/*', (res) => {
    res.writeStatus('404 Not Found').end('{"error":{"code":"not_found","message":"only /v1/stream"}}')
  })
  listenAndReport(app, data, (m) => port.postMessage(m))
}

if (isMainThread) {
  if (require.main === module) {
    startThreads(__filename).catch((e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`)
      process.exit(1)
    })
  }
} else if (parentPort !== null) {
  worker(workerData as ThreadData, parentPort)
}
