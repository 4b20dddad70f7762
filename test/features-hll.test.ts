// HyperLogLog: the hash against an independent BigInt MurmurHash64A, exact-while-small, accuracy,
// memory tiers, encode/decode, bad input, and byte-level compatibility with a real redis-server
// (PFADD gives the same registers, PFCOUNT reads our values, PFMERGE mixes both, we load theirs).
import t from 'tap'
import Redis from 'ioredis'
import { CounterdError } from '../src/core/errors'
import { HyperLogLog, HLL_DENSE_SIZE, HLL_REGISTERS } from '../actors/features/hll'
import { murmur64, murmur64String, REDIS_HLL_SEED } from '../actors/features/murmur64'
import { startRedis } from './support/redis'

function codeOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    return err instanceof CounterdError ? err.code : `not a CounterdError: ${String(err)}`
  }
  return 'no error'
}

// Straight from the definition, in BigInt, sharing nothing with the implementation under test.
const M = 0xc6a4a7935bd1e995n
const MASK = (1n << 64n) - 1n
function murmurRef (bytes: Uint8Array, seed: bigint): bigint {
  let h = (seed ^ (BigInt(bytes.length) * M)) & MASK
  const blocks = bytes.length - (bytes.length & 7)
  for (let i = 0; i < blocks; i += 8) {
    let k = 0n
    for (let j = 7; j >= 0; j--) k = (k << 8n) | BigInt(bytes[i + j])
    k = (k * M) & MASK
    k ^= k >> 47n
    k = (k * M) & MASK
    h ^= k
    h = (h * M) & MASK
  }
  const rem = bytes.length & 7
  if (rem > 0) {
    for (let j = rem - 1; j >= 0; j--) h ^= BigInt(bytes[blocks + j]) << BigInt(8 * j)
    h = (h * M) & MASK
  }
  h ^= h >> 47n
  h = (h * M) & MASK
  h ^= h >> 47n
  return h
}

function elements (prefix: string, n: number): string[] {
  const out: string[] = new Array(n)
  for (let i = 0; i < n; i++) out[i] = `${prefix}:${i}`
  return out
}

function filled (els: readonly string[], options?: { exactLimit?: number }): HyperLogLog {
  const h = new HyperLogLog(options)
  for (const e of els) h.add(e)
  return h
}

function registersOf (h: HyperLogLog): number[] {
  return [...h.registers()]
}

/** Registers that differ (0 when equal): cheaper to compare and to report than 16384-long arrays. */
function differing (a: HyperLogLog | number[], b: HyperLogLog | number[]): number {
  const ra = Array.isArray(a) ? a : registersOf(a)
  const rb = Array.isArray(b) ? b : registersOf(b)
  let d = 0
  for (let i = 0; i < HLL_REGISTERS; i++) if (ra[i] !== rb[i]) d++
  return d
}

function staleCache (buf: Buffer): Buffer {
  const copy = Buffer.from(buf)
  copy[15] |= 0x80
  return copy
}

async function pfaddAll (redis: Redis, key: string, els: readonly string[]): Promise<void> {
  for (let i = 0; i < els.length; i += 5000) await redis.pfadd(key, ...els.slice(i, i + 5000))
}

t.test('MurmurHash64A matches the reference for ASCII, UTF-8 and every tail length', async (t) => {
  const out = new Uint32Array(2)
  let checked = 0
  for (let len = 0; len < 40; len++) {
    for (const kind of ['ascii', 'utf8']) {
      let s = ''
      for (let i = 0; i < len; i++) s += kind === 'ascii' ? String.fromCharCode(33 + ((i * 37 + len) % 94)) : String.fromCharCode(0xe0 + ((i * 13 + len) % 800))
      for (const seed of [BigInt(REDIS_HLL_SEED), 0n, 0x0123456789abcdefn]) {
        const seedHi = Number(seed >> 32n)
        const seedLo = Number(seed & 0xffffffffn)
        murmur64String(s, seedHi, seedLo, out)
        const want = murmurRef(Buffer.from(s, 'utf8'), seed)
        t.equal((BigInt(out[1]) << 32n) | BigInt(out[0]), want, `string len ${len} ${kind} seed ${seed.toString(16)}`)
        const bytes = Buffer.from(`xx${s}yy`, 'utf8')
        murmur64(bytes, 2, bytes.length - 2, seedHi, seedLo, out)
        t.equal((BigInt(out[1]) << 32n) | BigInt(out[0]), want, 'same from a byte range')
        checked++
      }
    }
  }
  t.equal(checked, 240)
})

