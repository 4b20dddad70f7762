// Suite 11: what the metrics histograms and the per-minute history cost on the hot path. The same
// counterd build runs as three nodes side by side — "full" (the defaults: histograms recorded,
// HISTORY_RETENTION_MINUTES=1440), "no history" (histograms, HISTORY_RETENTION_MINUTES=0) and
// "lean" (METRICS_HISTOGRAMS=false, HISTORY_RETENTION_MINUTES=0) — and every round drives each
// with the http-wrk POST load (ack=durable) and the ws-stream binary load, in a rotating order.
// Only ratios to "lean" measured in the same round mean anything on a shared machine; beside
// throughput each run also gives counterd's CPU time per acknowledged op (all its threads), which
// other work on the machine disturbs less than it disturbs throughput.
import path from 'node:path'
import { startCounterd, stopCounterd, type Counterd } from '../counterd'
import { readCounterd } from '../readback'
import { compare, target, type BenchContext, type Comparison, type Run, type Suite } from '../suite'
import { serverThreads } from '../uws-peers'
import { assertWrkInstalled, writeIdsFile } from '../wrk'
import { CONNECTIONS, KEY_SPACE, sumCounterdType, ZIPF_S, zipfIds } from './common'
import { wrkOptions, wrkRun, type Files, type WrkTarget } from './http-wrk'
import { streamRun, WS, type StreamTarget } from './ws-stream'

const VARIANTS = ['full', 'nohist', 'lean'] as const
type Variant = typeof VARIANTS[number]

const ENV: Record<Variant, Record<string, string>> = {
  full: {},
  nohist: { HISTORY_RETENTION_MINUTES: '0' },
  lean: { METRICS_HISTOGRAMS: 'false', HISTORY_RETENTION_MINUTES: '0' }
}
/** The same run with its value replaced by counterd's CPU microseconds per acknowledged op. */
function cpuPerOp (r: Run, durationSec: number): Run {
  const cpuMs = r.cpu?.counterd?.cpuMs ?? NaN
  return { ...r, value: cpuMs * 1000 / (r.value * durationSec) }
}

const LABELS: Record<Variant, string> = {
  full: 'histograms + minute history (defaults)',
  nohist: 'histograms, no minute history',
  lean: 'METRICS_HISTOGRAMS=false, no minute history'
}

