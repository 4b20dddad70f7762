// What the HTTP and WebSocket fronts of one shard thread share: config, router, this shard's
// metrics row, the node's status board, and the admission rule.
import type { Logger } from 'pino'
import type { Config } from '../../config/loader'
import { CounterdError } from '../core/errors'
import type { InflightGauge } from '../routing/inflight'
import type { ApiKeyVerifier } from '../core/api-keys'
import type { KeyRateLimiter } from '../core/key-rate'
import type { Router } from '../routing/router'
import type { RingRouting } from '../../cluster/ring-routing'
import type { ThreadMetrics } from './metrics'
import { PHASE_DRAINING, PHASE_READY, type ShardRow, type StatusBoard } from './status-board'

export interface FrontContext {
  config: Config
  router: Router
  /** Ring mode (cluster storage): the ring as this shard routes by it; null in embedded mode. */
  ring: RingRouting | null
  /** This node's URL (ADVERTISE_URL, or http(s)://HOST:PORT once it listens). */
  selfUrl: string
  /** This shard's row of the board: the front counts requests, frames and errors into it. */
  metrics: ShardRow
  /** API keys (AUTH_FILE), replaced on SIGHUP; null: the node is open. */
  auth: ApiKeyVerifier | null
  /** KEY_OPS_PER_SECOND: the node-wide rate of each API key; null: no limit */
  keyLimit: KeyRateLimiter | null
  /** This thread's prom-client registry and hot-path histograms. */
  threadMetrics: ThreadMetrics
  board: StatusBoard
  /** Ops the node accepted and has not answered, over every shard. */
  inflight: InflightGauge
  logger: Logger
}

/**
 * Whether new work may enter now; the error says why not (all retriable). The in-flight bounds
 * (reads and writes apart, so writes held by a log outage never shut reads out) are checked when
 * the router sends the unit (Router.endUnit).
 */
export function admit (ctx: FrontContext): CounterdError | null {
  const phase = ctx.board.nodePhase
  if (phase === PHASE_READY) return null
  return new CounterdError(phase === PHASE_DRAINING ? 'shutting_down' : 'not_ready')
}

/** The error for a unit the router refused: too much in flight, or the ring to its shard is full. */
export function overloaded (): CounterdError {
  return new CounterdError('overloaded')
}

/**
 * The same control request on every shard of the ring: this node's shards, and (ring mode) every
 * other node's shards through one peer link each. Answers in no particular order.
 */
export async function askEveryShard (ctx: FrontContext, name: string, args: unknown): Promise<unknown[]> {
  const own = ctx.router.controlAll(name, args)
  const others = (ctx.ring?.otherNodes() ?? []).map(async (t) => await ctx.router.control(t, 'node', { name, args }) as unknown[])
  const [mine, ...theirs] = await Promise.all([own, ...others])
  return mine.concat(...theirs)
}
