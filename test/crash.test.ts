// kill -9 under load with ack=durable, at several random moments, restarting on the same data dir
// each time: every acknowledged increment must be there, and no key may exceed what was sent.
import fs from 'node:fs'
import path from 'node:path'
import t, { type Test } from 'tap'
import { queryValues, startNode, type NodeProcess } from './support/node-process'
import { Tally, rng, runLoad } from './support/load'

function checkBounds (t: Test, tally: Tally, values: Record<string, number>, when: string): void {
  let below = 0
  let above = 0
  for (const key of tally.keys()) {
    const v = values[key]
    if (v < (tally.acked.get(key) ?? 0)) below++
    if (v > (tally.sent.get(key) ?? 0)) above++
  }
  t.equal(below, 0, `${when}: no key lost an acknowledged increment`)
  t.equal(above, 0, `${when}: no key counts more than was sent`)
}

t.test('kill -9 under load loses nothing acknowledged', async (t) => {
  const seed = Number(process.env.CRASH_SEED ?? Date.now() % 100000)
  t.comment(`seed ${seed} (CRASH_SEED=${seed} replays the kill moments)`)
  const rand = rng(seed)
  // A short checkpoint interval so kills also land during checkpoints and WAL segment deletion.
  let node: NodeProcess = await startNode(t, { env: { ACK_MODE: 'durable', CHECKPOINT_INTERVAL_MS: '300' } })
  const tally = new Tally()
  for (let round = 1; round <= 4; round++) {
    let killed = false
    const killAfter = 200 + Math.floor(rand() * 1500)
    const load = runLoad({ base: node.base, keys: 60, httpClients: 12, streams: 4, opsPerFrame: 40, until: () => killed, seed: seed + round, tally, clientIdPrefix: `crash-${round}` })
    await new Promise((resolve) => setTimeout(resolve, killAfter))
    await node.kill9()
    killed = true
    await load
    t.ok(tally.ackedOps > 0, `round ${round}: killed after ${killAfter} ms with ${tally.ackedOps} ops acknowledged so far`)
    node = await node.restart()
    checkBounds(t, tally, await queryValues(node.base, tally.keys()), `round ${round}`)
    // What the recovered node says is now the truth to build on: an unacked op it kept counts as sent and acked.
    const values = await queryValues(node.base, tally.keys())
    for (const key of tally.keys()) { tally.acked.set(key, values[key]); tally.sent.set(key, values[key]) }
  }
})

t.test('a torn WAL tail is recovered, not fatal', async (t) => {
  let node = await startNode(t, { env: { ACK_MODE: 'durable', CHECKPOINT_INTERVAL_MS: '600000' } })
  const tally = new Tally()
  const stopAt = Date.now() + 800
  await runLoad({ base: node.base, keys: 20, httpClients: 4, streams: 2, opsPerFrame: 20, until: () => Date.now() > stopAt, seed: 3, tally })
  await node.kill9()
  // A crash in the middle of a write leaves a partial frame: a header promising more than follows.
  const walDir = path.join(node.dataDir, 'wal')
  const segments = fs.readdirSync(walDir).filter((f) => f.endsWith('.wal')).sort()
  t.ok(segments.length > 0, 'there are WAL segments')
  const torn = Buffer.alloc(30)
  torn.writeUInt32LE(5000, 0)
  torn.writeUInt32LE(0xdeadbeef, 4)
  for (const seg of segments) fs.appendFileSync(path.join(walDir, seg), torn)
  node = await node.restart()
  t.match(node.output(), /torn tail/, 'the node says it ignored a torn tail')
  const values = await queryValues(node.base, tally.keys())
  for (const key of tally.keys()) t.equal(values[key], tally.acked.get(key), `${key} recovered exactly`)
  // And it keeps counting after the repair.
  const r = await fetch(`${node.base}/v1/counter/post/k1/increment`, { method: 'POST' })
  t.equal(((await r.json()) as { value: number }).value, (tally.acked.get('post:k1') ?? 0) + 1)
})

t.test('SIGTERM drains: exit 0, everything kept, replayed WAL dropped', async (t) => {
  let node = await startNode(t)
  const tally = new Tally()
  const stopAt = Date.now() + 500
  await runLoad({ base: node.base, keys: 20, httpClients: 4, streams: 2, opsPerFrame: 20, until: () => Date.now() > stopAt, seed: 5, tally })
  t.equal(await node.stop(), 0, 'exit code 0')
  t.match(node.output(), /"msg":"stopped"/)
  node = await node.restart()
  const values = await queryValues(node.base, tally.keys())
  for (const key of tally.keys()) t.equal(values[key], tally.acked.get(key), `${key} kept`)
  t.match(node.output(), /"recordsReplayed":0,/, 'the final checkpoint held everything: nothing to replay')
})
