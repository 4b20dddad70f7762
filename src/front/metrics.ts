// Plain counters exposed at GET /metrics in the Prometheus text format.
export class Metrics {
  httpRequests = 0
  httpErrors = new Map<string, number>()
  wsConnections = 0
  wsFrames = 0
  wsOps = 0
  wsErrors = new Map<string, number>()
  incrementsAcked = 0

  countError (map: Map<string, number>, code: string): void {
    map.set(code, (map.get(code) ?? 0) + 1)
  }

  render (gauges: Record<string, number>): string {
    const lines: string[] = [
      '# TYPE counterd_http_requests_total counter', `counterd_http_requests_total ${this.httpRequests}`,
      '# TYPE counterd_http_errors_total counter',
      ...[...this.httpErrors].map(([code, n]) => `counterd_http_errors_total{code="${code}"} ${n}`),
      '# TYPE counterd_ws_connections gauge', `counterd_ws_connections ${this.wsConnections}`,
      '# TYPE counterd_ws_frames_total counter', `counterd_ws_frames_total ${this.wsFrames}`,
      '# TYPE counterd_ws_ops_total counter', `counterd_ws_ops_total ${this.wsOps}`,
      '# TYPE counterd_ws_errors_total counter',
      ...[...this.wsErrors].map(([code, n]) => `counterd_ws_errors_total{code="${code}"} ${n}`),
      '# TYPE counterd_increments_acked_total counter', `counterd_increments_acked_total ${this.incrementsAcked}`
    ]
    for (const name in gauges) lines.push(`# TYPE counterd_${name} gauge`, `counterd_${name} ${gauges[name]}`)
    return lines.join('\n') + '\n'
  }
}
