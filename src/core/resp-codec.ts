// The Redis serialization protocol (RESP2 and RESP3), as a pure codec: commands are parsed in
// place from the bytes a socket delivered (each argument is an offset and a length into that
// buffer, no string per argument), and replies are written into a ByteSink. The connection and
// command handling that uses it lives in src/front/resp.ts.
import { CounterdError } from './errors'
import type { ByteSink } from './op-codec'

// Limits of one command. Redis allows bulk arguments up to 512 MiB; every argument counterd has a
// use for is a key (≤ 161 bytes), an integer or a short name, so a far smaller cap bounds what a
// connection can make the node buffer.
export const MAX_MULTIBULK = 1024 * 1024 // arguments per command (Redis' own limit)
export const MAX_BULK_BYTES = 1024 * 1024 // bytes per argument
export const MAX_INLINE_BYTES = 64 * 1024 // an inline command's line (Redis' own limit)
export const MAX_COMMAND_BYTES = 64 * 1024 * 1024 // a whole command

/** The result of parseCommand when the buffer ends inside a command: read more bytes first. */
export const INCOMPLETE = -1

const CR = 13
const LF = 10

/** One parsed command: argument i is buf[start[i] … start[i] + len[i]). Reused from command to command. */
export class RespCommand {
  argc = 0
  start = new Int32Array(16)
  len = new Int32Array(16)
  /** After INCOMPLETE: the command needs at least this many bytes from where it starts. */
  need = 0

  push (start: number, len: number): void {
    if (this.argc === this.start.length) {
      const n = this.argc * 2
      const s = new Int32Array(n); s.set(this.start); this.start = s
      const l = new Int32Array(n); l.set(this.len); this.len = l
    }
    this.start[this.argc] = start
    this.len[this.argc] = len
    this.argc++
  }
}

function protocolError (message: string): CounterdError {
  return new CounterdError('protocol_error', `Protocol error: ${message}`)
}

/**
 * Reads `\d+\r\n` (with an optional '-') at buf[o…]: the value, or NaN when it is not a number,
 * and where the line ends (or INCOMPLETE).
 */
let lineEnd = 0
function readLineInt (buf: Uint8Array, o: number, end: number): number {
  let neg = false
  let i = o
  if (i < end && buf[i] === 0x2d) { neg = true; i++ }
  let n = 0
  let digits = 0
  for (; i < end; i++) {
    const c = buf[i]
    if (c === CR) {
      if (i + 1 >= end) { lineEnd = INCOMPLETE; return 0 }
      if (buf[i + 1] !== LF || digits === 0) { lineEnd = i + 2; return NaN }
      lineEnd = i + 2
      return neg ? -n : n
    }
    if (c < 0x30 || c > 0x39 || digits > 15) { lineEnd = i; return NaN }
    n = n * 10 + (c - 0x30)
    digits++
  }
  lineEnd = INCOMPLETE
  return 0
}

/**
 * Parses the command starting at buf[o] (a multibulk array, or an inline line as telnet sends).
 * Returns the offset after it, or INCOMPLETE (cmd.need says how many bytes it needs at least).
 * A command with no arguments (an empty line, `*0`) parses with argc 0. Throws a CounterdError
 * `protocol_error` on bytes that are not RESP: the stream cannot be resynchronised after that.
 */
