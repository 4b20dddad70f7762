// The counter table on its own (actors/key-table.ts): random inserts, finds and updates checked
// against a Map across every growth step, keys of every shape the table stores differently
// (inline decimal ids, ids in the arena, keys with no type, more types than it indexes), FNV
// collisions, keys sharing their low hash bits, the longest keys, and several tables growing side
// by side (they share the thread's chunk pool).
import t, { type Test } from 'tap'
import { KeyTable, chunkPool, hashBytes } from '../actors/key-table'
import { MAX_KEY_LEN, MAX_TYPE_LEN, fnv1a32 } from '../src/core/keys'
import { rng } from './support/load'

const enc = (key: string): Buffer => Buffer.from(key, 'latin1')

function insert (table: KeyTable, key: string): number {
  const b = enc(key)
  return table.findOrInsert(b, 0, b.length, fnv1a32(key))
}

function find (table: KeyTable, key: string): number {
  // At an offset inside a larger buffer, as ops sit in a frame.
  const b = Buffer.concat([enc('##'), enc(key), enc('!')])
  return table.find(b, 2, b.length - 3, fnv1a32(key))
}

/** Every key in the model is found at its entry, with its value and its bytes. */
function checkAll (t: Test, table: KeyTable, model: Map<string, { e: number, v: number }>, what: string): void {
  let bad = 0
  const out = Buffer.alloc(300)
  for (const [key, { e, v }] of model) {
    const problems: string[] = []
    if (find(table, key) !== e) problems.push(`find gives ${find(table, key)}, not ${e}`)
    if (table.value(e) !== v) problems.push(`value ${table.value(e)}, not ${v}`)
    if (table.key(e) !== key) problems.push(`key() gives ${JSON.stringify(table.key(e))}`)
    if (table.keyLength(e) !== key.length) problems.push(`keyLength ${table.keyLength(e)}`)
    const end = table.copyKey(e, out, 3)
    if (end !== 3 + 1 + key.length || out[3] !== key.length || out.toString('latin1', 4, end) !== key) problems.push('copyKey')
    const colon = key.indexOf(':')
    if (colon > 0 && !table.hasPrefix(e, enc(key.slice(0, colon + 1)))) problems.push('hasPrefix of its type')
    if (table.hasPrefix(e, enc(key + 'x'))) problems.push('hasPrefix of a longer key')
    if (problems.length > 0 && bad++ < 5) t.fail(`${what}: ${JSON.stringify(key)}: ${problems.join('; ')}`)
  }
  t.equal(bad, 0, `${what}: all ${model.size} keys found with their values and bytes`)
  t.equal(table.count, model.size, `${what}: one entry per key`)
}

/** Keys of every shape: a pick of types and ids the table stores in different ways. */
function keyMaker (rand: () => number): () => string {
  const types = ['post', 'video', 'c', 'x'.repeat(MAX_TYPE_LEN), 'like', 'a-b_c']
  const alnum = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-'
  const pick = (n: number): number => Math.floor(rand() * n)
  return () => {
    const r = rand()
    const type = types[pick(types.length)]
    if (r < 0.35) return `${type}:${pick(20_000)}` // small decimal ids: stored inline
    if (r < 0.45) return `${type}:${pick(2) === 0 ? '0' : ''}${pick(1000)}` // leading zeros: "0" alone is inline, "07" is not
    if (r < 0.55) return `${type}:${8_388_600 + pick(20)}` // around 2^23: some inline, some not
    if (r < 0.62) return `${type}:${pick(1e12)}` // long decimal ids
    if (r < 0.8) { // any id characters, colons included
      let id = ''
      for (let n = 1 + pick(12); n > 0; n--) id += alnum[pick(alnum.length)]
      return `${type}:${id}`
    }
    if (r < 0.85) return `t${pick(300)}:${pick(50)}` // many types: past the 64 inline and the 255 indexed
    if (r < 0.9) return `nocolon${pick(500)}` // no type at all
    if (r < 0.93) return `:${pick(100)}` // an empty type
    if (r < 0.96) return `${type}:` // an empty id
    return `${'t'.repeat(MAX_TYPE_LEN)}:${String(pick(1e9)).padEnd(MAX_KEY_LEN - MAX_TYPE_LEN - 1, 'z')}` // the longest key
  }
}

