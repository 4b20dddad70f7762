// A WebSocket stream client for tests: sends JSON or binary frames and resolves each frame's ack.
import WebSocket from 'ws'
import { ACK_ERROR, ACK_OK, encodeBinaryFrame, type StreamOp } from '../../src/core/binary-frame'

export interface Ack { seq: number, ok: boolean, error?: { code: string, message: string } }

export class StreamClient {
  private readonly waiting = new Map<number, (ack: Ack) => void>()
  readonly closed: Promise<{ code: number, reason: string }>

  private constructor (readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      let ack: Ack
      if (isBinary) {
        const seq = data.readUInt32LE(1)
        if (data[0] === ACK_OK) ack = { seq, ok: true }
        else if (data[0] === ACK_ERROR) ack = { seq, ok: false, error: JSON.parse(data.subarray(5).toString('utf8')) }
        else throw new Error(`unknown ack kind ${data[0]}`)
      } else {
        const m = JSON.parse(data.toString('utf8')) as { seq: number, ok?: boolean, error?: Ack['error'] }
        ack = { seq: m.seq, ok: m.ok === true, error: m.error }
      }
      const resolve = this.waiting.get(ack.seq)
      if (resolve !== undefined) {
        this.waiting.delete(ack.seq)
        resolve(ack)
      }
    })
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })))
  }

  static async connect (base: string, clientId?: string): Promise<StreamClient> {
    const url = base.replace('http', 'ws') + '/v1/stream' + (clientId === undefined ? '' : `?clientId=${clientId}`)
    const ws = new WebSocket(url)
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
    return new StreamClient(ws)
  }

  private expect (seq: number): Promise<Ack> {
    return new Promise((resolve, reject) => {
      this.waiting.set(seq, resolve)
      void this.closed.then(({ code, reason }) => reject(new Error(`closed ${code} ${reason} before ack of ${seq}`)))
    })
  }

  sendBinary (seq: number, ops: readonly StreamOp[]): Promise<Ack> {
    const ack = this.expect(seq)
    this.ws.send(encodeBinaryFrame(seq, ops))
    return ack
  }

  sendJson (seq: number, ops: Array<[string, string, number?, string?]>): Promise<Ack> {
    const ack = this.expect(seq)
    this.ws.send(JSON.stringify({ seq, ops }))
    return ack
  }

  /** Raw frame whose ack carries `seq` (for malformed-frame tests). */
  sendRaw (data: Buffer | string, seq: number): Promise<Ack> {
    const ack = this.expect(seq)
    this.ws.send(data)
    return ack
  }

  close (): void { this.ws.close() }
}
