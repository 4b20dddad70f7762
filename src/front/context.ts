// What the HTTP and WebSocket fronts share: config, router, metrics, and the node's lifecycle.
import type { Logger } from 'pino'
import type { Config } from '../../config/loader'
import { CounterdError } from '../core/errors'
import type { Router } from '../routing/router'
import type { Metrics } from './metrics'

export interface NodeStatus {
  ready: boolean // recovered and serving
  draining: boolean // SIGTERM received: finishing in-flight work, taking no new work
  readiness: () => Promise<{ ready: boolean, detail: Record<string, unknown> }>
}

export interface FrontContext {
  config: Config
  router: Router
  metrics: Metrics
  status: NodeStatus
  logger: Logger
}

/**
 * Whether `ops` more ops may enter now; the error says why not (all retriable). Reads and writes
 * have separate in-flight bounds, so writes held by a log outage never shut reads out.
 */
export function admit (ctx: FrontContext, ops: number, kind: 'write' | 'read' = 'write'): CounterdError | null {
  if (ctx.status.draining) return new CounterdError('shutting_down')
  if (!ctx.status.ready) return new CounterdError('not_ready')
  const inflight = kind === 'write' ? ctx.router.inflightOps : ctx.router.inflightReads
  if (inflight + ops > ctx.config.maxInflightOps) return new CounterdError('overloaded')
  return null
}