t.test('exact while small: counts are exact up to exactLimit, duplicates change nothing', async (t) => {
  const h = new HyperLogLog()
  t.equal(h.count(), 0)
  t.equal(h.add('a'), true, 'a new element changes the answer')
  t.equal(h.add('a'), false, 'a duplicate does not')
  for (let i = 0; i < 127; i++) h.add(`user-${i}`)
  for (let i = 0; i < 127; i++) t.equal(h.add(`user-${i}`), false)
  t.equal(h.count(), 128)
  t.equal(h.isExact, true)
  t.ok(h.byteSize <= 2048, `exact tier is small (${h.byteSize} bytes)`)
  h.add('one-more')
  t.equal(h.isExact, false, 'past the limit it counts with registers')
  t.ok(Math.abs(h.count() - 129) <= 3, `estimate right after the switch is close (${h.count()})`)

  const small = filled(elements('s', 50), { exactLimit: 10 })
  t.equal(small.isExact, false, 'exactLimit is honoured')
  const none = new HyperLogLog({ exactLimit: 0 })
  t.equal(none.isExact, false, 'exactLimit 0 starts with registers')
  none.add('x')
  t.equal(none.count(), 1)
})

t.test('estimates stay within 3 standard errors (0.81% each)', async (t) => {
  for (const n of [1000, 10_000, 200_000]) {
    const h = filled(elements(`acc${n}`, n))
    const err = Math.abs(h.count() - n) / n
    t.ok(err < 3 * 0.0081, `n=${n}: estimate ${h.count()} (error ${(err * 100).toFixed(2)}%)`)
  }
})

t.test('memory: exact, then sparse, then 12 KiB dense at most', async (t) => {
  const h = new HyperLogLog()
  const seen: number[] = []
  for (let i = 0; i < 30_000; i++) {
    h.add(`mem:${i}`)
    if (i === 100 || i === 1000 || i === 29_999) seen.push(h.byteSize)
  }
  t.ok(seen[0] <= 2048, `100 elements: ${seen[0]} bytes`)
  t.ok(seen[1] <= 8192, `1000 elements: ${seen[1]} bytes`)
  t.ok(seen[2] <= 12 * 1024 + 1, `30000 elements: ${seen[2]} bytes`)
  t.ok(seen[2] >= 12 * 1024, 'large counters are dense')
})

t.test('encode/decode round trip in every tier', async (t) => {
  for (const n of [0, 1, 100, 500, 2500, 50_000]) {
    const h = filled(elements(`rt${n}`, n))
    const buf = h.encode()
    t.equal(buf.toString('latin1', 0, 4), 'HYLL')
    t.equal(buf[15] & 0x80, 0, 'cached cardinality marked valid')
    t.equal(buf.readUInt32LE(8), h.count(), 'cached cardinality is count()')
    const back = HyperLogLog.decode(buf)
    t.equal(back.count(), h.count(), `n=${n}: count survives`)
    t.equal(differing(back, h), 0, `n=${n}: registers survive`)
    t.same(back.encode(), buf, `n=${n}: re-encoding gives the same bytes`)
    const again = HyperLogLog.decode(staleCache(buf))
    const registersOnly = filled(elements(`rt${n}`, n), { exactLimit: 0 })
    t.equal(again.count(), registersOnly.count(), 'a stale cache is recomputed from registers')
  }
  const empty = HyperLogLog.decode(new HyperLogLog().encode())
  t.equal(empty.isExact, true, 'an empty HLL decodes into the exact tier')
  empty.add('z')
  t.equal(empty.count(), 1)
})

// The register estimate of h, whatever tier h is in.
function registerEstimate (h: HyperLogLog): number {
  return HyperLogLog.decode(staleCache(h.encode())).count()
}

t.test('register(i) and registers() agree in every tier', async (t) => {
  for (const n of [60, 1500, 20_000]) {
    const h = filled(elements(`reg${n}`, n))
    const all = h.registers()
    let wrong = 0
    let nonzero = 0
    for (let i = 0; i < HLL_REGISTERS; i++) {
      if (h.register(i) !== all[i]) wrong++
      if (all[i] !== 0) nonzero++
    }
    t.equal(wrong, 0, `n=${n}`)
    t.ok(nonzero > 0 && nonzero <= n, `n=${n}: ${nonzero} registers set`)
  }
})

