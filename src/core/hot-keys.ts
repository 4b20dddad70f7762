// Names of a split (hot) counter's parts. A counter "type:id" split W ways keeps its count as
//   value = home + Σ_j (sub_j + drained_j − absorbed_j)
// where every term is an ordinary counter, so the log, checkpoints, replay and handoffs carry a
// split exactly as they carry any counter:
//   home        "type:id" itself, in its own partition (increments that still arrive there count);
//   sub_j       "type:id~j", in the partition its name hashes to (increments spread over these);
//   drained_j   what merging moved out of sub_j, kept in sub_j's partition (moved with it atomically);
//   absorbed_j  what merging added to home from drained_j, kept in home's partition (added with it);
//   ways, merging  the split's state, in home's partition.
// A marker that must share a partition with another counter gets a salt: the smallest n for which
// its name hashes to that partition, so every node derives the same names from the key alone.
// '~' is outside the key rules (keys.ts), so no user key can name a part.
import { fnv1a32 } from './keys'

export const PART_MARK = '~'

/** Whether a key names a part of a split counter (never a user's counter). */
export function isPartKey (key: string): boolean {
  return key.includes(PART_MARK)
}

/** The counter a part belongs to ("type:id~3" → "type:id"); the key itself when it is not a part. */
export function baseOfPart (key: string): string {
  const i = key.indexOf(PART_MARK)
  return i < 0 ? key : key.slice(0, i)
}

/** The counter a sub-counter belongs to ("type:id~3" → "type:id"); null for any other key (markers too). */
export function baseOfSub (key: string): string | null {
  const i = key.indexOf(PART_MARK)
  if (i < 0 || i === key.length - 1) return null
  for (let k = i + 1; k < key.length; k++) {
    const c = key.charCodeAt(k)
    if (c < 48 || c > 57) return null
  }
  return key.slice(0, i)
}

/** `prefix` + the smallest salt for which the name hashes to `partition`. */
function saltedName (prefix: string, partition: number, partitions: number): string {
  for (let n = 0; ; n++) {
    const name = prefix + n.toString(36)
    if (fnv1a32(name) % partitions === partition) return name
  }
}

export interface HotNames {
  key: string
  hash: number
  partition: number
  ways: number
  subs: string[]
  subHashes: number[]
  subPartitions: number[]
  drained: string[] // parallel to subs, each in its sub's partition
  absorbed: string[] // parallel to subs, in home's partition
  waysKey: string // in home's partition: W while split (or merging), 0 when not
  mergingKey: string // in home's partition: 1 while merging
}

/** Every name of `key` split `ways` ways over `partitions` partitions. */
export function hotNames (key: string, ways: number, partitions: number): HotNames {
  const hash = fnv1a32(key)
  const partition = hash % partitions
  const subs: string[] = []
  const subHashes: number[] = []
  const subPartitions: number[] = []
  const drained: string[] = []
  const absorbed: string[] = []
  for (let j = 0; j < ways; j++) {
    const sub = key + PART_MARK + String(j)
    const h = fnv1a32(sub)
    subs.push(sub)
    subHashes.push(h)
    subPartitions.push(h % partitions)
    drained.push(saltedName(sub + PART_MARK + 'd', h % partitions, partitions))
    absorbed.push(saltedName(key + PART_MARK + 'a' + String(j) + PART_MARK, partition, partitions))
  }
  return {
    key,
    hash,
    partition,
    ways,
    subs,
    subHashes,
    subPartitions,
    drained,
    absorbed,
    waysKey: saltedName(key + PART_MARK + 'w' + PART_MARK, partition, partitions),
    mergingKey: saltedName(key + PART_MARK + 'm' + PART_MARK, partition, partitions)
  }
}

/**
 * The counters besides the home that hold part of a split counter's value, in this order: its
 * subs, their drained counters, then the absorbed ones (which count negatively).
 */
export function valueParts (n: HotNames): string[] {
  return [...n.subs, ...n.drained, ...n.absorbed]
}

/** The marker that holds a counter's ways, found without knowing them (a split's state is in home's partition). */
export function waysKeyOf (key: string, partitions: number): string {
  return saltedName(key + PART_MARK + 'w' + PART_MARK, fnv1a32(key) % partitions, partitions)
}

/** The marker of a counter's merging state. */
export function mergingKeyOf (key: string, partitions: number): string {
  return saltedName(key + PART_MARK + 'm' + PART_MARK, fnv1a32(key) % partitions, partitions)
}

/** The counter whose ways a marker key holds ("type:id~w~salt" → "type:id"), or null. */
export function baseOfWaysKey (key: string): string | null {
  const i = key.indexOf(PART_MARK + 'w' + PART_MARK)
  return i < 0 || key.indexOf(PART_MARK) !== i ? null : key.slice(0, i)
}
