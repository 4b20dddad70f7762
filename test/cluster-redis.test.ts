// RedisCheckpointStore against a private redis-server and a private 3-master Redis Cluster.
import t from 'tap'
import { Redis } from 'ioredis'
import { partitionOf } from '../src/core/keys'
import type { Checkpoint, DeltaRecord } from '../src/core/records'
import { checkpointKeys, RedisCheckpointStore, type RedisCheckpointStoreOptions } from '../src/storage/redis-checkpoints'
import { freePort } from './support/ports'
import { startRedis } from './support/redis'
import { startRedisCluster } from './support/redis-cluster'

const P = 64
let prefixN = 0
function prefix (): string { return `t${process.pid}-${++prefixN}` }

function cp (partition: number, epoch: number, seq: number, values: Record<string, number>, extra: Partial<Checkpoint> = {}): Checkpoint {
  return { partition, epoch, seq, ts: 1_700_000_000_000 + seq, keys: Object.keys(values), values: Object.values(values), dedup: [], ...extra }
}

function asMap (c: Checkpoint | null): Record<string, number> {
  const out: Record<string, number> = {}
  if (c === null) return out
  for (let i = 0; i < c.keys.length; i++) out[c.keys[i]] = c.values[i]
  return out
}

t.test('options are validated at construction', async (t) => {
  const cases: Array<[string, Partial<RedisCheckpointStoreOptions>]> = [
    ['empty url', { url: '' }],
    ['not a url', { url: 'localhost:6379' }],
    ['wrong scheme', { url: 'http://127.0.0.1:6379' }],
    ['bad node in list', { url: 'redis://127.0.0.1:1,nope' }],
    ['bad prefix', { url: 'redis://127.0.0.1:6379', keyPrefix: 'a{b}' }],
    ['zero timeout', { url: 'redis://127.0.0.1:6379', commandTimeoutMs: 0 }]
  ]
  for (const [name, opts] of cases) {
    await t.rejects(RedisCheckpointStore.open(opts as RedisCheckpointStoreOptions), { code: 'invalid_option' }, name)
  }
})

t.test('an unreachable Redis at open is storage_unavailable', async (t) => {
  const port = await freePort()
  await t.rejects(RedisCheckpointStore.open({ url: `redis://127.0.0.1:${port}`, startTimeoutMs: 1000 }), { code: 'storage_unavailable', message: new RegExp(String(port)) })
})

