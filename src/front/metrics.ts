// GET /metrics: the node's counters in the Prometheus text format, summed over every shard's row
// of the status board (so any shard answers for the whole node).
import type { InflightGauge } from '../routing/inflight'
import {
  F_COMMITS, F_COUNTERS, F_DURABLE_RECORDS, F_HTTP_REQUESTS, F_INCREMENTS_ACKED, F_PENDING_OPS, F_RESP_COMMANDS, F_RESP_CONNECTIONS,
  F_WS_CONNECTIONS, F_WS_FRAMES, F_WS_OPS,
  PHASE_READY, type StatusBoard
} from './status-board'

export function renderMetrics (board: StatusBoard, inflight: InflightGauge): string {
  const lines: string[] = []
  const metric = (name: string, type: 'counter' | 'gauge', value: number): void => {
    lines.push(`# TYPE counterd_${name} ${type}`, `counterd_${name} ${value}`)
  }
  const byCode = (name: string, rows: Array<[string, number]>): void => {
    lines.push(`# TYPE counterd_${name} counter`)
    for (const [code, n] of rows) lines.push(`counterd_${name}{code="${code}"} ${n}`)
  }
  metric('http_requests_total', 'counter', board.sum(F_HTTP_REQUESTS))
  byCode('http_errors_total', board.errors('http'))
  metric('ws_connections', 'gauge', board.sum(F_WS_CONNECTIONS))
  metric('ws_frames_total', 'counter', board.sum(F_WS_FRAMES))
  metric('ws_ops_total', 'counter', board.sum(F_WS_OPS))
  byCode('ws_errors_total', board.errors('ws'))
  metric('resp_connections', 'gauge', board.sum(F_RESP_CONNECTIONS))
  metric('resp_commands_total', 'counter', board.sum(F_RESP_COMMANDS))
  metric('increments_acked_total', 'counter', board.sum(F_INCREMENTS_ACKED))
  metric('inflight_ops', 'gauge', inflight.writes)
  metric('inflight_reads', 'gauge', inflight.reads)
  metric('counters', 'gauge', board.sum(F_COUNTERS))
  metric('pending_ops', 'gauge', board.sum(F_PENDING_OPS))
  metric('durable_records_total', 'counter', board.sum(F_DURABLE_RECORDS))
  metric('commits_total', 'counter', board.sum(F_COMMITS))
  metric('shards', 'gauge', board.shards)
  metric('ready', 'gauge', board.nodePhase === PHASE_READY ? 1 : 0)
  return lines.join('\n') + '\n'
}
