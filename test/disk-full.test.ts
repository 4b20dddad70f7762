// A full disk: DATA_DIR on a small tmpfs that the test fills. Appends fail, acks are held, the node
// says so on /ready, and past MAX_INFLIGHT_OPS new writes are refused with a coded error; when
// space returns every held request completes and every counter is exact (nothing acked is lost,
// nothing counted twice). Needs root for `mount -t tmpfs` (as CI runs).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { startNode } from './support/node-process'

t.test('disk full, then space again', async (t) => {
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-full-'))
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt])
  t.teardown(() => {
    try { execFileSync('umount', ['-l', mnt]) } catch {}
    fs.rmSync(mnt, { recursive: true, force: true })
  })
  const dataDir = path.join(mnt, 'data')
  const node = await startNode(t, { dataDir, env: { MAX_INFLIGHT_OPS: '200', WORKERS: '2' } })
  const sent = new Map<string, number>()
  const increment = async (id: string, idem: string): Promise<{ status: number, code?: string }> => {
    const r = await fetch(`${node.base}/v1/counter/df/${id}/increment`, { method: 'POST', headers: { 'idempotency-key': idem }, signal: AbortSignal.timeout(120_000) })
    const body = await r.json() as { error?: { code: string } }
    return { status: r.status, code: body.error?.code }
  }
  for (let i = 0; i < 50; i++) t.equal((await increment(`k${i % 10}`, `before-${i}`)).status, 200)
  for (let i = 0; i < 50; i++) sent.set(`k${i % 10}`, (sent.get(`k${i % 10}`) ?? 0) + 1)

  // Fill the disk to the last bytes.
  const filler = path.join(mnt, 'filler')
  try { execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { stdio: 'ignore' }) } catch {} // stops at ENOSPC
  const held = Array.from({ length: 400 }, (_, i) => ({ id: `k${i % 10}`, idem: `during-${i}` }))
  const answers = held.map(async (h) => await increment(h.id, h.idem))
  // The log fails: /ready says so, and requests beyond the in-flight bound are refused.
  let ready = 0
  for (let i = 0; i < 500 && ready !== 503; i++) {
    ready = (await fetch(`${node.base}/ready`)).status
    if (ready !== 503) await new Promise(resolve => setTimeout(resolve, 20))
  }
  t.equal(ready, 503, '/ready reports the failing log')
  const readyBody = await (await fetch(`${node.base}/ready`)).json() as { error: { code: string }, storage: string }
  t.equal(readyBody.error.code, 'storage_unavailable')
  t.match(readyBody.storage, /ENOSPC|no space/i)

  // Space returns: everything held completes.
  fs.rmSync(filler)
  const results = await Promise.all(answers)
  const refused = results.filter(r => r.status !== 200)
  t.ok(refused.every(r => r.status === 503 && r.code === 'overloaded'), `refused only as overloaded (${refused.length} of ${held.length})`)
  t.ok(refused.length > 0, 'requests past MAX_INFLIGHT_OPS were refused')
  t.ok(results.length - refused.length > 0, 'held requests completed once space returned')
  // The refused ones are retried with their key, as a client would: each counts once.
  for (let i = 0; i < held.length; i++) {
    const h = held[i]
    if (results[i].status !== 200) {
      let r = await increment(h.id, h.idem)
      for (let k = 0; k < 100 && r.status !== 200; k++) { await new Promise(resolve => setTimeout(resolve, 50)); r = await increment(h.id, h.idem) }
      t.equal(r.status, 200, `retry of ${h.idem}`)
    }
    sent.set(h.id, (sent.get(h.id) ?? 0) + 1)
  }
  t.equal((await fetch(`${node.base}/ready`)).status, 200, 'ready again')

  // Exact now, and after a kill -9 and restart.
  const check = async (base: string, when: string): Promise<void> => {
    const r = await fetch(`${base}/v1/counters/query`, { method: 'POST', body: JSON.stringify({ keys: [...sent.keys()].map(id => `df:${id}`) }) })
    const values = (await r.json() as { values: Record<string, number> }).values
    t.same(values, Object.fromEntries([...sent].map(([id, n]) => [`df:${id}`, n])), `every counter exact ${when}`)
  }
  await check(node.base, 'after the disk filled and emptied')
  const again = await node.restart()
  await check(again.base, 'after kill -9 and restart')
})
