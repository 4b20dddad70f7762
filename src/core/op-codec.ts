// Messages between the router (main thread) and an actor host (worker thread). A write or read
// task carries one part per partition touched in one event-loop tick; a part's ops are packed in
// one transferable byte buffer so a batch crosses threads without per-op objects.
//
// op encoding inside PartBatch.ops:
//   u8 kind | u8 keyLen | u32 FNV-1a hash of the key (LE) | key bytes (ASCII) | [f64 delta if kind = OP_INCR]
// The hash, computed once by the front for routing, is also the actor's hash-table hash.
export const OP_HEADER_BYTES = 6

export const OP_INCR = 1 // write: f64 delta follows the key
export const OP_RESET = 2 // write
export const OP_GET = 3 // read: the value
export const OP_INCR_ACTOR = 4 // write: f64 delta, then u8 argLen | actor
export const OP_LIKE = 5 // write: key = item "type:id", then u8 argLen | user
export const OP_UNLIKE = 6 // write: as OP_LIKE
export const OP_HAS_LIKED = 7 // read: as OP_LIKE; 1 or 0
export const OP_LIKE_COUNT = 8 // read: key = item
export const OP_UNIQUE = 9 // read: HyperLogLog estimate of distinct actors
export const OP_RATE = 10 // read: increments per second over about the last minute

/** Whether an op kind carries an f64 delta after its key, and a length-prefixed argument after that. */
export const OP_HAS_DELTA = [false, true, false, false, true, false, false, false, false, false, false]
export const OP_HAS_ARG = [false, false, false, false, true, true, true, true, false, false, false]

/** Bytes of the op starting at `o`. */
export function opSize (buf: Uint8Array, o: number): number {
  const kind = buf[o]
  let n = OP_HEADER_BYTES + buf[o + 1]
  if (OP_HAS_DELTA[kind]) n += 8
  if (OP_HAS_ARG[kind]) n += 1 + buf[o + n]
  return n
}