export const metricsCost: Suite = {
  name: 'metrics-cost',
  title: 'Hot-path cost of the metrics histograms and the minute history',
  async run (ctx: BenchContext) {
    assertWrkInstalled()
    const notes: string[] = []
    const threads = serverThreads(ctx)
    const wrkThreads = Math.max(2, threads)
    const dir = ctx.tempDir('metrics-cost')
    const files: Files = { postIds: path.join(dir, 'post-ids'), getIds: path.join(dir, 'post-ids'), expected: '' }
    writeIdsFile(files.postIds, zipfIds(200_000))
    const http: Record<Variant, Run[]> = { full: [], nohist: [], lean: [] }
    const ws: Record<Variant, Run[]> = { full: [], nohist: [], lean: [] }
    const nodes: Partial<Record<Variant, Counterd>> = {}
    try {
      const wrkTargets: Partial<Record<Variant, WrkTarget>> = {}
      const wsTargets: Partial<Record<Variant, StreamTarget>> = {}
      for (const v of VARIANTS) {
        const c = await startCounterd(ctx, { label: `metrics-cost-${v}`, env: { WORKERS: String(threads), ACK_MODE: 'durable', ...ENV[v] } })
        nodes[v] = c
        wrkTargets[v] = { ports: [c.port], mode: 'increment', pids: { counterd: c.pid }, readSum: async (type) => await sumCounterdType(c.port, type) }
        wsTargets[v] = { urls: [`ws://127.0.0.1:${c.port}/v1/stream`], pids: { counterd: c.pid }, readBack: async (type) => await readCounterd(c.port, type, KEY_SPACE) }
      }
      for (const v of VARIANTS) {
        await wrkRun(0, wrkTargets[v] as WrkTarget, wrkOptions(wrkTargets[v] as WrkTarget, files, wrkThreads, 1, `mcw${v[0]}`))
        await streamRun(0, wsTargets[v] as StreamTarget, `mcs${v[0]}warm`, 1000, 7)
      }
      for (let round = 1; round <= ctx.rounds; round++) {
        // Rotate the order, so no variant always runs first (or right after another's load).
        const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length])
        for (const v of order) {
          const r = await wrkRun(round, wrkTargets[v] as WrkTarget, wrkOptions(wrkTargets[v] as WrkTarget, files, wrkThreads, ctx.durationSec, `mch${round}${v[0]}`))
          http[v].push(r)
          ctx.log(`  round ${round} HTTP POST ${LABELS[v].padEnd(44)} ${Math.round(r.value)} req/s p99 ${r.p99Ms?.toFixed(2) ?? '?'} ms ${r.exact ? 'exact' : 'NOT EXACT: ' + r.check}`)
        }
        for (const v of order) {
          const r = await streamRun(round, wsTargets[v] as StreamTarget, `mcs${round}${v[0]}`, ctx.durationSec * 1000, 300 + round)
          ws[v].push(r)
          ctx.log(`  round ${round} stream    ${LABELS[v].padEnd(44)} ${Math.round(r.value)} incr/s p99 ${r.p99Ms?.toFixed(2) ?? '?'} ms ${r.exact ? 'exact' : 'NOT EXACT: ' + r.check}`)
        }
      }
    } finally {
      for (const v of VARIANTS) { const c = nodes[v]; if (c !== undefined) await stopCounterd(c, notes) }
    }
    const post = `wrk -t ${wrkThreads} -c ${CONNECTIONS} -d ${Math.max(1, Math.round(ctx.durationSec))}s, POST …/increment {"by":1}, Zipf s=${ZIPF_S} over ${KEY_SPACE} ids, ack=durable, WORKERS=${threads}`
    const stream = `${WS.connections} connections × ${WS.framesInFlight} frames in flight × ${WS.opsPerFrame} ops/frame, Zipf s=${ZIPF_S} over ${KEY_SPACE} ids, ack=durable, WORKERS=${threads}`
    const comparisons: Comparison[] = []
    const seconds = (r: Run): number => Number((r.details as { durationSec?: number, elapsedMs?: number } | undefined)?.durationSec ?? ((r.details as { elapsedMs?: number } | undefined)?.elapsedMs ?? NaN) / 1000)
    for (const [name, unit, runs, config] of [['http', 'req/s', http, post], ['stream', 'incr/s', ws, stream]] as const) {
      for (const v of ['full', 'nohist'] as const) {
        comparisons.push(compare({
          name: `metrics-cost-${name}-${v}-cpu`,
          label: `${name === 'http' ? 'HTTP POST' : 'WebSocket stream'}, counterd CPU per op: ${LABELS[v]} vs ${LABELS.lean}`,
          unit: 'CPU µs/op',
          higherIsBetter: false,
          subject: { system: `counterd, ${LABELS[v]}`, config, runs: runs[v].map((r) => cpuPerOp(r, seconds(r))) },
          peer: { system: `counterd, ${LABELS.lean}`, config, runs: runs.lean.map((r) => cpuPerOp(r, seconds(r))) },
          targets: (_s, _p, ratio) => v === 'full' ? [target('≤ 1.05× lean', ratio, r => r <= 1.05)] : []
        }))
        comparisons.push(compare({
          name: `metrics-cost-${name}-${v}`,
          label: `${name === 'http' ? 'HTTP POST' : 'WebSocket stream'}: ${LABELS[v]} vs ${LABELS.lean}`,
          unit,
          higherIsBetter: true,
          subject: { system: `counterd, ${LABELS[v]}`, config, runs: runs[v] },
          peer: { system: `counterd, ${LABELS.lean}`, config, runs: runs.lean },
          targets: (_s, _p, ratio) => v === 'full' ? [target('≥ 0.95× lean', ratio, r => r >= 0.95)] : []
        }))
      }
    }
    notes.push(`Three nodes of the same build run side by side; each round drives each with wrk (${Math.max(1, Math.round(ctx.durationSec))} s) and then with the stream load, in an order rotated every round, after an unmeasured warm-up of each. Ratios are per round, against the lean node in the same round.`)
    notes.push('Every run is checked: increments acknowledged = values read back (wrk: within the connections in flight).')
    return { comparisons, notes }
  }
}
