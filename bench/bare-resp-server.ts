// The ceiling of a Redis-protocol counter service in Node on this machine: one thread, node:net,
// a minimal RESP parser, counts in a Map, no durability and no workers. Per chunk a socket
// delivers it parses every whole command and answers them all with one write (what any
// pipelining-aware server does). Commands: INCR key (the new value), CONFIG GET (an empty array,
// for redis-benchmark's start-up probe), PING, and SUMPREFIX prefix (the sum of the counters whose
// key starts with prefix: the suite's exactness check). Run as its own process:
//   PORT=0 node dist/bench/bare-resp-server.js
// It prints one JSON line {"msg":"listening","port":N}, and exits on SIGTERM.
import net from 'node:net'

const counts = new Map<string, number>()
let out = Buffer.allocUnsafe(64 * 1024)
let outLen = 0

function put (s: string): void {
  if (outLen + s.length > out.length) {
    const b = Buffer.allocUnsafe(Math.max(out.length * 2, outLen + s.length))
    out.copy(b, 0, 0, outLen)
    out = b
  }
  outLen += out.write(s, outLen, 'latin1')
}

/** `\d+\r\n` at buf[i…]: the number, with `at` set after the line; -1 when the line is not whole. */
let at = 0
function lineInt (buf: Buffer, i: number, end: number): number {
  let n = 0
  for (; i < end; i++) {
    const c = buf[i]
    if (c === 13) {
      if (i + 1 >= end) return -1
      at = i + 2
      return n
    }
    n = n * 10 + (c - 48)
  }
  return -1
}

const argStart: number[] = []
const argLen: number[] = []

/** Parses one multibulk command at buf[o]: the offset after it, or -1 when it is not whole. */
function parse (buf: Buffer, o: number, end: number): number {
  if (buf[o] !== 0x2a) throw new Error('not a multibulk command')
  const count = lineInt(buf, o + 1, end)
  if (count < 0) return -1
  let p = at
  argStart.length = 0
  argLen.length = 0
  for (let i = 0; i < count; i++) {
    if (p >= end) return -1
    const len = lineInt(buf, p + 1, end)
    if (len < 0 || at + len + 2 > end) return -1
    argStart.push(at)
    argLen.push(len)
    p = at + len + 2
  }
  return p
}

function is (buf: Buffer, i: number, word: string): boolean {
  if (argLen[i] !== word.length) return false
  for (let k = 0; k < word.length; k++) if ((buf[argStart[i] + k] | 0x20) !== word.charCodeAt(k)) return false
  return true
}

function execute (buf: Buffer): void {
  if (is(buf, 0, 'incr') && argStart.length === 2) {
    const key = buf.toString('latin1', argStart[1], argStart[1] + argLen[1])
    const v = (counts.get(key) ?? 0) + 1
    counts.set(key, v)
    put(`:${v}\r\n`)
  } else if (is(buf, 0, 'config')) {
    put('*0\r\n')
  } else if (is(buf, 0, 'ping')) {
    put('+PONG\r\n')
  } else if (is(buf, 0, 'sumprefix') && argStart.length === 2) {
    const prefix = buf.toString('latin1', argStart[1], argStart[1] + argLen[1])
    let sum = 0
    for (const [k, v] of counts) if (k.startsWith(prefix)) sum += v
    put(`:${sum}\r\n`)
  } else {
    put('-ERR unknown command\r\n')
  }
}

const server = net.createServer({ noDelay: true }, (socket) => {
  let rest: Buffer | null = null
  socket.on('data', (chunk: Buffer) => {
    const buf = rest === null ? chunk : Buffer.concat([rest, chunk])
    rest = null
    let o = 0
    try {
      while (o < buf.length) {
        const next = parse(buf, o, buf.length)
        if (next < 0) break
        execute(buf)
        o = next
      }
    } catch {
      socket.destroy()
      return
    }
    if (o < buf.length) rest = Buffer.from(buf.subarray(o))
    if (outLen > 0) {
      socket.write(Buffer.from(out.subarray(0, outLen)))
      outLen = 0
    }
  })
  socket.on('error', () => {})
})

server.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 0) }, () => {
  process.stdout.write(JSON.stringify({ msg: 'listening', port: (server.address() as net.AddressInfo).port }) + '\n')
})
process.on('SIGTERM', () => { server.close(); process.exit(0) })