t.test('random inserts, finds and updates agree with a Map, across growth steps', async (t) => {
  for (const seed of [1, 2, 3]) {
    const rand = rng(seed)
    const next = keyMaker(rand)
    const table = new KeyTable(seed === 3 ? 1 : 64)
    const model = new Map<string, { e: number, v: number }>()
    const checkpoints = new Set([10, 100, 1000, 5000, 20_000, 60_000])
    for (let op = 1; op <= 60_000; op++) {
      const key = next()
      const known = model.get(key)
      if (rand() < 0.15 && known === undefined) {
        if (find(table, key) !== -1) t.fail(`seed ${seed}: ${JSON.stringify(key)} found before it was inserted`)
        continue
      }
      const e = insert(table, key)
      if (known !== undefined && known.e !== e) t.fail(`seed ${seed}: ${JSON.stringify(key)} moved from entry ${known.e} to ${e}`)
      if (known === undefined && e !== model.size) t.fail(`seed ${seed}: a new key got entry ${e}, not ${model.size}`)
      const v = rand() < 0.1 ? 0 : Math.floor(rand() * 2e15) - 1e15 // some reset to 0, some negative
      table.setValue(e, v)
      model.set(key, { e, v })
      if (checkpoints.has(op)) checkAll(t, table, model, `seed ${seed} after ${op} ops`)
    }
  }
})

t.test('keys whose FNV-1a hashes collide, or share their low bits', async (t) => {
  // Find real 32-bit collisions among many keys (the table rehashes from the keys' bytes, so a
  // forged hash would not do).
  const byHash = new Map<number, string>()
  const pairs: Array<[string, string]> = []
  for (let i = 0; pairs.length < 6 && i < 2_000_000; i++) {
    const key = `c:k${i.toString(36)}`
    const h = fnv1a32(key)
    const other = byHash.get(h)
    if (other !== undefined) pairs.push([other, key])
    else byHash.set(h, key)
  }
  t.ok(pairs.length >= 2, `found ${pairs.length} colliding pairs`)
  const table = new KeyTable()
  const model = new Map<string, { e: number, v: number }>()
  let v = 1
  for (const [a, b] of pairs) {
    t.equal(fnv1a32(a), fnv1a32(b), `${a} and ${b} share a hash`)
    const ea = insert(table, a)
    t.equal(find(table, b), -1, `${b} is not ${a}`)
    const eb = insert(table, b)
    t.not(ea, eb, 'two entries')
    table.setValue(ea, v); model.set(a, { e: ea, v: v++ })
    table.setValue(eb, v); model.set(b, { e: eb, v: v++ })
  }
  // Fill past several growth steps with keys that share the low 16 bits of their hash (one
  // partition of 65536 holds such keys), then check the colliding ones again.
  const low = fnv1a32('c:anchor') & 0xffff
  for (let i = 0; model.size < 3000; i++) {
    const key = `c:${i}`
    if ((fnv1a32(key) & 0xffff) !== low || model.has(key)) continue
    const e = insert(table, key)
    table.setValue(e, v)
    model.set(key, { e, v: v++ })
  }
  checkAll(t, table, model, 'colliding and low-bit-sharing keys')
})

