// Picks the storage for an actor host from the config: embedded (WAL + snapshot files) unless
// cluster storage is configured.
import path from 'node:path'
import type { Config } from '../../config/loader'
import { SnapshotStore } from './snapshot-store'
import type { CheckpointStore, DeltaLog } from './types'
import { WalLog } from './wal'

export interface Storage {
  log: DeltaLog
  checkpoints: CheckpointStore
}

export interface StorageHooks {
  onTornTail: (file: string, goodBytes: number, totalBytes: number) => void
}

export function walDir (config: Config): string { return path.join(config.dataDir, 'wal') }
export function snapshotDir (config: Config): string { return path.join(config.dataDir, 'snapshots') }

export function openStorage (config: Config, hostIndex: number, epoch: number, hooks: StorageHooks): Storage {
  return {
    log: new WalLog({ dir: walDir(config), hostIndex, epoch, onTornTail: hooks.onTornTail }),
    checkpoints: new SnapshotStore(snapshotDir(config))
  }
}
