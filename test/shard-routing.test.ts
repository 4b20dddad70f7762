// Two shards with their own embedded storage and routers, wired by real shared-memory rings in
// one process: ops reach the shard owning their partition, values and resends come back right,
// a unit too big for one ring message is chunked and reassembled, an outbox over its limit
// refuses a unit without applying any of it, and control requests reach every shard.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pino from 'pino'
import t from 'tap'
import { Shard } from '../actors/shard'
import { loadConfig } from '../config/loader'
import type { CounterdError } from '../src/core/errors'
import { fnv1a32 } from '../src/core/keys'
import { OP_GET, OP_INCR } from '../src/core/op-codec'
import { InflightGauge } from '../src/routing/inflight'
import { Router, type UnitOwner } from '../src/routing/router'
import { Doorbell, SpscRing } from '../src/routing/spsc-ring'
import { openStorage } from '../src/storage/open-storage'
import type { TeardownHost } from './support/redis'

/** Records what a unit's parts report; resolves when every part is done. */
class Recorder implements UnitOwner {
  parts = 0
  values = new Map<number, number[]>() // shard → values in op order
  refused = 0
  dup = false
  errors: CounterdError[] = []
  done: Promise<void>
  private finish!: () => void
  constructor () { this.done = new Promise((resolve) => { this.finish = resolve }) }
  onApplied (shard: number, values: Float64Array | null, n: number, refused: number, dup: boolean): void {
    if (values !== null) this.values.set(shard, Array.from(values.subarray(0, n)))
    this.refused += refused
    this.dup ||= dup
  }

  onPartDone (err: CounterdError | null): void {
    if (err !== null) this.errors.push(err)
    if (--this.parts === 0) this.finish()
  }
}

