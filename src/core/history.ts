// What a history query means, wherever it is answered (ClickHouse, or the partition's own minute
// buckets): the net change of one counter per UTC-aligned bucket, over the minutes whose start lies
// in [from, to); sparse (buckets without a net change are left out), ordered by time.

export type HistoryStep = 'minute' | 'hour' | 'day'
export const STEP_SECONDS: Readonly<Record<HistoryStep, number>> = { minute: 60, hour: 3600, day: 86400 }
/** Longest series one query may return, in buckets. */
export const MAX_HISTORY_POINTS = 100_000

export interface HistoryPoint {
  ts: number // start of the bucket, ms since the Unix epoch (UTC buckets)
  value: number // net change of the counter within the bucket
}

/** Minutes since the Unix epoch covered by [fromMs, toMs): [first, end). */
export function minuteRange (fromMs: number, toMs: number): { first: number, end: number } {
  // As ClickHouse is asked: minute >= floor(from to the minute) and minute < ceil(to to the second).
  return { first: Math.floor(fromMs / 60_000), end: Math.ceil(Math.ceil(toMs / 1000) / 60) }
}
