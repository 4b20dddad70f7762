// GET /metrics: the node's counters in the Prometheus text format, summed over every shard's row
// of the status board (so any shard answers for the whole node).
import type { InflightGauge } from '../routing/inflight'
import {
  F_COMMITS, F_COUNTERS, F_DURABLE_RECORDS, F_HTTP_REQUESTS, F_INCREMENTS_ACKED, F_INGEST_DUPLICATES, F_INGEST_EVENTS, F_INGEST_PARTITIONS, F_PENDING_OPS,
  F_WS_CONNECTIONS, F_WS_FRAMES, F_WS_OPS,
  PHASE_READY, type StatusBoard
} from './status-board'

/** `ingestTopic`: the topic events are ingested from ('' = off: no ingest metrics). */
export function renderMetrics (board: StatusBoard, inflight: InflightGauge, ingestTopic = ''): string {
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
  metric('increments_acked_total', 'counter', board.sum(F_INCREMENTS_ACKED))
  metric('inflight_ops', 'gauge', inflight.writes)
  metric('inflight_reads', 'gauge', inflight.reads)
  metric('counters', 'gauge', board.sum(F_COUNTERS))
  metric('pending_ops', 'gauge', board.sum(F_PENDING_OPS))
  metric('durable_records_total', 'counter', board.sum(F_DURABLE_RECORDS))
  metric('commits_total', 'counter', board.sum(F_COMMITS))
  metric('shards', 'gauge', board.shards)
  metric('ready', 'gauge', board.nodePhase === PHASE_READY ? 1 : 0)
  if (ingestTopic !== '') {
    metric('ingest_events_total', 'counter', board.sum(F_INGEST_EVENTS))
    metric('ingest_duplicates_total', 'counter', board.sum(F_INGEST_DUPLICATES))
    // Consumers this node runs, and how many of them hold at least one partition (a group settled).
    let consumers = 0
    let assigned = 0
    for (let s = 0; s < board.shards; s++) {
      const n = board.field(s, F_INGEST_PARTITIONS)
      if (n >= 0) consumers++
      if (n > 0) assigned++
    }
    metric('ingest_consumers', 'gauge', consumers)
    metric('ingest_consumers_assigned', 'gauge', assigned)
    byCode('ingest_dead_letters_total', board.errors('ingest'))
    // Topic names are [A-Za-z0-9._-]: nothing to escape in the label.
    lines.push('# TYPE counterd_ingest_lag_messages gauge')
    for (const [p, lag] of board.ingestLag()) lines.push(`counterd_ingest_lag_messages{topic="${ingestTopic}",partition="${p}"} ${lag}`)
  }
  return lines.join('\n') + '\n'
}
