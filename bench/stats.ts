// Summaries of repeated measurements: median with min–max, and per-round ratios.

export interface Spread {
  median: number
  min: number
  max: number
  n: number
}

export function median (xs: readonly number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

export function spread (xs: readonly number[]): Spread {
  const finite = xs.filter(Number.isFinite)
  if (finite.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 }
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), n: finite.length }
}

/** Round-by-round ratio subject/peer (each pair ran back to back); NaN where either is missing. */
export function ratios (subject: readonly number[], peer: readonly number[]): number[] {
  const n = Math.min(subject.length, peer.length)
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push(peer[i] > 0 ? subject[i] / peer[i] : NaN)
  return out
}

/** Short human number: 1234567 → "1.23M", 0.5 → "0.50". */
export function human (x: number, digits = 3): string {
  if (!Number.isFinite(x)) return '–'
  const a = Math.abs(x)
  if (a >= 1e9) return (x / 1e9).toPrecision(digits) + 'G'
  if (a >= 1e6) return (x / 1e6).toPrecision(digits) + 'M'
  if (a >= 1e4) return (x / 1e3).toPrecision(digits) + 'k'
  if (a >= 100) return x.toFixed(0)
  return x.toPrecision(digits)
}
