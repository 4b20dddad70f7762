// A raw Redis-protocol client for tests: writes exactly the bytes a test gives (pipelines,
// malformed streams) and reads replies with its own small parser, independent of the server's
// codec. Replies: simple strings as {ok: text}, errors as {err: text}, integers as numbers, bulk
// strings as strings, nulls as null, arrays/sets as arrays, maps as Map.
import net from 'node:net'
import type { TeardownHost } from './redis'

export type Reply = { ok: string } | { err: string } | number | string | null | Reply[] | Map<string, Reply>

export interface RespClient {
  socket: net.Socket
  /** Sends commands (each an array of arguments) as multibulk, in one write. */
  send: (...commands: Array<Array<string | number>>) => void
  sendRaw: (bytes: string | Buffer) => void
  /** The next n replies, in order. */
  read: (n: number) => Promise<Reply[]>
  /** Sends and reads one reply per command. */
  call: (...args: Array<string | number>) => Promise<Reply>
  pipeline: (commands: Array<Array<string | number>>) => Promise<Reply[]>
  /** Resolves when the server closed the connection; with every byte it sent. */
  closed: Promise<void>
  received: () => Buffer
}

export function encodeCommand (args: Array<string | number>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = Buffer.from(String(a))
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

/** Parses one reply at buf[o]; returns [reply, next offset] or null when incomplete. */
export function parseReply (buf: Buffer, o: number): [Reply, number] | null {
  const nl = buf.indexOf('\r\n', o)
  if (nl < 0) return null
  const type = String.fromCharCode(buf[o])
  const line = buf.toString('utf8', o + 1, nl)
  const after = nl + 2
  switch (type) {
    case '+': return [{ ok: line }, after]
    case '-': return [{ err: line }, after]
    case ':': return [Number(line), after]
    case '_': return [null, after]
    case '#': return [line === 't' ? 1 : 0, after]
    case ',': return [Number(line), after]
    case '$': case '=': {
      const n = Number(line)
      if (n < 0) return [null, after]
      if (buf.length < after + n + 2) return null
      const s = buf.toString('utf8', after + (type === '=' ? 4 : 0), after + n)
      return [s, after + n + 2]
    }
    case '*': case '~': case '>': case '%': {
      const n = Number(line)
      if (n < 0) return [null, after]
      const count = type === '%' ? n * 2 : n
      const items: Reply[] = []
      let p = after
      for (let i = 0; i < count; i++) {
        const r = parseReply(buf, p)
        if (r === null) return null
        items.push(r[0])
        p = r[1]
      }
      if (type !== '%') return [items, p]
      const m = new Map<string, Reply>()
      for (let i = 0; i < items.length; i += 2) m.set(String(items[i]), items[i + 1])
      return [m, p]
    }
    default: throw new Error(`not a RESP reply type: ${JSON.stringify(type)} at ${o}`)
  }
}

export async function connectResp (t: TeardownHost, port: number): Promise<RespClient> {
  const socket = net.connect({ host: '127.0.0.1', port })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  let buf = Buffer.alloc(0)
  let all: Buffer[] = []
  let waiter: (() => void) | null = null
  socket.on('data', (c: Buffer) => { buf = Buffer.concat([buf, c]); all.push(c); waiter?.() })
  const closed = new Promise<void>((resolve) => socket.once('close', () => { waiter?.(); resolve() }))
  socket.on('error', () => {})
  t.teardown(() => { socket.destroy() })
  const read = async (n: number): Promise<Reply[]> => {
    const out: Reply[] = []
    while (out.length < n) {
      const r = parseReply(buf, 0)
      if (r !== null) { out.push(r[0]); buf = buf.subarray(r[1]); continue }
      if (socket.destroyed || socket.readableEnded) throw new Error(`connection closed after ${out.length} of ${n} replies`)
      await new Promise<void>((resolve) => { waiter = resolve })
      waiter = null
    }
    return out
  }
  const client: RespClient = {
    socket,
    send: (...commands) => { socket.write(Buffer.concat(commands.map(encodeCommand))) }, // keep to thousands: spread arguments
    sendRaw: (bytes) => { socket.write(bytes) },
    read,
    call: async (...args) => { client.send(args); return (await read(1))[0] },
    pipeline: async (commands) => { client.send(...commands); return await read(commands.length) },
    closed,
    received: () => { const b = Buffer.concat(all); all = [b]; return b }
  }
  return client
}
