// Opens the storage of one shard from the config: embedded (WAL + snapshot files) unless
// cluster storage is configured (Kafka log + Redis checkpoints); ClickHouse history when set.
// The Kafka, Redis and ClickHouse clients are loaded only when configured: together they take a
// few hundred milliseconds of every shard thread's start.
import path from 'node:path'
import { isClusterStorage, type Config } from '../../config/loader'
import type { ClickHouseHistory } from './clickhouse-history'
import { SnapshotStore } from './snapshot-store'
import type { CheckpointStore, DeltaLog } from './types'
import { CounterdError } from '../core/errors'
import type { DeltaRecord } from '../core/records'
import { WalLog } from './wal'

export interface Storage {
  log: DeltaLog
  checkpoints: CheckpointStore
  history: ClickHouseHistory | null
  /** The epoch this shard owns its partitions under (cluster mode: claimed in Redis, fencing older owners). */
  epoch: number
  /** Why the log or checkpoint store is failing, or undefined when both are fine. */
  failing: () => string | undefined
}

export interface StorageHooks {
  logger: { warn: (obj: object, msg: string) => void, info: (obj: object, msg: string) => void }
}

export function walDir (config: Config): string { return path.join(config.dataDir, 'wal') }
export function snapshotDir (config: Config): string { return path.join(config.dataDir, 'snapshots') }

export async function openStorage (config: Config, shard: number, shards: number, partitions: readonly number[], epoch: number, hooks: StorageHooks): Promise<Storage> {
  const history = config.clickhouseUrl === ''
    ? null
    : await (await import('./clickhouse-history')).ClickHouseHistory.open({ url: config.clickhouseUrl, flushIntervalMs: config.historyFlushMs, logger: hooks.logger })
  if (!isClusterStorage(config)) {
    const log = new WalLog({
      dir: walDir(config),
      hostIndex: shard,
      shards,
      epoch,
      segmentBytes: config.walSegmentBytes,
      onTornTail: (file, good, total) => hooks.logger.warn({ file, goodBytes: good, ignoredBytes: total - good }, 'WAL segment has a torn tail; ignoring it')
    })
    return { log, checkpoints: new SnapshotStore(snapshotDir(config)), history, epoch, failing: () => undefined }
  }
  const [{ RedisCheckpointStore }, { KafkaDeltaLog }] = await Promise.all([import('./redis-checkpoints'), import('./kafka-log')])
  const checkpoints = await RedisCheckpointStore.open({ url: config.redisUrl })
  await checkpoints.checkPartitions(config.partitions)
  const log = await KafkaDeltaLog.open({
    brokers: config.kafkaBrokers.split(','),
    topic: config.kafkaTopic,
    clientId: `counterd-shard-${shard}`,
    numPartitions: config.partitions,
    logger: hooks.logger,
    // Fencing: an append is acknowledged only while no successor has claimed its partitions.
    confirm: async (records) => await confirmOwners(checkpoints, records)
  })
  const claimed = await checkpoints.claimEpoch(partitions, epoch)
  return {
    log,
    checkpoints,
    history,
    epoch: claimed,
    failing: () => {
      const l = log.status()
      if (!l.ok) return `Kafka: ${l.error ?? 'failing'}`
      const c = checkpoints.status()
      if (!c.ok) return `Redis: ${c.error ?? 'failing'}`
      return undefined
    }
  }
}

/** How long an append's acknowledgement waits for Redis to confirm its partitions' owners. */
const FENCE_WAIT_MS = 250

/**
 * Fencing of log appends (cluster/README.md): refused only when Redis answers that a successor
 * claimed a partition. A Redis that is down, or slower than FENCE_WAIT_MS, cannot say; the append
 * is then acknowledged as without fencing (the membership group still vouches for this node), so
 * a Redis outage never stops writes — their log is Kafka.
 */
async function confirmOwners (store: { checkOwners: (records: DeltaRecord[]) => Promise<void> }, records: DeltaRecord[]): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const check = store.checkOwners(records).then(() => null, (err: unknown) => err)
  const late = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), FENCE_WAIT_MS) })
  try {
    const err = await Promise.race([check, late])
    if (err instanceof CounterdError && err.code === 'fenced') throw err
  } finally {
    clearTimeout(timer)
  }
}
