// The commands the Redis-protocol front knows: name, arity and key positions as Redis declares
// them (what COMMAND and COMMAND DOCS answer, so that redis-cli and client libraries see a
// familiar server), and the lookup of a command name straight from request bytes.
import { fnv1a32Byte, FNV_OFFSET } from '../core/keys'
import type { RespValue } from '../core/resp-codec'

export const enum Cmd {
  INCR, INCRBY, DECR, DECRBY, GET, MGET, DEL, EXISTS, PFADD, PFCOUNT,
  PING, ECHO, HELLO, AUTH, SELECT, CLIENT, COMMAND, INFO, QUIT, RESET, CONFIG, DBSIZE,
  /** a command of another Redis type (hash, list, set…): answered WRONGTYPE on a counter key */
  OTHER_TYPE
}

export interface CommandSpec {
  id: Cmd
  name: string // upper case
  /** Redis' convention: n = exactly n arguments with the name; −n = at least n */
  arity: number
  flags: string[]
  firstKey: number
  lastKey: number
  step: number
  group: string
  summary: string
  since: string
  complexity: string
  /** argument names and types for COMMAND DOCS: "key:key", "increment:integer", "element:string..." */
  args: string[]
}

const W = ['write', 'denyoom', 'fast']
const R = ['readonly', 'fast']
const C = ['noscript', 'loading', 'stale', 'fast']

function spec (id: Cmd, name: string, arity: number, flags: string[], keys: [number, number, number], group: string,
  summary: string, since: string, complexity: string, args: string[]): CommandSpec {
  return { id, name, arity, flags, firstKey: keys[0], lastKey: keys[1], step: keys[2], group, summary, since, complexity, args }
}

export const COMMANDS: CommandSpec[] = [
  spec(Cmd.INCR, 'INCR', 2, W, [1, 1, 1], 'string', 'Increments the counter of a key by one.', '1.0.0', 'O(1)', ['key:key']),
  spec(Cmd.INCRBY, 'INCRBY', 3, W, [1, 1, 1], 'string', 'Increments the counter of a key by a number.', '1.0.0', 'O(1)', ['key:key', 'increment:integer']),
  spec(Cmd.DECR, 'DECR', 2, W, [1, 1, 1], 'string', 'Decrements the counter of a key by one.', '1.0.0', 'O(1)', ['key:key']),
  spec(Cmd.DECRBY, 'DECRBY', 3, W, [1, 1, 1], 'string', 'Decrements the counter of a key by a number.', '1.0.0', 'O(1)', ['key:key', 'decrement:integer']),
  spec(Cmd.GET, 'GET', 2, R, [1, 1, 1], 'string', 'Returns the value of a counter; nil when it is 0.', '1.0.0', 'O(1)', ['key:key']),
  spec(Cmd.MGET, 'MGET', -2, R, [1, -1, 1], 'string', 'Returns the values of counters; nil for those at 0.', '1.0.0', 'O(N)', ['key:key...']),
  spec(Cmd.DEL, 'DEL', -2, ['write'], [1, -1, 1], 'generic', 'Resets counters to 0; returns how many were not 0.', '1.0.0', 'O(N)', ['key:key...']),
  spec(Cmd.EXISTS, 'EXISTS', -2, R, [1, -1, 1], 'generic', 'Counts the given counters that are not 0.', '1.0.0', 'O(N)', ['key:key...']),
  spec(Cmd.PFADD, 'PFADD', -2, W, [1, 1, 1], 'hyperloglog', 'Adds actors to the unique actors of a counter (its count is unchanged).', '2.8.9', 'O(1) per element', ['key:key', 'element:string...']),
  spec(Cmd.PFCOUNT, 'PFCOUNT', -2, ['readonly'], [1, 1, 1], 'hyperloglog', 'Returns the approximate number of unique actors of a counter.', '2.8.9', 'O(1)', ['key:key']),
  spec(Cmd.PING, 'PING', -1, ['fast', 'stale'], [0, 0, 0], 'connection', 'Returns PONG, or the message.', '1.0.0', 'O(1)', ['message:string?']),
  spec(Cmd.ECHO, 'ECHO', 2, ['fast', 'stale', 'loading'], [0, 0, 0], 'connection', 'Returns the given string.', '1.0.0', 'O(1)', ['message:string']),
  spec(Cmd.HELLO, 'HELLO', -1, C, [0, 0, 0], 'connection', 'Handshakes with the server (protocol 2 or 3).', '6.0.0', 'O(1)', ['protover:integer?']),
  spec(Cmd.AUTH, 'AUTH', -2, C, [0, 0, 0], 'connection', 'Authenticates the connection (no password is configured).', '1.0.0', 'O(N)', ['username:string?', 'password:string']),
  spec(Cmd.SELECT, 'SELECT', 2, ['loading', 'stale', 'fast'], [0, 0, 0], 'connection', 'Selects the database: only 0 exists.', '1.0.0', 'O(1)', ['index:integer']),
  spec(Cmd.CLIENT, 'CLIENT', -2, ['noscript', 'loading', 'stale'], [0, 0, 0], 'connection', 'Connection commands: SETNAME, GETNAME, SETINFO, ID, INFO, LIST.', '2.4.0', 'O(1)', ['subcommand:string']),
  spec(Cmd.COMMAND, 'COMMAND', -1, ['loading', 'stale'], [0, 0, 0], 'server', 'Describes the commands of this server (COUNT, INFO, DOCS, LIST).', '2.8.13', 'O(N)', ['subcommand:string?']),
  spec(Cmd.INFO, 'INFO', -1, ['loading', 'stale'], [0, 0, 0], 'server', 'Returns information about the server: server, clients, persistence, stats, keyspace.', '1.0.0', 'O(1)', ['section:string...?']),
  spec(Cmd.QUIT, 'QUIT', -1, ['loading', 'stale', 'fast'], [0, 0, 0], 'connection', 'Closes the connection.', '1.0.0', 'O(1)', []),
  spec(Cmd.RESET, 'RESET', 1, ['noscript', 'loading', 'stale', 'fast'], [0, 0, 0], 'connection', 'Resets the connection (protocol 2, no name).', '6.2.0', 'O(1)', []),
  spec(Cmd.CONFIG, 'CONFIG', -2, ['admin', 'noscript', 'loading', 'stale'], [0, 0, 0], 'server', 'CONFIG GET of a few read-only settings.', '2.0.0', 'O(N)', ['subcommand:string']),
  spec(Cmd.DBSIZE, 'DBSIZE', 1, ['readonly', 'fast'], [0, 0, 0], 'server', 'Returns the number of counters that are not 0 (a moment old).', '1.0.0', 'O(1)', [])
]

