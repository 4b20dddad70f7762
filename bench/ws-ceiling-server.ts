// The WebSocket ceiling for the ws-stream suite: a uWS server that accepts counterd's binary
// `/v1/stream` frames (docs/stream-protocol.md: u8 kind | u32 seq | u16 nOps | ops) and acks each
// one at once with the 5-byte ok ack (0x81 | u32 seq), applying nothing and decoding no op. It is
// what the same load generator reaches when the server does nothing but receive frames and write
// acks: counterd ÷ ceiling is the share of that left after decoding, routing, applying and (with
// ack=durable) the fsync. Run as its own process:
//   WORKERS=2 PORT=0 node dist/bench/ws-ceiling-server.js
// WORKERS threads (default: one per core), each its own uws.App() on its own port (see
// bench/uws-threads.ts); it prints {"msg":"listening","port":P0,"ports":[…]} and exits on SIGTERM.
import { isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { listenAndReport, startThreads, uws, type ThreadData } from './uws-threads'

const KIND_INCREMENTS = 0x01
const ACK_OK = 0x81
const ACK_ERROR = 0x82
const HEADER_BYTES = 7
// counterd's default MAX_FRAME_BYTES
const MAX_FRAME_BYTES = 1024 * 1024

function worker (data: ThreadData, port: MessagePort): void {
  // uWS copies what it sends, so one ack buffer per thread is reused for every frame.
  const ack = new Uint8Array(5)
  ack[0] = ACK_OK
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
      if (frame[0] !== KIND_INCREMENTS) {
        const err = Buffer.concat([Buffer.from([ACK_ERROR]), Buffer.from(frame.subarray(1, 5)),
          Buffer.from(JSON.stringify({ code: 'malformed_frame', message: `unknown kind ${frame[0]}` }))])
        ws.send(err, true)
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
