// Property and fuzz tests of every parser that takes outside input: binary and JSON stream frames,
// ingested events, the Redis protocol, HTTP JSON bodies, replication bodies (WAL-framed records),
// and the HTTP front as a whole against a real node. Each input gets a coded error or a correct
// result: never a crash, never a changed counter on error. FUZZ_RUNS cases per parser (10 000).
import fc from 'fast-check'
import http from 'node:http'
import t from 'tap'
import { encodeBinaryFrame, decodeBinaryFrame, HEADER_BYTES, type StreamOp } from '../src/core/binary-frame'
import { CounterdError, ERROR_CODES } from '../src/core/errors'
import { FrameOps } from '../src/core/frame-ops'
import { decodeJsonFrame } from '../src/core/json-frame'
import { isValidId, isValidType } from '../src/core/keys'
import { decodeFrames, decodeRecord, encodeFrames, RecordFormatError } from '../src/core/record-codec'
import type { DeltaRecord } from '../src/core/records'
import { parseJsonBody } from '../src/front/body'
import { decodeEvent } from '../src/core/ingest-event'
import { INCOMPLETE, parseCommand, RespCommand } from '../src/core/resp-codec'
import { startNode } from './support/node-process'

const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000)
if (!Number.isInteger(RUNS) || RUNS < 1) throw new RangeError(`FUZZ_RUNS must be a positive integer, got ${process.env.FUZZ_RUNS}`)
const CODES = new Set<string>(ERROR_CODES)
const MAX = Number.MAX_SAFE_INTEGER

const typeArb = fc.stringMatching(/^[a-z0-9_-]{1,32}$/)
const idArb = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,128}$/)
const deltaArb = fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.maxSafeInteger(), fc.constantFrom(MAX, -MAX, 0))
const opArb: fc.Arbitrary<StreamOp> = fc.record({ type: typeArb, id: idArb, by: deltaArb, actor: fc.option(idArb, { nil: undefined }) }, { requiredKeys: ['type', 'id', 'by'] })

/** A decoder's answer is fine when it is null (then check the ops) or a CounterdError with a known code. */
function coded (v: unknown): boolean {
  return v instanceof CounterdError && CODES.has(v.code)
}

/** Every op of a frame decoded as good keeps the key and delta rules. */
function opsValid (buf: Uint8Array, ops: FrameOps): boolean {
  const text = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  for (let i = 0; i < ops.n; i++) {
    const type = text.toString('latin1', ops.typeStart[i], ops.typeStart[i] + ops.typeLen[i])
    const id = text.toString('latin1', ops.idStart[i], ops.idStart[i] + ops.idLen[i])
    if (!isValidType(type) || !isValidId(id) || !Number.isSafeInteger(ops.delta[i])) return false
  }
  return true
}

t.test('binary frames: round trip of valid frames', async () => {
  const ops = new FrameOps(10_000)
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.array(opArb, { minLength: 1, maxLength: 20 }), (seq, list) => {
    const buf = encodeBinaryFrame(seq, list)
    if (decodeBinaryFrame(buf, ops) !== null) return false
    if (ops.seq !== seq || ops.n !== list.length) return false
    return list.every((op, i) => {
      const type = buf.toString('latin1', ops.typeStart[i], ops.typeStart[i] + ops.typeLen[i])
      const id = buf.toString('latin1', ops.idStart[i], ops.idStart[i] + ops.idLen[i])
      const actor = ops.actorStart[i] < 0 ? undefined : buf.toString('latin1', ops.actorStart[i], ops.actorStart[i] + ops.actorLen[i])
      return type === op.type && id === op.id && ops.delta[i] === op.by && actor === op.actor
    })
  }), { numRuns: RUNS })
})

t.test('binary frames: random bytes and damaged frames get a coded error or valid ops', async () => {
  const ops = new FrameOps(50)
  const decode = (buf: Uint8Array): boolean => {
    let r: CounterdError | null
    try {
      r = decodeBinaryFrame(buf, ops)
    } catch (err) {
      // Only a frame too short for a seq may throw (the stream closes the connection with 1007).
      return buf.length < HEADER_BYTES && coded(err)
    }
    return r === null ? opsValid(buf, ops) : coded(r)
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), decode), { numRuns: RUNS })
  // Valid frames with bytes overwritten, cut short or extended: the interesting inputs.
  const damaged = fc.tuple(fc.array(opArb, { minLength: 1, maxLength: 8 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat(), fc.uint8Array({ maxLength: 8 }))
    .map(([list, flips, cut, extra]) => {
      const b = Buffer.from(encodeBinaryFrame(7, list))
      for (const [at, v] of flips) b[at % b.length] = v
      const cutAt = cut % (b.length + 1)
      return Buffer.concat([b.subarray(0, Math.max(cutAt, HEADER_BYTES)), Buffer.from(extra)])
    })
  fc.assert(fc.property(damaged, decode), { numRuns: RUNS })
})

