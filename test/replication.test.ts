// CRDT replicas: every counter is a PN-counter per replica (region). Nodes exchange records of
// their totals; merging takes the larger total per replica, so records may arrive in any order,
// any number of times, stale or relayed, and the nodes still converge to the true sum.
import t from 'tap'
import { PartitionState } from '../actors/partition-state'
import { decodeFrames, decodeRecord, encodeFrames } from '../src/core/record-codec'
import { fnv1a32 } from '../src/core/keys'
import type { DeltaRecord } from '../src/core/records'
import { getValue, startNode } from './support/node-process'
import { rng } from './support/load'

function keyArgs (key: string): [Buffer, number, number, number] {
  const buf = Buffer.from(key, 'latin1')
  return [buf, 0, buf.length, fnv1a32(key)]
}

const replica = (id: string): PartitionState => new PartitionState({
  partition: 0, epoch: 1, replica: id, dedupWindowMs: 60_000, dedupMaxEntries: 100, trackDirty: false, sampleSize: 4
})

t.test('property: replicas fed each other\'s records in any order, any number of times, converge', async (t) => {
  const rand = rng(20261122)
  const keys = ['c:a', 'c:b', 'c:c', 'c:d', 'c:e']
  for (let run = 0; run < 300; run++) {
    const nodes = [replica('eu'), replica('us'), replica('ap')]
    const truth = new Map<string, number>()
    const mail: DeltaRecord[] = [] // every record any node ever exported or logged, for later (re)delivery
    for (let step = 0; step < 40; step++) {
      const n = nodes[Math.floor(rand() * nodes.length)]
      const r = rand()
      if (r < 0.6) {
        const key = keys[Math.floor(rand() * keys.length)]
        const by = Math.floor(rand() * 21) - 8
        n.increment(...keyArgs(key), by, [])
        truth.set(key, (truth.get(key) ?? 0) + by)
      } else if (r < 0.75) {
        const sealed: DeltaRecord[] = []
        n.seal(Date.now(), sealed)
        mail.push(...sealed, n.exportTotals(Date.now()))
      } else if (mail.length > 0) {
        // Deliver some old or new record, possibly again, possibly to its own origin.
        const rec = mail[Math.floor(rand() * mail.length)]
        if (rec.ps !== undefined && rec.ns !== undefined && rec.replica !== undefined) n.mergeReplica(rec.replica, rec.keys, rec.ps, rec.ns)
      }
    }
    // Finally every node's latest totals reach every other, in a random order, twice.
    for (const n of nodes) n.seal(Date.now(), [])
    const finals = nodes.map((n) => n.exportTotals(Date.now()))
    const deliveries = [...finals, ...finals].sort(() => rand() - 0.5)
    for (const n of nodes) for (const rec of deliveries) n.mergeReplica(rec.replica as string, rec.keys, rec.ps as number[], rec.ns as number[])
    for (const key of keys) {
      const values = nodes.map((n) => n.valueOf(key))
      if (!values.every((v) => v === (truth.get(key) ?? 0))) {
        t.fail(`run ${run}: ${key} = ${values.join(', ')}; the true sum is ${truth.get(key) ?? 0}`)
        return
      }
    }
  }
  t.pass('300 random runs converged to the true sums')
})

t.test('two nodes exchanging their state over HTTP converge, and keep it after kill -9', async (t) => {
  let eu = await startNode(t, { env: { REPLICA_ID: 'eu' } })
  const us = await startNode(t, { env: { REPLICA_ID: 'us' } })
  const rand = rng(7)
  const truth = new Map<string, number>()
  const stale: Buffer[] = []
  const exportOf = async (base: string): Promise<Buffer> => Buffer.from(await (await fetch(`${base}/v1/replication/state`)).arrayBuffer())
  const mergeInto = async (base: string, body: Buffer): Promise<any> => {
    const r = await fetch(`${base}/v1/replication/merge`, { method: 'POST', body })
    t.equal(r.status, 200, 'merge accepted')
    return await r.json()
  }
  for (let round = 0; round < 6; round++) {
    for (let i = 0; i < 30; i++) {
      const node = rand() < 0.5 ? eu : us
      const key = `k${Math.floor(rand() * 8)}`
      const by = Math.floor(rand() * 11) - 3
      const r = await fetch(`${node.base}/v1/counter/post/${key}/increment`, { method: 'POST', body: JSON.stringify({ by }) })
      t.equal(r.status, 200)
      truth.set(key, (truth.get(key) ?? 0) + by)
    }
    const fromEu = await exportOf(eu.base)
    const fromUs = await exportOf(us.base)
    stale.push(fromEu, fromUs)
    // Deliver this round's state, some stale state of earlier rounds, and duplicates.
    await mergeInto(us.base, fromEu)
    await mergeInto(eu.base, stale[Math.floor(rand() * stale.length)])
    await mergeInto(us.base, fromEu)
  }
  await mergeInto(eu.base, await exportOf(us.base))
  await mergeInto(us.base, await exportOf(eu.base))
  for (const [key, sum] of truth) {
    t.equal(await getValue(eu.base, 'post', key), sum, `eu: post:${key} is the sum of both regions' increments`)
    t.equal(await getValue(us.base, 'post', key), sum, `us: post:${key} too`)
  }
  const breakdown = await (await fetch(`${eu.base}/v1/counter/post/k1?replicas=true`)).json() as any
  t.same(breakdown.replicas.map((r: any) => r.replica).sort(), ['eu', 'us'], 'the breakdown names both replicas')
  t.equal(breakdown.value, truth.get('k1') ?? 0)
  t.equal(breakdown.replicas.reduce((v: number, r: any) => v + r.p - r.n, 0), breakdown.value, 'Σ(P − N) is the value')
  const again = await mergeInto(eu.base, await exportOf(us.base))
  t.equal(again.countersChanged, 0, 'merging the same state again changes nothing')

  eu = await eu.restart()
  for (const [key, sum] of truth) t.equal(await getValue(eu.base, 'post', key), sum, `eu after kill -9: post:${key}`)

  const bad = await fetch(`${eu.base}/v1/replication/merge`, { method: 'POST', body: Buffer.from('not records') })
  t.equal(bad.status, 400)
  t.equal((await bad.json() as any).error.code, 'invalid_body')
  const own: DeltaRecord[] = []
  decodeFrames(await exportOf(us.base), (r) => own.push(decodeRecord(r.payload)))
  const wrongPartition = own.filter((r) => r.keys.length > 0).map((r) => ({ ...r, partition: (r.partition + 1) % 64 }))
  const r = await fetch(`${eu.base}/v1/replication/merge`, { method: 'POST', body: encodeFrames(wrongPartition) })
  t.equal((await r.json() as any).error.code, 'invalid_body', 'a record whose keys are not in its partition is refused')
})
