// A flood far past what the node sustains: WebSocket clients that never wait for acks, plus HTTP
// clients. The node sheds with overloaded (stream error acks, HTTP 503 + Retry-After), its memory
// stays bounded, and every counter ends at exactly what was acknowledged (a refused frame or
// request applies nothing).
import http from 'node:http'
import t from 'tap'
import WebSocket from 'ws'
import { encodeBinaryFrame } from '../src/core/binary-frame'
import { queryValues, startNode } from './support/node-process'

const rss = async (base: string): Promise<number> => {
  const text = await (await fetch(`${base}/metrics`)).text()
  return Number(/^counterd_resident_memory_bytes (\d+)/m.exec(text)?.[1])
}

t.test('flood: shed, bounded, exact', async (t) => {
  const node = await startNode(t, { env: { MAX_INFLIGHT_OPS: '5000', MAX_INFLIGHT_FRAMES: '64' } })
  const before = await rss(node.base)
  const acked = new Map<string, number>()
  const add = (key: string, n: number): void => { acked.set(key, (acked.get(key) ?? 0) + n) }
  let shedFrames = 0
  let okFrames = 0
  let shedHttp = 0

  // Four connections, each with 500 frames of 1000 ops sent at once: 2M ops against a 5000-op bound.
  const streams = Array.from({ length: 4 }, async (_, c) => {
    const ws = new WebSocket(`${node.base.replace('http', 'ws')}/v1/stream?clientId=flood-${c}`)
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
    const frames = new Map<number, string[]>()
    const done = new Promise<void>((resolve) => {
      ws.on('message', (d: Buffer) => {
        const seq = d.readUInt32LE(1)
        const keys = frames.get(seq) as string[]
        frames.delete(seq)
        if (d[0] === 0x81) { okFrames++; for (const k of keys) add(k, 1) } else if (JSON.parse(d.subarray(5).toString()).code === 'overloaded') shedFrames++
        else throw new Error(`unexpected ack ${d.subarray(5).toString()}`)
        if (frames.size === 0) resolve()
      })
    })
    for (let seq = 1; seq <= 500; seq++) {
      const ops = Array.from({ length: 1000 }, (_, i) => ({ type: 'fl', id: `s${(seq * 7 + i) % 300}`, by: 1 }))
      frames.set(seq, ops.map(o => `fl:${o.id}`))
      ws.send(encodeBinaryFrame(seq, ops))
    }
    await done
    ws.close()
  })
  // And HTTP: 64 connections sending increments back to back.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
  t.teardown(() => agent.destroy())
  const post = async (id: string): Promise<number> => await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: node.port, method: 'POST', path: `/v1/counter/fl/${id}/increment`, agent }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => {
        if (res.statusCode === 503 && (JSON.parse(body).error.code !== 'overloaded' || res.headers['retry-after'] === undefined)) reject(new Error(`bad 503: ${body}`))
        resolve(res.statusCode ?? 0)
      })
    })
    req.on('error', reject)
    req.end()
  })
  const https = Array.from({ length: 64 }, async (_, w) => {
    for (let i = 0; i < 150; i++) {
      const id = `h${(w + i) % 50}`
      const status = await post(id)
      if (status === 200) add(`fl:${id}`, 1)
      else if (status === 503) shedHttp++
      else throw new Error(`HTTP ${status}`)
    }
  })
  await Promise.all([...streams, ...https])
  const after = await rss(node.base)

  t.ok(shedFrames > 0, `${shedFrames} frames shed with overloaded, ${okFrames} acked`)
  t.ok(okFrames > 0, 'the node kept acking while it shed')
  t.comment(`HTTP: ${shedHttp} of ${64 * 150} requests shed`)
  t.ok(after - before < 512 * 1024 * 1024, `RSS grew ${Math.round((after - before) / 1048576)} MiB under the flood (bounded by the in-flight limits)`)
  const every = [...Array.from({ length: 300 }, (_, i) => `fl:s${i}`), ...Array.from({ length: 50 }, (_, i) => `fl:h${i}`)]
  const values = await queryValues(node.base, every)
  const wrong = every.filter(k => values[k] !== (acked.get(k) ?? 0))
  t.same(wrong.slice(0, 5).map(k => `${k}: ${values[k]} instead of ${acked.get(k) ?? 0}`), [], `every counter equals what was acknowledged (${wrong.length} differ)`)
  t.equal((await fetch(`${node.base}/ready`)).status, 200, 'ready after the flood')
})
