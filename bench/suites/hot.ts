// Suite: one viral counter. wrk (64 connections) POSTs increments of a single key to a node that
// splits hot counters (HOT_SPLIT_RATE default) and to one that never does (HOT_SPLIT_RATE=0),
// alternating every round, next to the bare uWS peer on the same single key as the ceiling.
// Unsplit, every increment of the key is applied by the one shard that owns its partition (half
// of them cross a shard ring first); split, each shard thread applies the increments it received
// to a sub-counter of its own. Both counterd nodes run ack=durable.
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { startCounterd, stopCounterd, type Counterd } from '../counterd'
import { CpuMeter } from '../proc-stats'
import { postJson } from '../readback'
import { compare, target, type BenchContext, type Comparison, type Run, type Suite } from '../suite'
import { serverThreads, startUwsPeer, type UwsPeer } from '../uws-peers'
import { assertWrkInstalled, incrementCheck, runWrk, writeIdsFile, type WrkOptions } from '../wrk'
import { CONNECTIONS } from './common'

const SYSTEMS = ['split', 'unsplit', 'bare'] as const
type System = typeof SYSTEMS[number]

const LABELS: Record<System, string> = {
  split: 'counterd, hot counters split',
  unsplit: 'counterd, never split',
  bare: 'bare uWS'
}

export const TYPE = 'viral'
export const ID = '1'

/** The key's value through the batch query (the bare peer sums its threads' counts only there). */
export async function readValue (port: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: false })
  try {
    const { status, json } = await postJson(agent, port, '/v1/counters/query', { keys: [`${TYPE}:${ID}`] })
    if (status !== 200) throw new Error(`the batch query answered ${status}: ${JSON.stringify(json)}`)
    return (json as { values: Record<string, number> }).values[`${TYPE}:${ID}`]
  } finally {
    agent.destroy()
  }
}

/** 'split N ways' or 'not split', as GET …?shards=true reports the viral key on this node. */
export async function splitState (port: number): Promise<string> {
  return await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: `/v1/counter/${TYPE}/${ID}?shards=true` }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => {
        const split = (JSON.parse(body) as { split: { ways: number } | null }).split
        resolve(split === null ? 'not split' : `split ${split.ways} ways`)
      })
    }).on('error', reject)
  })
}

export const hot: Suite = {
  name: 'hot',
  title: 'One viral counter: split vs never split, next to a bare uWS peer',
  async run (ctx: BenchContext) {
    assertWrkInstalled()
    const notes: string[] = []
    const threads = serverThreads(ctx)
    const wrkThreads = Math.max(2, threads)
    const dir = ctx.tempDir('hot')
    const idsFile = path.join(dir, 'ids')
    writeIdsFile(idsFile, [Number(ID)])
    const runs = Object.fromEntries(SYSTEMS.map(s => [s, [] as Run[]])) as Record<System, Run[]>
    const counterds: Counterd[] = []
    let bare: UwsPeer | undefined
    try {
      const env = { WORKERS: String(threads), ACK_MODE: 'durable' }
      const split = await startCounterd(ctx, { label: 'hot-split', env: { ...env, HOT_SPLIT_RATE: '1000' } })
      counterds.push(split)
      const unsplit = await startCounterd(ctx, { label: 'hot-unsplit', env: { ...env, HOT_SPLIT_RATE: '0' } })
      counterds.push(unsplit)
      bare = await startUwsPeer('bare uWS peer', 'bare-uws-server', threads)
      const ports: Record<System, number[]> = { split: [split.port], unsplit: [unsplit.port], bare: bare.ports }
      const pids: Record<System, Record<string, number>> = { split: { counterd: split.pid }, unsplit: { counterd: unsplit.pid }, bare: { 'bare uWS': bare.pid } }
      const readPort: Record<System, number> = { split: split.port, unsplit: unsplit.port, bare: bare.port }
      // Prefer: return=minimal: an increment that answers the new value needs every part of a split counter.
      const options = (s: System, durationSec: number): WrkOptions => ({ ports: ports[s], threads: wrkThreads, connections: CONNECTIONS, durationSec, mode: 'increment', type: TYPE, idsFile, prefer: 'return=minimal' })
      // Unmeasured warm-up: long enough for the splitting node to split the key (a tick to see the
      // rate, two polls until every thread routes to sub-counters).
      for (const s of SYSTEMS) await runWrk(options(s, s === 'split' ? 4 : 1))
      notes.push(`after the warm-up the splitting node reports the key ${await splitState(split.port)}; the other ${await splitState(unsplit.port)}`)
      for (let round = 1; round <= ctx.rounds; round++) {
        for (const s of SYSTEMS) {
          const before = await readValue(readPort[s])
          const meter = new CpuMeter(pids[s])
          const r = await runWrk(options(s, ctx.durationSec))
          const { usage, reapedChildren } = meter.stop()
          const { exact, check } = incrementCheck(r, await readValue(readPort[s]) - before)
          runs[s].push({ round, value: r.okPerSec, p50Ms: r.p50Ms, p99Ms: r.p99Ms, exact, check, cpu: { ...usage, wrk: reapedChildren }, details: { ok2xx: r.ok2xx, command: r.command } })
          ctx.log(`  round ${round} ${LABELS[s].padEnd(30)} ${Math.round(r.okPerSec)} req/s p99 ${r.p99Ms?.toFixed(2) ?? '?'} ms ${exact ? 'exact' : 'NOT EXACT: ' + check}`)
        }
      }
      notes.push(`at the end the splitting node reports the key ${await splitState(split.port)}`)
    } finally {
      for (const c of counterds) await stopCounterd(c, notes)
      await bare?.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    }
    const load = `wrk -t ${wrkThreads} -c ${CONNECTIONS} -d ${Math.max(1, Math.round(ctx.durationSec))}s, POST /v1/counter/${TYPE}/${ID}/increment with Prefer: return=minimal, one key`
    notes.push(`Each round runs ${SYSTEMS.map(s => LABELS[s]).join(', ')} in turn; counterd with WORKERS=${threads}, ack=durable. An increment run is exact when 2xx ≤ the key's growth ≤ 2xx + ${CONNECTIONS} connections.`)
    const comparisons: Comparison[] = [
      compare({
        name: 'hot-split',
        label: 'One viral key: split vs never split',
        unit: 'req/s',
        higherIsBetter: true,
        subject: { system: 'counterd split', config: `${load}; HOT_SPLIT_RATE=1000, HOT_SPLIT_WAYS=16`, runs: runs.split },
        peer: { system: 'counterd unsplit', config: `${load}; HOT_SPLIT_RATE=0`, runs: runs.unsplit },
        targets: (_s, _p, ratio) => [target('> 1× unsplit', ratio, r => r > 1)]
      }),
      compare({
        name: 'hot-ceiling',
        label: 'One viral key: split vs bare uWS',
        unit: 'req/s',
        higherIsBetter: true,
        subject: { system: 'counterd split', config: `${load}; the same runs as the first row`, runs: runs.split },
        peer: { system: 'bare uWS', config: `${load}; ${threads} uWS thread(s), counts in a Map per thread, no durability`, runs: runs.bare },
        targets: () => []
      })
    ]
    return { comparisons, notes }
  }
}
