// A stream client's dedup state in one partition, as one number (a DedupEntry value): the newest
// frame seq applied there and which of the 21 seqs below it were applied too. A frame can fail in
// one partition (moving, a lost peer link) after later frames were applied there; its resend under
// the same seq must then still apply, while partitions where it did apply skip it. A seq more than
// 21 below the newest counts as applied (clients keep fewer frames than that in flight).
//
// Encoding: −(newest × 2^21 + mask) − 1, bit k of mask set ⇔ seq newest − 1 − k was applied
// (seqs are u32, so it stays a safe integer). A value ≥ 0 is the older form, the newest seq alone:
// every seq at or below it counts as applied.
const WINDOW = 21
const SPAN = 2 ** WINDOW
const FULL = SPAN - 1

/** Whether frame `seq` was already applied, given the entry's value (undefined: none yet). */
export function streamSeen (value: number | undefined, seq: number): boolean {
  if (value === undefined) return false
  if (value >= 0) return seq <= value
  const x = -value - 1
  const newest = Math.floor(x / SPAN)
  if (seq >= newest) return seq === newest
  const d = newest - seq
  return d > WINDOW || ((x % SPAN) & (1 << (d - 1))) !== 0
}

/** The entry's value once frame `seq` (not seen before) is applied. */
export function streamAdd (value: number | undefined, seq: number): number {
  let newest = seq
  let mask = 0
  if (value !== undefined) {
    const x = value >= 0 ? -1 : -value - 1
    const was = value >= 0 ? value : Math.floor(x / SPAN)
    const wasMask = value >= 0 ? FULL : x % SPAN
    if (seq > was) {
      const shift = seq - was
      mask = shift > WINDOW ? 0 : ((wasMask * 2 ** shift) + 2 ** (shift - 1)) % SPAN
    } else {
      newest = was
      const d = was - seq
      mask = d >= 1 && d <= WINDOW ? (wasMask | (1 << (d - 1))) : wasMask
    }
  }
  return -(newest * SPAN + mask) - 1
}