async function twoShards (t: TeardownHost, env: Record<string, string> = {}): Promise<Router[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-routing-'))
  const config = loadConfig({ DATA_DIR: dir, PARTITIONS: '8', WORKERS: '2', LOG_LEVEL: 'silent', ...env })
  const logger = pino({ level: 'silent' })
  const n = 2
  const rings = [[null, SpscRing.allocate(config.shardRingBytes)], [SpscRing.allocate(config.shardRingBytes), null]]
  const bells = [Doorbell.allocate(), Doorbell.allocate()]
  const gauge = InflightGauge.allocate()
  const shards: Shard[] = []
  const routers: Router[] = []
  for (let s = 0; s < n; s++) {
    const partitions = [s, s + 2, s + 4, s + 6]
    const storage = await openStorage(config, s, n, partitions, 1, { logger })
    const shard = new Shard({ index: s, shards: n, config, storage, logger })
    await shard.recover()
    const router = new Router({
      index: s,
      shards: n,
      partitions: config.partitions,
      shard,
      links: {
        out: rings[s].map((m) => m === null ? null : new SpscRing(m)),
        in: rings.map((row) => row[s]).map((m) => m === null ? null : new SpscRing(m)),
        bells: bells.map((b) => new Doorbell(b))
      },
      inflight: new InflightGauge(gauge, config.maxInflightOps),
      outboxLimit: Number(env.OUTBOX_LIMIT ?? config.shardRingBytes),
      logger
    })
    router.handlers.set('top', (a: { type: string | null, k: number }) => shard.top(a.type, a.k))
    router.start()
    shards.push(shard)
    routers.push(router)
  }
  // Pending waits on the rings do not hold the event loop open by themselves.
  const keepAlive = setInterval(() => {}, 1000)
  t.teardown(async () => {
    clearInterval(keepAlive)
    for (const s of shards) await s.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return routers
}

const keyOn = (shard: number, i: number): string => {
  // The i-th key "post:k…" whose partition (mod 8) belongs to `shard` (p mod 2).
  let found = -1
  for (let k = 0; ; k++) {
    const key = `post:k${k}`
    if ((fnv1a32(key) % 8) % 2 === shard && ++found === i) return key
  }
}

t.test('ops reach their owning shard; values, reads and dedup come back', async (t) => {
  const [r0, r1] = await twoShards(t)
  t.equal(r0.shardOf(3), 1)
  const keys = [keyOn(0, 0), keyOn(1, 0), keyOn(1, 1), keyOn(0, 1)]
  const w = new Recorder()
  r0.beginUnit(w, null, -1, true)
  keys.forEach((k, i) => r0.op(OP_INCR, fnv1a32(k), k, 10 + i))
  t.ok(r0.endUnit())
  t.equal(w.parts, 2, 'one part per shard touched')
  await w.done
  t.same(w.errors, [])
  t.same(w.values.get(0), [10, 13], 'the local part: values after each op')
  t.same(w.values.get(1), [11, 12], 'the remote part: values in the order its ops were added')

  const rd = new Recorder()
  r1.beginUnit(rd, null, -1, true, true)
  for (const k of keys) r1.op(OP_GET, fnv1a32(k), k)
  t.ok(r1.endUnit())
  await rd.done
  t.same([...(rd.values.get(1) ?? []), ...(rd.values.get(0) ?? [])], [11, 12, 10, 13], 'another shard reads what was written')

  // A stream frame resent with the same (clientId, seq) counts once, in every partition it touched.
  for (let attempt = 0; attempt < 2; attempt++) {
    const f = new Recorder()
    r1.beginUnit(f, 'client-1', 7, false)
    for (const k of keys) r1.op(OP_INCR, fnv1a32(k), k, 1)
    t.ok(r1.endUnit())
    await f.done
    t.equal(f.dup, attempt === 1, attempt === 0 ? 'the first send applies' : 'the resend is recognised')
  }
  const after = new Recorder()
  r0.beginUnit(after, null, -1, true, true)
  for (const k of keys) r0.op(OP_GET, fnv1a32(k), k)
  r0.endUnit()
  await after.done
  t.same([...(after.values.get(0) ?? []), ...(after.values.get(1) ?? [])], [11, 14, 12, 13], 'applied once')
  t.ok(r0.idle && r1.idle, 'nothing left in flight')
})

t.test('a unit larger than one ring message is chunked and arrives whole', async (t) => {
  const [r0, r1] = await twoShards(t, { SHARD_RING_BYTES: '65536' })
  const key = keyOn(1, 3)
  const w = new Recorder()
  r0.beginUnit(w, null, -1, true)
  for (let i = 0; i < 5000; i++) r0.op(OP_INCR, fnv1a32(key), key, 1) // about 75 KB of ops, messages of at most 16 KB
  t.ok(r0.endUnit())
  await w.done
  t.same(w.errors, [])
  const values = w.values.get(1) ?? []
  t.equal(values.length, 5000)
  t.equal(values[4999], 5000, 'every op applied, in order')
  const rd = new Recorder()
  r1.beginUnit(rd, null, -1, true, true)
  r1.op(OP_GET, fnv1a32(key), key)
  r1.endUnit()
  await rd.done
  t.same(rd.values.get(1), [5000])
})

t.test('an outbox over its limit refuses a unit and applies none of it', async (t) => {
  const [r0] = await twoShards(t, { OUTBOX_LIMIT: '256' })
  const local = keyOn(0, 5)
  const remote = keyOn(1, 5)
  const first = new Recorder()
  r0.beginUnit(first, null, -1, true)
  for (let i = 0; i < 20; i++) r0.op(OP_INCR, fnv1a32(remote), remote, 1)
  t.ok(r0.endUnit(), 'an empty outbox takes a unit of any size')
  const second = new Recorder()
  r0.beginUnit(second, null, -1, true)
  r0.op(OP_INCR, fnv1a32(local), local, 100)
  r0.op(OP_INCR, fnv1a32(remote), remote, 100)
  t.notOk(r0.endUnit(), 'in the same turn, past the limit: refused')
  await first.done
  const rd = new Recorder()
  r0.beginUnit(rd, null, -1, true, true)
  r0.op(OP_GET, fnv1a32(local), local)
  r0.op(OP_GET, fnv1a32(remote), remote)
  t.ok(r0.endUnit(), 'once flushed, units are taken again')
  await rd.done
  t.same(rd.values.get(0), [0], 'the refused unit\'s local op was not applied')
  t.same(rd.values.get(1), [20], 'nor its remote one')
})

t.test('control requests reach every shard', async (t) => {
  const [r0, r1] = await twoShards(t)
  const w = new Recorder()
  r0.beginUnit(w, null, -1, true)
  for (const k of [keyOn(0, 7), keyOn(1, 7)]) r0.op(OP_INCR, fnv1a32(k), k, 5)
  r0.endUnit()
  await w.done
  const tops = await r1.controlAll('top', { type: null, k: 5 }) as Array<Array<{ key: string }>>
  t.equal(tops.length, 2, 'one answer per shard')
  t.same(tops.map((list) => list.map((e) => e.key)), [[keyOn(0, 7)], [keyOn(1, 7)]], 'each shard answers for its own counters')
  await t.rejects(r0.control(1, 'no-such-handler', null), { code: 'internal' }, 'an unknown control fails with a coded error')
})