export function parseCommand (buf: Uint8Array, o: number, end: number, cmd: RespCommand): number {
  cmd.argc = 0
  if (buf[o] !== 0x2a) return parseInline(buf, o, end, cmd)
  const count = readLineInt(buf, o + 1, end)
  if (lineEnd === INCOMPLETE) {
    if (end - o > 32) throw protocolError('invalid multibulk length')
    cmd.need = end - o + 1
    return INCOMPLETE
  }
  if (Number.isNaN(count) || count > MAX_MULTIBULK) throw protocolError('invalid multibulk length')
  let p = lineEnd
  if (count <= 0) return p
  for (let i = 0; i < count; i++) {
    if (p >= end) { cmd.need = p - o + 1; return INCOMPLETE }
    if (buf[p] !== 0x24) throw protocolError(`expected '$', got '${String.fromCharCode(buf[p])}'`)
    const len = readLineInt(buf, p + 1, end)
    if (lineEnd === INCOMPLETE) {
      if (end - p > 32) throw protocolError('invalid bulk length')
      cmd.need = end - o + 1
      return INCOMPLETE
    }
    if (Number.isNaN(len) || len < 0 || len > MAX_BULK_BYTES) throw protocolError('invalid bulk length')
    const start = lineEnd
    const after = start + len + 2
    if (after - o > MAX_COMMAND_BYTES) throw protocolError('command too large')
    if (after > end) {
      // The rest of this argument, its CRLF, and at least a byte of each argument still to come.
      cmd.need = after - o + (count - i - 1) * 4
      return INCOMPLETE
    }
    if (buf[start + len] !== CR || buf[start + len + 1] !== LF) throw protocolError('bulk argument not followed by CRLF')
    cmd.push(start, len)
    p = after
  }
  return p
}

/** An inline command: one line, arguments separated by spaces (no quoting, unlike redis-cli's). */
function parseInline (buf: Uint8Array, o: number, end: number, cmd: RespCommand): number {
  let nl = -1
  for (let i = o; i < end; i++) if (buf[i] === LF) { nl = i; break }
  if (nl < 0) {
    if (end - o > MAX_INLINE_BYTES) throw protocolError('too big inline request')
    cmd.need = end - o + 1
    return INCOMPLETE
  }
  const lineEndAt = nl > o && buf[nl - 1] === CR ? nl - 1 : nl
  let i = o
  while (i < lineEndAt) {
    while (i < lineEndAt && (buf[i] === 0x20 || buf[i] === 0x09)) i++
    if (i >= lineEndAt) break
    const s = i
    while (i < lineEndAt && buf[i] !== 0x20 && buf[i] !== 0x09) i++
    cmd.push(s, i - s)
  }
  return nl + 1
}

/** Whether bytes buf[start…start+len) equal the ASCII word `upper` ignoring case. */
export function argIs (buf: Uint8Array, start: number, len: number, upper: string): boolean {
  if (len !== upper.length) return false
  for (let i = 0; i < len; i++) {
    let c = buf[start + i]
    if (c >= 0x61 && c <= 0x7a) c -= 32
    if (c !== upper.charCodeAt(i)) return false
  }
  return true
}

/**
 * A signed decimal integer in Redis' strict form (no '+', no spaces, no leading zeros), within
 * ±(2^53−1) (counterd's value range); NaN otherwise.
 */
export function parseInteger (buf: Uint8Array, start: number, len: number): number {
  if (len === 0 || len > 17) return NaN
  let i = start
  const end = start + len
  const neg = buf[i] === 0x2d
  if (neg) { i++; if (i === end) return NaN }
  if (buf[i] === 0x30 && (end - i > 1 || neg)) return NaN
  let n = 0
  for (; i < end; i++) {
    const c = buf[i]
    if (c < 0x30 || c > 0x39) return NaN
    n = n * 10 + (c - 0x30)
  }
  if (n > Number.MAX_SAFE_INTEGER) return NaN
  return neg ? -n : n
}

// ---- replies ----

const DIGITS = new Uint8Array(24)

/** The decimal digits of an integer (|v| ≤ 2^53), without a string. */
export function writeDecimal (out: ByteSink, v: number): void {
  out.reserve(24)
  const buf = out.buf
  if (v < 0) { buf[out.len++] = 0x2d; v = -v }
  let n = 0
  do {
    const q = Math.floor(v / 10)
    DIGITS[n++] = 0x30 + (v - q * 10)
    v = q
  } while (v > 0)
  while (n > 0) buf[out.len++] = DIGITS[--n]
}

function crlf (out: ByteSink): void {
  out.reserve(2)
  out.buf[out.len++] = CR
  out.buf[out.len++] = LF
}

function header (out: ByteSink, type: number, n: number): void {
  out.u8(type)
  writeDecimal(out, n)
  crlf(out)
}