t.test('JSON frames: random text and random JSON get a coded error or valid ops', async () => {
  const ops = new FrameOps(50)
  const decode = (text: string): boolean => {
    const r = decodeJsonFrame(text, ops) // never throws: malformed JSON is an error too
    if (r !== null) return coded(r)
    for (let i = 0; i < ops.n; i++) {
      const key = ops.keys[i]
      const colon = key.indexOf(':')
      if (!isValidType(key.slice(0, colon)) || !isValidId(key.slice(colon + 1)) || !Number.isSafeInteger(ops.delta[i])) return false
    }
    return true
  }
  fc.assert(fc.property(fc.string({ maxLength: 200 }), decode), { numRuns: RUNS })
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 4 }).map(v => JSON.stringify(v) ?? 'null'), decode), { numRuns: RUNS })
  // Frames of the right shape with random members: most are valid, every field is tried wrong.
  const member = fc.oneof(typeArb, idArb, deltaArb, fc.jsonValue({ maxDepth: 1 }))
  const frame = fc.record({
    seq: fc.oneof(fc.integer({ min: -2, max: 0xffffffff + 2 }), fc.jsonValue({ maxDepth: 0 })),
    ops: fc.array(fc.oneof(
      fc.tuple(typeArb, idArb, deltaArb),
      fc.tuple(typeArb, idArb),
      fc.tuple(typeArb, idArb, deltaArb, idArb),
      fc.array(member, { maxLength: 5 })
    ), { maxLength: 6 })
  }).map(f => JSON.stringify(f))
  fc.assert(fc.property(frame, decode), { numRuns: RUNS })
})

t.test('HTTP JSON bodies: a value or malformed_json', async () => {
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }).map(b => Buffer.from(b)), fc.jsonValue().map(v => Buffer.from(JSON.stringify(v) ?? 'null'))), (body) => {
    try {
      parseJsonBody(body)
      return true
    } catch (err) {
      return err instanceof CounterdError && err.code === 'malformed_json'
    }
  }), { numRuns: RUNS })
})

