// Partition → owning member, computed by the group leader. Consistent hashing (the `hashring`
// package, ketama-style virtual nodes) keeps a join or leave to about 1/N of the partitions moving;
// bounded loads (Mirrokni et al., "Consistent Hashing with Bounded Loads") cap every member at
// ceil(P/N × maxLoadFactor) so an unlucky ring cannot pile partitions on one member.
// Everything is a pure function of (set of member ids, P, options): every node that computes it
// gets the same answer, whatever order it learned the ids in.
import HashRing from 'hashring'
import { CounterdError } from '../src/core/errors'

export interface AssignOptions {
  /** hashring "vnodes" per member; each is one md5 hash = 4 ring points. Default 160 (640 points). */
  vnodes?: number
  /** Cap on a member's load as a multiple of the mean: at least 1, default 1.25. */
  maxLoadFactor?: number
}

const DEFAULT_VNODES = 160
const DEFAULT_MAX_LOAD_FACTOR = 1.25

function invalid (message: string): never {
  throw new CounterdError('invalid_option', message)
}

/** Owner member id of each partition 0..partitions-1. memberIds: non-empty, unique, non-empty strings. */
export function assignPartitions (memberIds: readonly string[], partitions: number, options: AssignOptions = {}): string[] {
  if (!Array.isArray(memberIds) || memberIds.length === 0) invalid('memberIds must be a non-empty array of member ids')
  const seen = new Set<string>()
  for (const id of memberIds) {
    if (typeof id !== 'string' || id.length === 0) invalid(`memberIds must be non-empty strings, got ${JSON.stringify(id)}`)
    if (seen.has(id)) invalid(`memberIds must be unique, got ${JSON.stringify(id)} twice`)
    seen.add(id)
  }
  if (!Number.isSafeInteger(partitions) || partitions < 1) invalid(`partitions must be a positive integer, got ${JSON.stringify(partitions)}`)
  const vnodes = options.vnodes ?? DEFAULT_VNODES
  if (!Number.isSafeInteger(vnodes) || vnodes < 1) invalid(`vnodes must be a positive integer, got ${JSON.stringify(vnodes)}`)
  const factor = options.maxLoadFactor ?? DEFAULT_MAX_LOAD_FACTOR
  if (typeof factor !== 'number' || !Number.isFinite(factor) || factor < 1) invalid(`maxLoadFactor must be a finite number >= 1, got ${JSON.stringify(factor)}`)

  // Ring names are prefixed so no id can be "__proto__" inside hashring's plain-object maps (that
  // member would get no points). The prefix is part of every point's hash: changing it reshuffles all.
  const ringName = (id: string): string => `m/${id}`
  const servers: Record<string, { vnodes: number }> = Object.create(null)
  for (const id of [...memberIds].sort()) servers[ringName(id)] = { vnodes }
  // hashring uses a member's own vnode count verbatim only when it differs from 'vnode count';
  // otherwise it computes floor(1/N × vnodes × N), which floating point makes vnodes - 1 for
  // N = 7, 14, 28, ... (so crossing such an N would move every member's last vnode). 0 is never a
  // real count, so ours is always taken as given.
  const ring = new HashRing(servers, 'md5', { 'vnode count': 0 })
  const idOf = new Map<string, string>()
  for (const id of memberIds) idOf.set(ringName(id), id)

  // P × factor / N can land a hair above a whole number in floating point (100 × 1.1 / 10 =
  // 11.000000000000002), which ceil would make 12: shave a relative 1e-12 first. That is far below
  // the 1/N that separates P/N from the next integer, so n × cap ≥ partitions still holds (factor ≥ 1)
  // and the walk below always finds room.
  const n = memberIds.length
  const bound = partitions * factor / n
  const cap = Math.ceil(bound - bound * 1e-12)
  const load = new Map<string, number>()
  const owners = new Array<string>(partitions)
  for (let p = 0; p < partitions; p++) {
    const key = `p${p}`
    // Walk clockwise from the partition's point over distinct members; fetch a longer prefix of the
    // walk only when every member in the shorter one is full (rare: most owners have room).
    let owner: string | undefined
    for (let size = 1, from = 0; owner === undefined; from = size, size = Math.min(size * 4, n)) {
      const candidates = ring.range(key, size, true)
      for (let i = from; i < candidates.length && owner === undefined; i++) {
        if ((load.get(candidates[i]) ?? 0) < cap) owner = candidates[i]
      }
      if (owner === undefined && size === n) throw new CounterdError('internal', 'no member has room (cannot happen: n × cap >= partitions)')
    }
    load.set(owner, (load.get(owner) ?? 0) + 1)
    owners[p] = idOf.get(owner) as string
  }
  return owners
}

/** How many partitions change owner between two assignments of the same length. */
export function moved (before: readonly string[], after: readonly string[]): number {
  if (before.length !== after.length) {
    throw new CounterdError('invalid_argument', `before and after must be the same length, got ${before.length} and ${after.length}`)
  }
  let count = 0
  for (let p = 0; p < before.length; p++) if (before[p] !== after[p]) count++
  return count
}