t.test('registers above 32 force the dense encoding', async (t) => {
  const h = new HyperLogLog({ exactLimit: 0 })
  h.addHash(5, 1 << 20) // 50 hash bits above the index: first 1 at bit 38 → register value 39
  t.equal(h.register(5), 39)
  const buf = h.encode()
  t.equal(buf.length, HLL_DENSE_SIZE)
  t.equal(buf[4], 0, 'dense')
  t.equal(HyperLogLog.decode(buf).register(5), 39)
})

t.test('merge is a register-wise union', async (t) => {
  const a = filled(elements('m', 3000))
  const b = filled(elements('m', 6000).slice(2000))
  const both = filled(elements('m', 6000))
  t.equal(a.merge(b), true)
  t.equal(differing(a, both), 0)
  t.equal(a.count(), both.count())
  t.equal(a.merge(b), false, 'merging again changes nothing')
  const e1 = filled(['x', 'y'])
  const e2 = filled(['y', 'z'])
  e1.merge(e2)
  t.equal(e1.count(), 3)
  t.equal(e1.isExact, true, 'exact sets unite while they fit')
  const d = filled(elements('d', 20_000))
  const s = filled(['only-here'])
  s.merge(d)
  const want = filled([...elements('d', 20_000), 'only-here'])
  t.equal(differing(s, want), 0)
})

t.test('bad options, arguments and encodings give exact error codes', async (t) => {
  const options: Array<[string, unknown]> = [
    ['exactLimit -1', { exactLimit: -1 }],
    ['exactLimit 1.5', { exactLimit: 1.5 }],
    ['exactLimit 513', { exactLimit: 513 }],
    ['exactLimit string', { exactLimit: '5' }],
    ['unknown key', { exactlimit: 5 }],
    ['null', null],
    ['number', 7]
  ]
  for (const [name, o] of options) {
    t.equal(codeOf(() => new HyperLogLog(o as never)), 'invalid_option', name)
  }
  t.match(String((() => { try { new HyperLogLog({ exactLimit: 999 }) } catch (e) { return (e as Error).message } })()), /options\.exactLimit/)
  t.equal(codeOf(() => new HyperLogLog().add(5 as never)), 'invalid_argument')
  t.equal(codeOf(() => new HyperLogLog().addBytes(Buffer.from('ab'), 1, 5)), 'invalid_argument')
  t.equal(codeOf(() => new HyperLogLog().register(16384)), 'invalid_argument')
  t.equal(codeOf(() => new HyperLogLog().merge({} as never)), 'invalid_argument')

  const good = filled(elements('g', 300)).encode()
  const dense = filled(elements('g', 30_000)).encode()
  const header = (enc: number, body: number[]): Buffer => Buffer.concat([Buffer.from('HYLL'), Buffer.from([enc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80]), Buffer.from(body)])
  const encodings: Array<[string, unknown]> = [
    ['not bytes', 'HYLL'],
    ['empty', Buffer.alloc(0)],
    ['short header', good.subarray(0, 10)],
    ['bad magic', Buffer.concat([Buffer.from('HYLX'), good.subarray(4)])],
    ['unknown encoding 2', Buffer.concat([good.subarray(0, 4), Buffer.from([2]), good.subarray(5)])],
    ['raw encoding 255', Buffer.concat([good.subarray(0, 4), Buffer.from([255]), good.subarray(5)])],
    ['dense too short', dense.subarray(0, dense.length - 1)],
    ['dense too long', Buffer.concat([dense, Buffer.from([0])])],
    ['sparse covering too few registers', header(1, [0x7f, 0xfe])], // XZERO 16383
    ['sparse covering too many', header(1, [0x7f, 0xff, 0x00])], // XZERO 16384 + ZERO 1
    ['sparse VAL past the end', header(1, [0x7f, 0xfe, 0x83])], // XZERO 16383 + VAL run 4
    ['sparse truncated XZERO', header(1, [0x40])],
    ['sparse with no opcodes', header(1, [])]
  ]
  for (const [name, buf] of encodings) {
    t.equal(codeOf(() => HyperLogLog.decode(buf as Buffer)), 'corrupt_state', name)
  }
})