// Commands of Redis' other value types: a counter key "holds the wrong kind of value" for them.
const OTHER_TYPE_NAMES = [
  'HSET', 'HGET', 'HMSET', 'HMGET', 'HGETALL', 'HDEL', 'HINCRBY', 'HKEYS', 'HVALS', 'HLEN', 'HEXISTS',
  'LPUSH', 'RPUSH', 'LPOP', 'RPOP', 'LRANGE', 'LLEN', 'LINDEX', 'LSET', 'LREM',
  'SADD', 'SREM', 'SMEMBERS', 'SISMEMBER', 'SCARD', 'SPOP',
  'ZADD', 'ZREM', 'ZRANGE', 'ZSCORE', 'ZINCRBY', 'ZCARD', 'ZRANK', 'ZREVRANGE',
  'XADD', 'XRANGE', 'XLEN'
]

const OTHER_TYPE: CommandSpec[] = OTHER_TYPE_NAMES.map((name) =>
  spec(Cmd.OTHER_TYPE, name, -2, [], [1, 1, 1], 'other', '', '', '', []))

// Lookup by the FNV-1a hash of the upper-cased name, then a byte compare (no string per command).
const BY_HASH = new Map<number, CommandSpec[]>()
for (const c of [...COMMANDS, ...OTHER_TYPE]) {
  let h = FNV_OFFSET
  for (let i = 0; i < c.name.length; i++) h = fnv1a32Byte(h, c.name.charCodeAt(i))
  const list = BY_HASH.get(h >>> 0) ?? []
  list.push(c)
  BY_HASH.set(h >>> 0, list)
}

/** The command named by buf[start…start+len) in any case, or undefined. */
export function lookupCommand (buf: Uint8Array, start: number, len: number): CommandSpec | undefined {
  if (len > 16) return undefined
  let h = FNV_OFFSET
  for (let i = start, end = start + len; i < end; i++) {
    let c = buf[i]
    if (c >= 0x61 && c <= 0x7a) c -= 32
    h = fnv1a32Byte(h, c)
  }
  const list = BY_HASH.get(h >>> 0)
  if (list === undefined) return undefined
  for (const c of list) {
    if (c.name.length !== len) continue
    let same = true
    for (let i = 0; i < len && same; i++) {
      let b = buf[start + i]
      if (b >= 0x61 && b <= 0x7a) b -= 32
      same = b === c.name.charCodeAt(i)
    }
    if (same) return c
  }
  return undefined
}

/** Whether `argc` (with the name) fits the spec's arity. */
export function arityOk (c: CommandSpec, argc: number): boolean {
  return c.arity >= 0 ? argc === c.arity : argc >= -c.arity
}

/** One entry of COMMAND / COMMAND INFO, in Redis 7's ten-field shape. */
export function commandInfo (c: CommandSpec): RespValue {
  const keySpecs: RespValue[] = c.firstKey === 0
    ? []
    : [{
        begin_search: { type: 'index', spec: { index: c.firstKey } },
        find_keys: { type: 'range', spec: { lastkey: c.lastKey < 0 ? -1 : 0, keystep: c.step, limit: 0 } }
      }]
  return [
    c.name.toLowerCase(), c.arity, { set: c.flags.map((f) => '+' + f) }, c.firstKey, c.lastKey, c.step,
    { set: ['+@' + c.group] }, { set: [] }, keySpecs, []
  ]
}

/** One command's COMMAND DOCS map. */
export function commandDocs (c: CommandSpec): RespValue {
  return {
    summary: c.summary,
    since: c.since,
    group: c.group,
    complexity: c.complexity,
    arguments: c.args.map((a): RespValue => {
      const optional = a.endsWith('?')
      const bare = optional ? a.slice(0, -1) : a
      const multiple = bare.endsWith('...')
      const [name, type] = (multiple ? bare.slice(0, -3) : bare).split(':')
      const flags = [...(optional ? ['+optional'] : []), ...(multiple ? ['+multiple'] : [])]
      return flags.length === 0 ? { name, type } : { name, type, flags: { set: flags } }
    })
  }
}

export function findCommand (name: string): CommandSpec | undefined {
  const upper = name.toUpperCase()
  return COMMANDS.find((c) => c.name === upper)
}
