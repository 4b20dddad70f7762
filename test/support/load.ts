// Load for the concurrency and crash tests: HTTP clients and WebSocket streams incrementing
// overlapping keys, keeping per key the sum of acknowledged deltas and of everything sent.
import { StreamClient } from './stream-client'

export class Tally {
  readonly acked = new Map<string, number>()
  readonly sent = new Map<string, number>()
  ackedOps = 0

  send (key: string, by: number): void { this.sent.set(key, (this.sent.get(key) ?? 0) + by) }
  ack (key: string, by: number): void { this.acked.set(key, (this.acked.get(key) ?? 0) + by); this.ackedOps++ }
  keys (): string[] { return [...this.sent.keys()] }
}

/** A tiny deterministic PRNG so a failing run can be replayed with its seed. */
export function rng (seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let x = s
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

export interface LoadOptions {
  base: string
  keys: number // distinct ids, shared by every client
  httpClients: number
  streams: number
  opsPerFrame: number
  until: () => boolean // stop when true
  seed: number
  tally: Tally
  clientIdPrefix?: string // streams get clientIds (resends then dedup) when set
  paceMs?: number // each client waits this long after each request or frame (bounds the load's rate)
}

/** Runs until `until()` or until the server goes away; never throws for a dead server. */
export async function runLoad (o: LoadOptions): Promise<void> {
  const rand = rng(o.seed)
  const pick = (): [string, string] => [rand() < 0.5 ? 'post' : 'video', `k${Math.floor(rand() * o.keys)}`]
  const http = async (): Promise<void> => {
    while (!o.until()) {
      const [type, id] = pick()
      const by = 1 + Math.floor(rand() * 5)
      o.tally.send(`${type}:${id}`, by)
      try {
        const r = await fetch(`${o.base}/v1/counter/${type}/${id}/increment`, { method: 'POST', body: JSON.stringify({ by }) })
        if (r.status === 200) { await r.json(); o.tally.ack(`${type}:${id}`, by) } else await r.text()
      } catch { return }
      if (o.paceMs !== undefined) await new Promise((resolve) => setTimeout(resolve, o.paceMs))
    }
  }
  const stream = async (n: number): Promise<void> => {
    let c: StreamClient
    try {
      c = await StreamClient.connect(o.base, o.clientIdPrefix === undefined ? undefined : `${o.clientIdPrefix}-${n}`)
    } catch { return }
    let seq = 1
    const inflight = new Set<Promise<void>>()
    while (!o.until()) {
      const ops = Array.from({ length: o.opsPerFrame }, () => { const [type, id] = pick(); return { type, id, by: 1 + Math.floor(rand() * 3) } })
      for (const op of ops) o.tally.send(`${op.type}:${op.id}`, op.by)
      const binary = (seq & 1) === 0
      const p = (binary ? c.sendBinary(seq, ops) : c.sendJson(seq, ops.map((op) => [op.type, op.id, op.by]))).then((ack) => {
        if (ack.ok) for (const op of ops) o.tally.ack(`${op.type}:${op.id}`, op.by)
      }, () => {})
      seq++
      inflight.add(p)
      void p.then(() => inflight.delete(p))
      if (inflight.size >= 16) await Promise.race(inflight)
      if (o.paceMs !== undefined) await new Promise((resolve) => setTimeout(resolve, o.paceMs))
      if (c.ws.readyState !== 1) break
    }
    await Promise.all(inflight)
    c.close()
  }
  await Promise.all([
    ...Array.from({ length: o.httpClients }, http),
    ...Array.from({ length: o.streams }, (_, i) => stream(i))
  ])
}
