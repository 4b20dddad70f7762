// A ring of node processes for a test: the environment that makes nodes of one ring (a private
// Kafka mock and Redis, a unique cluster name and topic), and waiting until every node agrees.
import type { Test } from 'tap'
import { uniqueName } from './cluster-stores'
import type { KafkaMock } from './kafka'
import type { NodeProcess } from './node-process'
import { sleep } from './process-control'
import type { RedisServer } from './redis'

export interface ClusterView {
  cluster: string | null
  generation: number
  self: string
  members: Array<{ id: string, url: string, partitions: number[] }>
}

/** Environment for nodes of one ring: a 3 s session (the mock accepts it), two shards, frequent checkpoints. */
export function ringEnv (kafka: KafkaMock, redis: RedisServer, label: string): { env: Record<string, string>, topic: string } {
  const topic = uniqueName(`${label}-deltas`)
  return {
    topic,
    env: {
      KAFKA_BROKERS: kafka.brokers.join(','),
      KAFKA_TOPIC: topic,
      REDIS_URL: redis.url,
      CLUSTER_NAME: uniqueName(label),
      CLUSTER_SESSION_MS: '3000',
      WORKERS: '2',
      CHECKPOINT_INTERVAL_MS: '500'
    }
  }
}

/** The node's GET /v1/cluster, or null while it has none (or does not answer). */
export async function clusterOf (node: NodeProcess): Promise<ClusterView | null> {
  try {
    const r = await fetch(`${node.base}/v1/cluster`)
    return r.status === 200 ? await r.json() as ClusterView : null
  } catch {
    return null
  }
}

/** Waits until every node is ready and sees the same generation with exactly `nodes` as members. */
export async function waitForRing (t: Test, nodes: NodeProcess[], timeoutMs = 90_000): Promise<ClusterView> {
  const deadline = Date.now() + timeoutMs
  const want = JSON.stringify(nodes.map((n) => n.base).sort())
  let last = ''
  for (;;) {
    const views = await Promise.all(nodes.map(clusterOf))
    const ready = await Promise.all(nodes.map(async (n) => await fetch(`${n.base}/ready`).then((r) => r.status, () => 0)))
    const v0 = views[0]
    if (v0 !== null && views.every((v) => v?.generation === v0.generation) && ready.every((s) => s === 200) &&
      JSON.stringify(v0.members.map((m) => m.url).sort()) === want) return v0
    last = JSON.stringify(views.map((v) => v === null ? null : { g: v.generation, m: v.members.map((m) => m.url) })) + ` ready ${ready.join(',')}`
    if (Date.now() > deadline) {
      t.fail(`the ring did not settle on ${want} within ${timeoutMs} ms; last seen ${last}`)
      throw new Error('no ring')
    }
    await sleep(100)
  }
}

/**
 * Waits until the nodes together serve every partition (the sum of counterd_partitions_owned):
 * every move of the current view is complete. What an operator checks between two restarts.
 */
export async function waitSettled (t: Test, nodes: NodeProcess[], partitions = 64, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last: number[] = []
  for (;;) {
    last = await Promise.all(nodes.map(async (n) => {
      try {
        const m = /\ncounterd_partitions_owned (\d+)\n/.exec(await (await fetch(`${n.base}/metrics`)).text())
        return m === null ? 0 : Number(m[1])
      } catch {
        return 0
      }
    }))
    if (last.reduce((a, b) => a + b, 0) === partitions) return
    if (Date.now() > deadline) {
      t.fail(`the nodes did not come to serve all ${partitions} partitions within ${timeoutMs} ms: ${last.join(' + ')}`)
      throw new Error('not settled')
    }
    await sleep(100)
  }
}