t.test('replication bodies: records decode or are refused, never a crash', async () => {
  const record: fc.Arbitrary<DeltaRecord> = fc.record({
    partition: fc.integer({ min: 0, max: 63 }),
    epoch: fc.integer({ min: 0, max: 1000 }),
    seq: fc.integer({ min: 0, max: 1_000_000 }),
    ts: fc.integer({ min: 0, max: 2 ** 42 }),
    replica: fc.stringMatching(/^[a-z]{1,8}$/),
    keys: fc.array(fc.tuple(typeArb, idArb).map(([a, b]) => `${a}:${b}`), { maxLength: 5 }),
    dedup: fc.constant([]).map((): DeltaRecord['dedup'] => [])
  }).map(r => ({ ...r, deltas: r.keys.map(() => 1), ps: r.keys.map(() => 3), ns: r.keys.map(() => 2) }))
  const body = fc.tuple(fc.array(record, { minLength: 1, maxLength: 3 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.boolean())
    .map(([records, flips, truncate]) => {
      const b = Buffer.from(encodeFrames(records))
      for (const [at, v] of flips) b[at % b.length] = v
      return truncate ? b.subarray(0, Math.floor(b.length / 2)) : b
    })
  fc.assert(fc.property(fc.oneof(body, fc.uint8Array({ maxLength: 300 }).map(b => Buffer.from(b))), (buf) => {
    let good: number
    try {
      good = decodeFrames(buf, (r) => {
        try {
          decodeRecord(r.payload)
        } catch (err) {
          if (!(err instanceof RecordFormatError)) throw err
        }
      })
    } catch {
      return false
    }
    return good >= 0 && good <= buf.length
  }), { numRuns: RUNS })
  // And undamaged bodies come back exactly.
  fc.assert(fc.property(fc.array(record, { minLength: 1, maxLength: 3 }), (records) => {
    const out: DeltaRecord[] = []
    const buf = encodeFrames(records)
    const good = decodeFrames(buf, (r) => out.push(decodeRecord(r.payload)))
    return good === buf.length && out.length === records.length && out.every((r, i) => r.seq === records[i].seq && r.keys.join() === records[i].keys.join())
  }), { numRuns: Math.min(RUNS, 2000) })
})

t.test('Redis protocol: commands parse back; random and damaged streams give commands, INCOMPLETE or protocol_error', async () => {
  const cmd = new RespCommand()
  const arg = fc.oneof(fc.string({ maxLength: 12 }), fc.uint8Array({ maxLength: 12 }).map(b => Buffer.from(b).toString('latin1')))
  const command = fc.array(arg, { minLength: 1, maxLength: 6 })
  const encode = (args: string[]): Buffer => Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.map(a => { const b = Buffer.from(a, 'latin1'); return Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')]) })])
  // Round trip: a pipeline of commands parses back into the same arguments, whatever the bytes.
  fc.assert(fc.property(fc.array(command, { minLength: 1, maxLength: 5 }), (cmds) => {
    const buf = Buffer.concat(cmds.map(encode))
    let o = 0
    for (const args of cmds) {
      o = parseCommand(buf, o, buf.length, cmd)
      if (o === INCOMPLETE || cmd.argc !== args.length) return false
      for (let i = 0; i < args.length; i++) if (buf.toString('latin1', cmd.start[i], cmd.start[i] + cmd.len[i]) !== args[i]) return false
    }
    return o === buf.length
  }), { numRuns: RUNS })
  // Anything else: every parse ends in a command within the buffer, INCOMPLETE, or a coded protocol error.
  const damaged = fc.tuple(fc.array(command, { minLength: 1, maxLength: 3 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.nat())
    .map(([cmds, flips, cut]) => {
      const b = Buffer.from(Buffer.concat(cmds.map(encode)))
      for (const [at, v] of flips) b[at % b.length] = v
      return b.subarray(0, cut % (b.length + 1))
    })
  fc.assert(fc.property(fc.oneof(damaged, fc.uint8Array({ maxLength: 200 }).map(b => Buffer.from(b))), (buf) => {
    let o = 0
    for (let steps = 0; steps < 1000; steps++) {
      let next: number
      try {
        next = parseCommand(buf, o, buf.length, cmd)
      } catch (err) {
        return err instanceof CounterdError && err.code === 'protocol_error'
      }
      if (next === INCOMPLETE) return cmd.need > 0
      if (next <= o || next > buf.length) return false
      for (let i = 0; i < cmd.argc; i++) if (cmd.start[i] < o || cmd.start[i] + cmd.len[i] > next) return false
      o = next
      if (o === buf.length) return true
    }
    return false
  }), { numRuns: RUNS })
})

t.test('ingested events: valid events decode to what they say; anything else is a coded error', async () => {
  const idValue = fc.oneof(idArb, fc.integer({ min: 0, max: 1_000_000 }))
  const valid = fc.record({
    event_id: fc.stringMatching(/^[A-Za-z0-9_.:-]{1,64}$/),
    user_id: idValue,
    item_id: idValue,
    item_type: fc.oneof(typeArb, fc.integer({ min: 0, max: 99 })),
    action: fc.constantFrom('like', 'unlike', 'view'),
    timestamp: fc.constant('2024-01-15T10:30:00Z')
  })
  fc.assert(fc.property(valid, (e) => {
    const ev = decodeEvent(JSON.stringify(e))
    if (ev instanceof CounterdError) return false
    return ev.action === e.action && ev.key === `${String(e.item_type)}:${String(e.item_id)}` && ev.eventId === e.event_id && (ev.action === 'view' ? ev.by === 1 : ev.user === String(e.user_id))
  }), { numRuns: RUNS })
  const anything = fc.oneof(
    fc.uint8Array({ maxLength: 120 }).map(b => Buffer.from(b)),
    fc.jsonValue({ maxDepth: 3 }).map(v => JSON.stringify(v) ?? 'null'),
    fc.record({ event_id: fc.jsonValue({ maxDepth: 1 }), user_id: fc.jsonValue({ maxDepth: 1 }), item_id: fc.jsonValue({ maxDepth: 1 }), item_type: fc.jsonValue({ maxDepth: 1 }), action: fc.oneof(fc.constantFrom('like', 'unlike', 'view', 'increment'), fc.string()), by: fc.jsonValue({ maxDepth: 0 }) }, { requiredKeys: [] }).map(v => JSON.stringify(v))
  )
  fc.assert(fc.property(anything, (raw) => {
    let ev: ReturnType<typeof decodeEvent>
    try { ev = decodeEvent(raw) } catch { return false }
    if (ev instanceof CounterdError) return CODES.has(ev.code)
    const colon = ev.key.indexOf(':')
    return isValidType(ev.key.slice(0, colon)) && isValidId(ev.key.slice(colon + 1)) && Number.isSafeInteger(ev.by)
  }), { numRuns: RUNS })
})

// ---- the HTTP front of a real node ----

interface Answer { status: number, body: string }

async function send (agent: http.Agent, port: number, method: string, path: string, headers: Record<string, string>, body: Buffer | null): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers: body === null ? headers : { ...headers, 'content-length': String(body.length) } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
    })
    req.on('error', reject)
    req.end(body ?? undefined)
  })
}

t.test('HTTP front: random requests get a coded answer, and only successful ones change counters', async (t) => {
  const node = await startNode(t, { env: { MAX_BODY_BYTES: '512' } })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const ids = ['a', 'b', 'c', 'x.y:z', 'A-9_'] // a few counters, so resets and retries meet
  const segment = fc.oneof(
    fc.constantFrom('fz', 'fz', 'FZ', '', 'fz!', '%2e%2e', 'x'.repeat(33)),
    fc.constantFrom(...ids), fc.constantFrom('..', '%00', '%C3%A9', 'a%20b', 'i'.repeat(129)), fc.string({ maxLength: 6 }).map(encodeURIComponent)
  )
  const path = fc.oneof(
    { arbitrary: fc.tuple(fc.constantFrom(...ids), fc.boolean()).map(([id, inc]) => `/v1/counter/fz/${id}${inc ? '/increment' : ''}`), weight: 6 },
    fc.tuple(segment, segment).map(([ty, id]) => `/v1/counter/${ty}/${id}`),
    fc.tuple(segment, segment).map(([ty, id]) => `/v1/counter/${ty}/${id}/increment`),
    fc.array(segment, { maxLength: 4 }).map(s => '/' + s.join('/')),
    fc.constantFrom('/v1/counters/query', '/v1/like', '/health', '/v1/top?k=-1', '/v1/count?item_type=fz')
  )
  const body = fc.oneof(
    fc.constant(null),
    fc.record({ by: fc.oneof(fc.integer({ min: -5, max: 5 }), fc.constantFrom(1.5, MAX, -MAX, 2 ** 53, '1', null, true)) }, { requiredKeys: [] }).map(v => Buffer.from(JSON.stringify(v))),
    fc.jsonValue({ maxDepth: 2 }).map(v => Buffer.from(JSON.stringify(v) ?? 'null')),
    fc.uint8Array({ maxLength: 40 }).map(b => Buffer.from(b)),
    fc.constant(Buffer.alloc(600, 0x20)) // over MAX_BODY_BYTES
  )
  const request = fc.record({
    method: fc.constantFrom('GET', 'POST', 'POST', 'DELETE', 'PUT'),
    path,
    idem: fc.option(fc.constantFrom('k1', 'k2', '', 'x'.repeat(129), 'ok\u0001'), { nil: undefined }),
    body
  })

  // The model: what every fz counter must hold, given the answers so far.
  const model = new Map<string, number>()
  const firstAnswers = new Map<string, number>() // key + Idempotency-Key → value of the first application
  let cases = 0
  let applied = 0
  await fc.assert(fc.asyncProperty(request, async (r) => {
    cases++
    const headers: Record<string, string> = {}
    if (r.idem !== undefined && /^[\x20-\x7e]*$/.test(r.idem)) headers['idempotency-key'] = r.idem
    const a = await send(agent, node.port, r.method, r.path, headers, r.body)
    if (![200, 400, 404, 405, 413].includes(a.status)) return false
    const m = /^\/v1\/counter\/fz\/([^/?]+)(\/increment)?$/.exec(r.path)
    if (a.status === 200 && m === null) return true // another route (the live page is HTML)
    let json: any
    try { json = JSON.parse(a.body) } catch { return false }
    if (a.status !== 200) return typeof json?.error?.code === 'string' && CODES.has(json.error.code)
    if (m === null) return true
    const key = m[1]
    if (m[2] === undefined && r.method === 'DELETE') model.set(key, 0)
    if (m[2] !== undefined) {
      const idem = headers['idempotency-key']
      const tagged = idem !== undefined && idem !== '' ? `${key}\n${idem}` : null
      if (tagged !== null && firstAnswers.has(tagged)) return json.value === firstAnswers.get(tagged)
      const by = r.body === null || r.body.length === 0 ? 1 : (JSON.parse(r.body.toString()).by ?? 1)
      model.set(key, (model.get(key) ?? 0) + by)
      applied++
      if (tagged !== null) firstAnswers.set(tagged, json.value)
    }
    return json.value === (model.get(key) ?? 0)
  }), { numRuns: RUNS })

  t.equal(cases, RUNS)
  t.ok(applied > RUNS / 100, `${applied} of ${RUNS} random requests were increments that applied`)
  for (const id of ids) {
    const r = await send(agent, node.port, 'GET', `/v1/counter/fz/${id}`, {}, null)
    t.equal(JSON.parse(r.body).value, model.get(id) ?? 0, `fz:${id} holds exactly what the successful requests made it`)
  }
})