for (const mode of ['single', 'cluster'] as const) {
  t.test(`${mode}: save, load, incremental updates, fencing, atomicity`, async (t) => {
    let url: string
    let isCluster: boolean
    if (mode === 'single') {
      url = (await startRedis(t)).url
      isCluster = false
    } else {
      url = (await startRedisCluster(t)).urls[0] // one node is enough: the cluster is detected
      isCluster = true
    }
    const keyPrefix = prefix()
    const store = await RedisCheckpointStore.open({ url, keyPrefix })
    t.teardown(async () => { await store.close() })
    t.equal(store.isCluster, isCluster, 'mode detected')
    t.equal(store.incremental, true)

    t.equal(await store.load(7), null, 'nothing saved yet')

    const p = partitionOf('post:1', P)
    const dedup = [{ kind: 1 as const, tag: 'client-a', value: 17, ts: 1_700_000_000_123 }, { kind: 2 as const, tag: 'post:1\nidem-1', value: -4, ts: 1_700_000_000_456 }]
    await store.save([cp(p, 3, 10, { 'post:1': 5, 'post:2': -7, 'video:x': 2 ** 53 - 1 }, { dedup, logOffset: 41 }), cp(9, 3, 4, { 'like:9': 1 })])
    const loaded = await store.load(p)
    t.same(loaded, {
      ...cp(p, 3, 10, { 'post:1': 5, 'post:2': -7, 'video:x': 2 ** 53 - 1 }, { dedup, logOffset: 41 }),
      ps: [5, 0, 2 ** 53 - 1], // saved without totals: the value is all this replica's own
      ns: [0, 7, 0]
    }, 'round trip')
    t.same(asMap(await store.load(9)), { 'like:9': 1 })

    // Incremental: only changed counters; 0 deletes the field; dedup is replaced; logOffset may go.
    await store.save([cp(p, 3, 12, { 'post:2': 0, 'post:3': 8 })])
    const after = await store.load(p)
    t.same(asMap(after), { 'post:1': 5, 'video:x': 2 ** 53 - 1, 'post:3': 8 })
    t.equal(after?.seq, 12)
    t.same(after?.dedup, [])
    t.equal(after?.logOffset, undefined)

    // Replica totals, the features blob and Redis-readable HyperLogLogs.
    const helper = isCluster ? null : new Redis(url)
    let hll: Buffer
    if (helper !== null) {
      await helper.pfadd('scratch-hll', 'alice', 'bob', 'carol')
      hll = await helper.getBuffer('scratch-hll') as Buffer
      helper.disconnect()
    } else {
      const { Cluster } = await import('ioredis')
      const c = new Cluster([{ host: '127.0.0.1', port: Number(new URL(url).port) }])
      await c.pfadd('scratch-hll', 'alice', 'bob', 'carol')
      hll = await c.getBuffer('scratch-hll') as Buffer
      c.disconnect()
    }
    const features = Buffer.from([0, 1, 2, 255, 0, 10, 13])
    await store.save([cp(11, 1, 1, { 'post:r': 0, 'post:s': 3 }, { ps: [5, 4], ns: [5, 1], features, hlls: [['post:s', hll]] })])
    const withTotals = await store.load(11)
    t.same(withTotals?.keys, ['post:s', 'post:r'], 'a counter at 0 keeps its totals')
    t.same(withTotals?.values, [3, 0])
    t.same(withTotals?.ps, [4, 5])
    t.same(withTotals?.ns, [1, 5])
    t.same(withTotals?.features, features, 'features blob byte for byte')
    await store.save([cp(11, 1, 2, { 'post:r': 0 }, { ps: [0], ns: [0] })])
    const cleared = await store.load(11)
    t.same(cleared?.keys, ['post:s'], 'totals of 0 delete the entry')
    t.equal(cleared?.features, undefined, 'a save without features clears them')

    // Other services read a value with one documented command.
    const raw = isCluster ? null : new Redis(url)
    if (raw !== null) {
      t.teardown(() => raw.disconnect())
      t.equal(await raw.hget(`${keyPrefix}:{p${partitionOf('post:1', P)}}:values`, 'post:1'), '5')
      t.equal(await raw.pfcount(`${keyPrefix}:{p11}:hll:post:s`), 3, 'PFCOUNT reads a saved HyperLogLog')
    } else {
      const { Cluster } = await import('ioredis')
      const c = new Cluster([{ host: '127.0.0.1', port: Number(new URL(url).port) }])
      t.teardown(() => c.disconnect())
      t.equal(await c.hget(`${keyPrefix}:{p${partitionOf('post:1', P)}}:values`, 'post:1'), '5')
      t.equal(await c.pfcount(`${keyPrefix}:{p11}:hll:post:s`), 3, 'PFCOUNT reads a saved HyperLogLog')
      const k = checkpointKeys(keyPrefix, p)
      const slots = await Promise.all([k.values, k.meta, k.dedup, k.pn, k.features, k.hll('post:1')].map(async (key) => await c.cluster('KEYSLOT', key)))
      t.equal(new Set(slots).size, 1, 'all keys of a partition share one slot')
    }

    // Fencing, table-driven: [what, checkpoint, expected code or null].
    const fencing: Array<[string, Checkpoint, string | null]> = [
      ['lower epoch', cp(p, 2, 99, { 'post:1': 1000 }), 'fenced'],
      ['same epoch, older seq', cp(p, 3, 11, { 'post:1': 1000 }), 'fenced'],
      ['same epoch, same seq (retry)', cp(p, 3, 12, { 'post:1': 5 }), null],
      ['higher epoch', cp(p, 4, 13, { 'post:1': 6 }), null],
      ['back to the old epoch', cp(p, 3, 14, { 'post:1': 1000 }), 'fenced']
    ]
    for (const [what, c, code] of fencing) {
      if (code === null) await t.resolves(store.save([c]), what)
      else await t.rejects(store.save([c]), { code }, what)
    }
    t.same(asMap(await store.load(p))['post:1'], 6, 'refused saves changed nothing')

    // A new owner claims the partitions: the old owner (epoch 4) is fenced before the new one saves.
    const epoch = await store.claimEpoch([p, 9, 20], 2)
    t.equal(epoch, 5, 'above every stored epoch')
    await t.rejects(store.save([cp(p, 4, 15, { 'post:1': 1000 })]), { code: 'fenced' })
    await t.rejects(store.save([cp(20, 4, 1, { 'x:1': 1 })]), { code: 'fenced' }, 'claimed partition without a checkpoint')
    t.equal(await store.load(20), null, 'a claim alone is not a checkpoint')
    await store.save([cp(p, 5, 15, { 'post:1': 7 })])
    t.equal(await store.claimEpoch([p], 5), 6, 'a second claim goes above the first')

    // Appends are confirmed against the owners: records of epoch 6 pass, one of epoch 5 is fenced.
    const rec = (partition: number, epoch: number): DeltaRecord => ({ partition, epoch, seq: 1, ts: 0, keys: [], deltas: [], dedup: [] } as unknown as DeltaRecord)
    await t.resolves(store.checkOwners([rec(p, 6), rec(9, 6), rec(40, 1)]), 'the current owner\'s records (and an unclaimed partition\'s) are confirmed')
    await t.rejects(store.checkOwners([rec(40, 1), rec(p, 5), rec(9, 6)]), { code: 'fenced', message: new RegExp(`partition ${p} was claimed by a newer owner \\(epoch 6\\) than this node's \\(5\\)`) }, 'a stale owner\'s records are fenced, naming the partition')

    // A batch where one partition is fenced still saves the others, then reports the fence.
    await t.rejects(store.save([cp(p, 1, 1, { 'post:1': 0 }), cp(30, 1, 1, { 'y:1': 3 })]), { code: 'fenced', message: new RegExp(`partition ${p}`) })
    t.same(asMap(await store.load(30)), { 'y:1': 3 })

    // Malformed checkpoints are refused before touching Redis.
    const invalid: Array<[string, Checkpoint]> = [
      ['fractional value', cp(31, 1, 1, { 'a:1': 1.5 })],
      ['unsafe value', cp(31, 1, 1, { 'a:1': 2 ** 53 })],
      ['negative seq', cp(31, 1, -1, { 'a:1': 1 })],
      ['bad logOffset', cp(31, 1, 1, { 'a:1': 1 }, { logOffset: -2 })],
      ['ps without ns', cp(31, 1, 1, { 'a:1': 1 }, { ps: [1] })],
      ['negative total', cp(31, 1, 1, { 'a:1': 1 }, { ps: [1], ns: [-1] })],
      ['totals not parallel', cp(31, 1, 1, { 'a:1': 1 }, { ps: [1, 2], ns: [0, 0] })]
    ]
    for (const [what, c] of invalid) await t.rejects(store.save([c]), { code: 'invalid_argument' }, what)
    t.equal(await store.load(31), null)

    // Atomicity: every save writes value = seq into all keys; concurrent loads must never see a mix.
    const keys = Array.from({ length: 2000 }, (_, i) => `post:${i}`)
    const saves = (async () => {
      for (let seq = 1; seq <= 15; seq++) {
        await store.save([{ partition: 40, epoch: 1, seq, ts: seq, keys, values: keys.map(() => seq), dedup: [] }])
      }
    })()
    const mixed: string[] = []
    let loads = 0
    let done = false
    void saves.finally(() => { done = true })
    while (!done) {
      const c = await store.load(40)
      loads++
      if (c !== null && (c.keys.length !== keys.length || c.values.some((v) => v !== c.seq))) mixed.push(`seq ${c.seq}`)
    }
    await saves
    t.same(mixed, [], `no load out of ${loads} saw a partial save`)
    const last = await store.load(40)
    t.equal(last?.seq, 15)
  })
}