t.test('Redis compatibility against a real redis-server', async (t) => {
  const server = await startRedis(t)
  const redis = new Redis(server.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 })
  await redis.connect()
  t.teardown(() => { redis.disconnect() })

  t.test('PFADD of the same elements gives the same registers and, once counted, the same bytes', async (t) => {
    for (const n of [1, 50, 129, 1000, 2500, 20_000, 100_000]) {
      const els = elements(`same${n}`, n).map((e, i) => i % 5 === 0 ? `${e}-é` : e)
      const key = `same:${n}`
      await pfaddAll(redis, key, els)
      const ours = filled(els)
      const redisCount = await redis.pfcount(key) // also stores Redis' cached cardinality
      const theirs = await redis.getBuffer(key) as Buffer
      const loaded = HyperLogLog.decode(theirs)
      t.equal(differing(loaded, ours), 0, `n=${n}: identical registers`)
      t.equal(loaded.count(), redisCount, `n=${n}: loaded Redis value answers PFCOUNT`)
      t.equal(registerEstimate(ours), redisCount, `n=${n}: our estimator gives PFCOUNT's number`)
      if (!ours.isExact && theirs[4] === 0) t.same(ours.encode(), theirs, `n=${n}: dense bytes identical to Redis'`)
    }
  })

  t.test('PFCOUNT reads what we SET, with a valid or a stale cache', async (t) => {
    for (const n of [0, 7, 128, 400, 3000, 60_000]) {
      const h = filled(elements(`set${n}`, n))
      await redis.set(`ours:${n}`, h.encode())
      t.equal(await redis.pfcount(`ours:${n}`), h.count(), `n=${n}: valid cache → our answer`)
      await redis.set(`stale:${n}`, staleCache(h.encode()))
      t.equal(await redis.pfcount(`stale:${n}`), registerEstimate(h), `n=${n}: stale cache → same estimator`)
      // Redis must be able to keep writing into our value.
      await redis.pfadd(`ours:${n}`, 'extra-1', 'extra-2')
      h.add('extra-1')
      h.add('extra-2')
      t.equal(await redis.pfcount(`ours:${n}`), registerEstimate(h), `n=${n}: PFADD into our value works`)
      const back = HyperLogLog.decode(await redis.getBuffer(`ours:${n}`) as Buffer)
      t.equal(differing(back, h), 0, `n=${n}: and agrees register by register`)
    }
    const big = new HyperLogLog({ exactLimit: 0 })
    big.addHash(9, 1 << 20)
    await redis.set('ours:big-register', big.encode())
    t.equal(await redis.pfcount('ours:big-register'), big.count(), 'dense value with a register > 32')
  })

  t.test('PFMERGE merges ours with Redis-made values', async (t) => {
    for (const [na, nb] of [[100, 300], [2000, 50], [40_000, 3000], [40_000, 40_000]]) {
      const a = filled(elements('pm', na))
      const bEls = elements('pm', nb + na).slice(Math.floor(na / 2))
      await redis.set('pm:a', a.encode())
      await redis.del('pm:b')
      await pfaddAll(redis, 'pm:b', bEls)
      await redis.pfmerge('pm:dest', 'pm:a', 'pm:b')
      const mergedHere = filled(elements('pm', na))
      mergedHere.merge(HyperLogLog.decode(await redis.getBuffer('pm:b') as Buffer))
      const dest = await redis.getBuffer('pm:dest') as Buffer
      t.equal(differing(HyperLogLog.decode(dest), mergedHere), 0, `${na}+${nb}: merged registers agree`)
      t.equal(await redis.pfcount('pm:dest'), registerEstimate(mergedHere), `${na}+${nb}: PFCOUNT of the merge is ours`)
      t.equal(await redis.pfcount('pm:a', 'pm:b'), registerEstimate(mergedHere), 'multi-key PFCOUNT too')
    }
  })

  t.test('Redis accepts our sparse strings as sparse', async (t) => {
    const h = filled(elements('enc', 300))
    await redis.set('enc:sparse', h.encode())
    t.equal(await redis.call('PFDEBUG', 'ENCODING', 'enc:sparse'), 'sparse')
    const regs = await redis.call('PFDEBUG', 'GETREG', 'enc:sparse') as number[]
    t.equal(differing(regs, h), 0, 'PFDEBUG GETREG lists our registers')
  })
})
