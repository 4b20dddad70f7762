// kill -9 while most traffic crosses between shard threads (4 shards: three ops in four travel
// through a ring to the shard that owns them), then resend everything unacknowledged the way the
// protocol says (stream frames with the same clientId and seq, HTTP with the same Idempotency-Key),
// possibly to another shard since a new connection lands anywhere. Afterwards every counter must
// equal exactly what was sent: nothing acknowledged lost, nothing counted twice.
import t from 'tap'
import { fnv1a32 } from '../src/core/keys'
import { rng } from './support/load'
import { queryValues, startNode, type NodeProcess } from './support/node-process'
import { StreamClient } from './support/stream-client'

const SHARDS = 4
const PARTITIONS = 64

interface Frame { seq: number, ops: Array<{ type: string, id: string, by: number }>, acked: boolean }
interface Post { key: string, by: number, idem: string, acked: boolean }

t.test('kill -9 under cross-shard load, then resends: every counter exactly as sent', async (t) => {
  const seed = Number(process.env.CRASH_SEED ?? Date.now() % 100000)
  t.comment(`seed ${seed} (CRASH_SEED=${seed} replays it)`)
  const rand = rng(seed)
  let node: NodeProcess = await startNode(t, { env: { WORKERS: String(SHARDS), PARTITIONS: String(PARTITIONS), CHECKPOINT_INTERVAL_MS: '250' } })
  const ids = Array.from({ length: 200 }, (_, i) => `x${i}`)
  const shardsHit = new Set(ids.map((id) => (fnv1a32(`post:${id}`) % PARTITIONS) % SHARDS))
  t.equal(shardsHit.size, SHARDS, 'the keys spread over every shard')
  const sent = new Map<string, number>()
  const add = (key: string, by: number): void => { sent.set(key, (sent.get(key) ?? 0) + by) }

  const frames: Frame[][] = []
  const posts: Post[] = []
  let killed = false
  const streamLoad = async (client: number): Promise<void> => {
    const mine: Frame[] = []
    frames.push(mine)
    const c = await StreamClient.connect(node.base, `cross-${seed}-${client}`)
    for (let seq = 1; !killed; seq++) {
      const ops = Array.from({ length: 50 }, () => ({ type: 'post', id: ids[Math.floor(rand() * ids.length)], by: 1 + Math.floor(rand() * 4) }))
      const f: Frame = { seq, ops, acked: false }
      mine.push(f)
      for (const op of ops) add(`post:${op.id}`, op.by)
      const ack = (seq & 1) === 0 ? c.sendBinary(seq, ops) : c.sendJson(seq, ops.map((op) => [op.type, op.id, op.by]))
      // Up to 8 frames in flight: wait for the one sent 8 frames ago.
      void ack.then((a) => { f.acked = a.ok }, () => {})
      if (mine.length >= 8) await Promise.race([ackOf(mine[mine.length - 8]), c.closed])
      if (c.ws.readyState !== 1) break
    }
  }
  const ackOf = async (f: Frame): Promise<void> => { while (!f.acked && !killed) await new Promise((resolve) => setTimeout(resolve, 1)) }
  const httpLoad = async (client: number): Promise<void> => {
    for (let i = 0; !killed; i++) {
      const p: Post = { key: `post:${ids[Math.floor(rand() * ids.length)]}`, by: 1 + Math.floor(rand() * 9), idem: `h${client}-${i}`, acked: false }
      posts.push(p)
      add(p.key, p.by)
      try {
        const r = await fetch(`${node.base}/v1/counter/${p.key.replace(':', '/')}/increment`, { method: 'POST', body: JSON.stringify({ by: p.by }), headers: { 'Idempotency-Key': p.idem } })
        p.acked = r.status === 200
        await r.text()
      } catch { return }
    }
  }
  const load = Promise.all([...Array.from({ length: 3 }, (_, i) => streamLoad(i)), ...Array.from({ length: 6 }, (_, i) => httpLoad(i))])
  await new Promise((resolve) => setTimeout(resolve, 400 + Math.floor(rand() * 800)))
  await node.kill9()
  killed = true
  await load.catch(() => {})
  const ackedFrames = frames.flat().filter((f) => f.acked).length
  const ackedPosts = posts.filter((p) => p.acked).length
  t.ok(ackedFrames > 0 && ackedPosts > 0, `killed with ${ackedFrames} frames and ${ackedPosts} posts acknowledged`)

  node = await node.restart()
  // Resend every frame not acknowledged, in order per client, on a new connection, and every
  // unacknowledged POST with its Idempotency-Key.
  let resentFrames = 0
  await Promise.all(frames.map(async (mine, client) => {
    const c = await StreamClient.connect(node.base, `cross-${seed}-${client}`)
    for (const f of mine) {
      if (f.acked) continue
      resentFrames++
      const a = await ((f.seq & 1) === 0 ? c.sendBinary(f.seq, f.ops) : c.sendJson(f.seq, f.ops.map((op) => [op.type, op.id, op.by])))
      t.ok(a.ok, `frame ${f.seq} of client ${client} acked on resend`)
    }
    c.close()
  }))
  let resentPosts = 0
  for (const p of posts) {
    if (p.acked) continue
    resentPosts++
    const r = await fetch(`${node.base}/v1/counter/${p.key.replace(':', '/')}/increment`, { method: 'POST', body: JSON.stringify({ by: p.by }), headers: { 'Idempotency-Key': p.idem } })
    t.equal(r.status, 200, `POST ${p.idem} acked on retry`)
    await r.text()
  }
  t.comment(`resent ${resentFrames} frames and ${resentPosts} posts`)
  const values = await queryValues(node.base, [...sent.keys()])
  const wrong = [...sent].filter(([key, v]) => values[key] !== v).map(([key, v]) => `${key}: sent ${v}, counted ${values[key]}`)
  t.same(wrong, [], 'every counter equals what was sent: none lost, none counted twice')
})
