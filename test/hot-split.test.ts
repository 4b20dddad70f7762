// Hot counters: a counter incremented past HOT_SPLIT_RATE is split into sub-counters on other
// partitions, reads sum them, the split survives kill -9 (also in the middle of a merge), and once
// it cools down it is merged back into one counter with the same value. Then the same through a
// ring of three nodes: a viral key written through all three splits, stays exact, merges back.
import t, { type Test } from 'tap'
import { startKafka } from './support/kafka'
import { connectResp } from './support/resp-client'
import { queryValues, startNode, waitReady, type NodeProcess } from './support/node-process'
import { sleep } from './support/process-control'
import { ringEnv, waitForRing } from './support/ring'
import { startRedis } from './support/redis'

interface Shards {
  value: number
  split: { ways: number, state: string } | null
  shards: Array<{ key: string, partition: number, value: number }>
}

async function shardsOf (base: string, type: string, id: string): Promise<Shards> {
  const r = await fetch(`${base}/v1/counter/${type}/${id}?shards=true`)
  if (r.status !== 200) throw new Error(`GET ?shards=true answered ${r.status}: ${await r.text()}`)
  return await r.json() as Shards
}

/** HTTP increments of one key from `clients` loops per base until stopped; counts what was acknowledged. */
class ViralLoad {
  acked = 0
  sent = 0
  failed = 0
  private stopped = false
  private readonly runs: Array<Promise<void>>

  constructor (bases: string[], type: string, id: string, clients: number) {
    this.runs = bases.flatMap((base) => Array.from({ length: clients }, async (_, c) => {
      let i = c
      while (!this.stopped) {
        const by = 1 + (i++ % 3)
        this.sent += by
        try {
          // return=minimal: an increment that answers no value may go to a sub-counter
          const r = await fetch(`${base}/v1/counter/${type}/${id}/increment`, { method: 'POST', headers: { prefer: 'return=minimal' }, body: JSON.stringify({ by }) })
          await r.arrayBuffer()
          if (r.status === 204) this.acked += by
          else this.failed++
        } catch {
          this.failed++
          await sleep(20) // the node is down (kill -9): wait for it
        }
      }
    }))
  }

  async stop (): Promise<void> {
    this.stopped = true
    await Promise.all(this.runs)
  }
}

async function waitFor (t: Test, what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
  t.pass(what)
}

const HOT_ENV = { HOT_SPLIT_RATE: '100', HOT_SPLIT_WAYS: '8', HOT_MERGE_RATE: '20', HOT_MERGE_AFTER_MS: '1500' }

t.test('one node: a hot counter splits, survives kill -9 (also mid-merge) and merges back exactly', async (t) => {
  let node = await startNode(t, { env: { WORKERS: '2', RESP_PORT: '0', ...HOT_ENV } })

  // Past 100 increments/s the counter splits (the load runs until it has, however fast the machine).
  let load = new ViralLoad([node.base], 'post', 'viral', 8)
  await waitFor(t, 'the counter splits under load', async () => (await shardsOf(node.base, 'post', 'viral')).split !== null)
  // Every front learns the split within two polls; then increments land on sub-counters.
  await waitFor(t, 'increments land on its sub-counters', async () => (await shardsOf(node.base, 'post', 'viral')).shards.slice(1).some((s) => s.value > 0))
  await load.stop()
  t.equal(load.failed, 0, 'no increment failed while the counter split')
  let s = await shardsOf(node.base, 'post', 'viral')
  t.same(s.split, { ways: 8, state: 'split' }, '?shards=true shows the split: 8 ways')
  t.equal(s.shards.length, 9, 'the home counter and its 8 sub-counters')
  t.equal(s.value, load.acked, 'the value is the sum of every acknowledged increment')
  t.equal(s.shards.reduce((a, p) => a + p.value, 0), s.value, 'and the sum of its parts')
  t.ok(new Set(s.shards.map((p) => p.partition % 2)).size === 2, 'its parts sit on partitions of both shards')
  t.same(await queryValues(node.base, ['post:viral']), { 'post:viral': s.value }, 'a batch query sums the parts too')
  const plain = await fetch(`${node.base}/v1/counter/post/viral/increment`, { method: 'POST', body: '{"by":2}' })
  t.same(await plain.json(), { type: 'post', id: 'viral', value: s.value + 2 }, 'an increment that answers the value goes to the home counter and answers the whole value')
  load.acked += 2
  s = await shardsOf(node.base, 'post', 'viral')
  const history = await (await fetch(`${node.base}/v1/counter/post/viral/history`)).json() as { points: Array<{ value: number }> }
  t.equal(history.points.reduce((a, p) => a + p.value, 0), s.value, 'its per-minute history sums the parts: the minutes add up to the value')
  const rate = await (await fetch(`${node.base}/v1/counter/post/viral/rate`)).json() as { rate_per_sec: number }
  const homeRate = await (await fetch(`${node.base}/v1/counter/post/viral~0/rate`)).status
  t.ok(rate.rate_per_sec > 0, `its rate sums the parts: ${rate.rate_per_sec}/s`)
  t.equal(homeRate, 400, 'a part cannot be named by a client')
  const redis = await connectResp(t, node.respPort)
  t.same(await redis.pipeline([['GET', 'post:viral'], ['MGET', 'post:viral', 'post:cold']]), [String(s.value), [String(s.value), null]], 'Redis GET and MGET sum the parts too')
  redis.socket.destroy()
  const top = await (await fetch(`${node.base}/v1/top?k=10`)).json() as { top: Array<{ key: string }> }
  t.same(top.top.map((x) => x.key), ['post:viral'], 'top-K lists the counter once, none of its parts')

  // kill -9 under load while split: what was acknowledged is there, the split too.
  const before = load.acked
  load = new ViralLoad([node.base], 'post', 'viral', 8)
  await waitFor(t, 'more increments acknowledged', async () => load.acked > 200)
  await node.kill9()
  await load.stop()
  node = await node.restart()
  s = await shardsOf(node.base, 'post', 'viral')
  t.ok(s.value >= before + load.acked && s.value <= before + load.sent, `after kill -9: acked ${before + load.acked} ≤ ${s.value} ≤ sent ${before + load.sent}`)
  const value = s.value

  // Cooled down: merging starts after HOT_MERGE_AFTER_MS; kill -9 as soon as it does.
  await waitFor(t, 'the cooled counter starts merging back', async () => node.output().includes('merging it back'))
  await node.kill9()
  node = await node.restart()
  await waitReady(node.base)
  await waitFor(t, 'after the restart the merge completes', async () => (await shardsOf(node.base, 'post', 'viral')).split === null)
  s = await shardsOf(node.base, 'post', 'viral')
  t.equal(s.value, value, 'merged back with the same value')
  t.same(s.shards, [{ key: 'post:viral', partition: s.shards[0].partition, value }], 'one counter again: the home counter holds it all')
  const r = await fetch(`${node.base}/v1/counter/post/viral`)
  t.same(await r.json(), { type: 'post', id: 'viral', value }, 'a plain read answers the same')
})