/** `+text` — text must not contain CR or LF. */
export function simpleString (out: ByteSink, text: string): void {
  out.u8(0x2b)
  out.latin1(text)
  crlf(out)
}

/** `-PREFIX message`; line breaks in the message become spaces. */
export function errorReply (out: ByteSink, prefixAndMessage: string): void {
  out.u8(0x2d)
  out.latin1(prefixAndMessage.replace(/[\r\n]+/g, ' '))
  crlf(out)
}

export function integer (out: ByteSink, v: number): void {
  out.u8(0x3a)
  writeDecimal(out, v)
  crlf(out)
}

/** A bulk string holding an integer's digits (GET's reply). */
export function bulkInteger (out: ByteSink, v: number): void {
  const abs = v < 0 ? -v : v
  let digits = 1
  for (let x = abs; x >= 10; x = Math.floor(x / 10)) digits++
  header(out, 0x24, digits + (v < 0 ? 1 : 0))
  writeDecimal(out, v)
  crlf(out)
}

export function bulkString (out: ByteSink, text: string): void {
  const bytes = Buffer.byteLength(text, 'utf8')
  header(out, 0x24, bytes)
  out.reserve(bytes)
  out.len += out.buf.write(text, out.len, 'utf8')
  crlf(out)
}

export function bulkBytes (out: ByteSink, src: Uint8Array, start: number, len: number): void {
  header(out, 0x24, len)
  out.bytes(src, start, start + len)
  crlf(out)
}

/** The null reply: `$-1` in RESP2, `_` in RESP3. */
export function nullReply (out: ByteSink, proto: number): void {
  if (proto === 3) { out.u8(0x5f); crlf(out) } else { out.latin1('$-1'); crlf(out) }
}

export function arrayHeader (out: ByteSink, n: number): void {
  header(out, 0x2a, n)
}

/** A map of n pairs: `%n` in RESP3, a flat array of 2n elements in RESP2. */
export function mapHeader (out: ByteSink, n: number, proto: number): void {
  if (proto === 3) header(out, 0x25, n)
  else header(out, 0x2a, n * 2)
}

/** A set of n elements: `~n` in RESP3, an array in RESP2. */
export function setHeader (out: ByteSink, n: number, proto: number): void {
  header(out, proto === 3 ? 0x7e : 0x2a, n)
}

/** Text meant for people (INFO): a verbatim string in RESP3, a bulk string in RESP2. */
export function verbatimText (out: ByteSink, text: string, proto: number): void {
  if (proto !== 3) { bulkString(out, text); return }
  const bytes = Buffer.byteLength(text, 'utf8') + 4
  header(out, 0x3d, bytes)
  out.latin1('txt:')
  out.reserve(bytes)
  out.len += out.buf.write(text, out.len, 'utf8')
  crlf(out)
}

/**
 * A JSON-like value as a reply (for the rare, structured replies: HELLO, COMMAND, CLIENT INFO):
 * strings are bulk strings, numbers integers, null the null reply, arrays arrays, and objects
 * maps (`%` in RESP3, flat arrays in RESP2). A string starting with '+' is a simple string.
 */
export type RespValue = string | number | null | RespValue[] | { [key: string]: RespValue } | { set: RespValue[] }

export function writeValue (out: ByteSink, v: RespValue, proto: number): void {
  if (v === null) { nullReply(out, proto); return }
  if (typeof v === 'number') { integer(out, v); return }
  if (typeof v === 'string') {
    if (v.startsWith('+')) simpleString(out, v.slice(1))
    else bulkString(out, v)
    return
  }
  if (Array.isArray(v)) {
    arrayHeader(out, v.length)
    for (const x of v) writeValue(out, x, proto)
    return
  }
  if ('set' in v && Array.isArray(v.set)) {
    setHeader(out, v.set.length, proto)
    for (const x of v.set) writeValue(out, x, proto)
    return
  }
  const keys = Object.keys(v)
  mapHeader(out, keys.length, proto)
  for (const k of keys) {
    bulkString(out, k)
    writeValue(out, (v as Record<string, RespValue>)[k], proto)
  }
}