t.test('outage: a hung Redis fails saves with storage_unavailable; saves work once it is back', async (t) => {
  const redis = await startRedis(t)
  const store = await RedisCheckpointStore.open({ url: redis.url, keyPrefix: prefix(), commandTimeoutMs: 300 })
  t.teardown(async () => { await store.close() })
  await store.save([cp(1, 1, 1, { 'post:1': 1 })])
  redis.proc.kill('SIGSTOP')
  await t.rejects(store.save([cp(1, 1, 2, { 'post:1': 2 })]), { code: 'storage_unavailable' })
  t.match(store.status(), { ok: false })
  redis.proc.kill('SIGCONT')
  await store.save([cp(1, 1, 3, { 'post:1': 3 })])
  t.same(store.status(), { ok: true })
  const c = await store.load(1)
  t.equal(c?.seq, 3)
  t.same(asMap(c), { 'post:1': 3 })
})

t.test('outage: a cluster master restarts; its partitions save again afterwards', async (t) => {
  const cluster = await startRedisCluster(t, { persistent: true })
  const store = await RedisCheckpointStore.open({ url: cluster.urls.join(','), keyPrefix: prefix(), commandTimeoutMs: 500 })
  t.teardown(async () => { await store.close() })
  const all = Array.from({ length: 16 }, (_, p) => cp(p, 1, 1, { [`post:${p}`]: p + 1 }))
  await store.save(all)
  await cluster.nodes[0].stop('SIGKILL')
  await t.rejects(store.save(all.map((c) => ({ ...c, seq: 2, values: [100] }))), { code: 'storage_unavailable' }, 'partitions on the stopped master fail')
  await cluster.nodes[0].restart()
  // The client reconnects on its own; retry as the checkpoint timer would.
  let saved = false
  for (let i = 0; i < 50 && !saved; i++) {
    try {
      await store.save(all.map((c) => ({ ...c, seq: 3, values: [(c.partition + 1) * 10] })))
      saved = true
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
  t.ok(saved, 'saves succeed after the restart')
  const got: Array<Record<string, number>> = []
  for (const c of all) got.push(asMap(await store.load(c.partition)))
  t.same(got, all.map((c) => ({ [`post:${c.partition}`]: (c.partition + 1) * 10 })), 'every partition holds the last save')
})