t.test('a split counter under deep INCR pipelines and a small in-flight bound: every INCR answered, none refused', async (t) => {
  // Each INCR of a split counter is answered with its home's value plus the other parts, read right
  // after: a read unit per INCR. Past the in-flight bound those reads wait; refusing them would
  // answer an applied increment with an error (and a client retrying it would count it twice).
  const node = await startNode(t, { env: { WORKERS: '2', RESP_PORT: '0', ...HOT_ENV, MAX_INFLIGHT_OPS: '2000' } })
  const load = new ViralLoad([node.base], 'post', 'deep', 8)
  await waitFor(t, 'the counter splits under load', async () => (await shardsOf(node.base, 'post', 'deep')).split !== null)
  await load.stop()
  const before = (await shardsOf(node.base, 'post', 'deep')).value
  t.equal(before, load.acked, 'the split counter holds what was acknowledged')
  const depth = 5000
  const clients = await Promise.all(Array.from({ length: 4 }, async () => await connectResp(t, node.respPort)))
  const answers = await Promise.all(clients.map(async (c) => await c.pipeline(Array.from({ length: depth }, () => ['INCR', 'post:deep']))))
  for (const [n, replies] of answers.entries()) {
    const bad = replies.findIndex((r, i) => typeof r !== 'number' || r <= before || (i > 0 && r <= (replies[i - 1] as number)))
    t.equal(bad, -1, `client ${n}: every INCR answered with a value above the last${bad < 0 ? '' : ` (reply ${bad}: ${JSON.stringify(replies[bad])})`}`)
  }
  const after = (await shardsOf(node.base, 'post', 'deep')).value
  t.equal(after, before + 4 * depth, 'and the counter grew by exactly the INCRs sent')
  t.equal(Math.max(...answers.map((r) => r[depth - 1] as number)), after, 'the last answer is the final value')

  t.equal(await clients[0].call('DEL', 'post:deep', 'post:never'), 1, 'Redis DEL of the split counter and of a zero one: one was non-zero')
  const s = await shardsOf(node.base, 'post', 'deep')
  t.equal(s.value, 0, 'the split counter reads 0 after DEL')
  t.same(s.shards.filter((p) => p.value !== 0), [], 'every part was reset, not only the home counter')
  t.equal(await clients[0].call('DEL', 'post:deep'), 0, 'a second DEL finds nothing non-zero')
  for (const c of clients) c.socket.destroy()
})

t.test('a ring of three nodes: a viral key written through all three splits, stays exact, merges back', async (t) => {
  const [kafka, redis] = await Promise.all([startKafka(t), startRedis(t)])
  const { env } = ringEnv(kafka, redis, 'hot')
  const nodes: NodeProcess[] = await Promise.all([0, 1, 2].map(async () => await startNode(t, { env: { ...env, ...HOT_ENV }, waitReady: false })))
  await waitForRing(t, nodes)
  const bases = nodes.map((n) => n.base)
  const load = new ViralLoad(bases, 'video', 'viral', 4)
  await waitFor(t, 'the viral key splits', async () => (await shardsOf(bases[0], 'video', 'viral')).split !== null)
  await waitFor(t, 'increments through every node land on sub-counters', async () => (await shardsOf(bases[1], 'video', 'viral')).shards.slice(1).filter((p) => p.value > 0).length >= 3)
  await load.stop()
  t.equal(load.failed, 0, 'no increment failed')
  for (const base of bases) {
    const s = await shardsOf(base, 'video', 'viral')
    t.equal(s.value, load.acked, `read through ${base}: exactly what was acknowledged`)
    t.equal(s.split?.ways, 8, 'split 8 ways')
  }
  // Merging waits until no front can still send to a sub-counter (up to a parked part's wait, 30 s).
  await waitFor(t, 'the cooled key merges back', async () => (await shardsOf(bases[2], 'video', 'viral')).split === null, 180_000)
  for (const base of bases) {
    const s = await shardsOf(base, 'video', 'viral')
    t.equal(s.value, load.acked, `after the merge, through ${base}: the same value`)
    t.equal(s.shards.length, 1, 'one counter again')
  }
})