t.test('many partitions\' worth of keys in one table; several tables growing side by side', async (t) => {
  const tables = [new KeyTable(), new KeyTable(), new KeyTable()]
  const models = tables.map(() => new Map<string, { e: number, v: number }>())
  for (let i = 0; i < 300_000; i++) {
    const key = i % 3 === 0 ? `post:${i}` : i % 3 === 1 ? `video:v${i}` : `user:${i * 7919}`
    const k = fnv1a32(key) % 3
    const e = insert(tables[k], key)
    tables[k].setValue(e, i + 1)
    models[k].set(key, { e, v: i + 1 })
  }
  for (let k = 0; k < 3; k++) checkAll(t, tables[k], models[k], `table ${k}`)
  // 100k keys in one table: records, keys and slots span many chunks.
  t.ok(tables[0].count > 90_000)
  t.ok(tables[0].byteSize < tables[0].count * 40, `${(tables[0].byteSize / tables[0].count).toFixed(1)} bytes per entry`)
})

t.test('flags and the float kept per entry stay apart from the key and the value', async (t) => {
  const table = new KeyTable()
  const keys = Array.from({ length: 5000 }, (_, i) => i % 2 === 0 ? `post:${i}` : `post:id-${i}`)
  for (const [i, key] of keys.entries()) {
    const e = insert(table, key)
    table.setValue(e, -i)
    table.setAux(e, i / 4)
    if (i % 3 === 0) table.setFlag(e, 0x40000000)
    if (i % 5 === 0) table.setFlag(e, 0x80000000)
  }
  let bad = 0
  for (const [i, key] of keys.entries()) {
    const e = find(table, key)
    if (e !== i || table.value(e) !== -i || table.aux(e) !== i / 4 || table.key(e) !== key ||
      table.hasFlag(e, 0x40000000) !== (i % 3 === 0) || table.hasFlag(e, 0x80000000) !== (i % 5 === 0)) bad++
    table.clearFlag(e, 0x40000000)
    if (table.hasFlag(e, 0x40000000) || table.key(e) !== key) bad++
  }
  t.equal(bad, 0)
})

t.test('reserve sizes the slots once; the longest keys; hashBytes is FNV-1a', async (t) => {
  const table = new KeyTable()
  table.reserve(50_000)
  const before = table.byteSize
  const type = 'a'.repeat(MAX_TYPE_LEN)
  for (let i = 0; i < 1000; i++) insert(table, `${type}:${String(i).padStart(MAX_KEY_LEN - MAX_TYPE_LEN - 1, 'y')}`)
  t.equal(table.key(999), `${type}:${String(999).padStart(MAX_KEY_LEN - MAX_TYPE_LEN - 1, 'y')}`)
  t.equal(table.keyLength(0), MAX_KEY_LEN)
  t.ok(table.byteSize > before, 'the keys took room')
  const raw = 'z'.repeat(255)
  const e = insert(table, raw)
  t.equal(table.key(e), raw, 'a 255-byte key with no type')
  t.throws(() => insert(table, 'z'.repeat(256)), RangeError)
  for (const key of ['', 'a', 'post:1', 'x:' + 'i'.repeat(128)]) t.equal(hashBytes(enc(key), 0, key.length), fnv1a32(key))
})

t.test('a disposed table gives its chunks back: the next table of the thread reuses them', async (t) => {
  const fill = (table: KeyTable, tag: string): void => {
    for (let i = 0; i < 50_000; i++) table.setValue(insert(table, `${tag}:${i}`), i)
  }
  const a = new KeyTable()
  fill(a, 'a')
  const slabs = chunkPool.slabs
  a.dispose()
  t.equal(a.count, 0)
  t.equal(find(a, 'a:1'), -1, 'empty after dispose')
  const b = new KeyTable()
  fill(b, 'b')
  t.equal(chunkPool.slabs, slabs, 'no new slab for a table the size of the one disposed')
  t.equal(b.value(find(b, 'b:49999')), 49_999)
  fill(a, 'c')
  t.equal(a.value(find(a, 'c:123')), 123, 'a disposed table works again')
  t.equal(b.value(find(b, 'b:123')), 123, 'and leaves the other alone')
})
