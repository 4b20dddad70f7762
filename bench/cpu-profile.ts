// Summarises the .cpuprofile files `node --cpu-prof` writes (one per thread): where each
// thread spent its samples, by function (self time) and by category (idle, GC, our code,
// native/uWS, node internals). This is the evidence behind "what limited this suite".
import fs from 'node:fs'
import path from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  hitCount?: number
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface ProfileSummary {
  file: string
  /** wall time covered by the profile, ms */
  totalMs: number
  /** share of samples that were not idle (the thread's busy fraction) */
  busyPercent: number
  categories: Record<string, number>
  top: Array<{ fn: string, where: string, selfPercent: number }>
}

function categoryOf (fn: string, url: string): string {
  if (fn === '(idle)') return 'idle'
  if (fn === '(garbage collector)') return 'gc'
  if (fn === '(program)') return 'native (uWS, V8, libuv)'
  if (url.includes('/node_modules/')) return 'dependencies'
  if (url.includes('/bench/')) return 'benchmark code'
  if (url.startsWith('node:')) return 'node internals'
  if (url === '') return 'native (uWS, V8, libuv)'
  return 'counterd code'
}

export function summariseProfile (file: string, topN = 12): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map<number, ProfileNode>()
  for (const n of p.nodes) byId.set(n.id, n)
  // Self time per node from sample deltas (more precise than hitCount on uneven intervals).
  const selfUs = new Map<number, number>()
  for (let i = 0; i < p.samples.length; i++) {
    const d = p.timeDeltas[i + 1] ?? 0
    selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + d)
  }
  const totalUs = Math.max(1, p.endTime - p.startTime)
  const byFn = new Map<string, number>()
  const categories: Record<string, number> = {}
  let idleUs = 0
  for (const [id, us] of selfUs) {
    const n = byId.get(id)
    if (n === undefined) continue
    const { functionName, url, lineNumber } = n.callFrame
    const fn = functionName === '' ? '(anonymous)' : functionName
    const cat = categoryOf(fn, url)
    categories[cat] = (categories[cat] ?? 0) + us
    if (cat === 'idle') { idleUs += us; continue }
    const where = url === '' ? '' : `${url.replace(/^file:\/\//, '').replace(process.cwd() + '/', '')}:${lineNumber + 1}`
    const key = `${fn}\t${where}`
    byFn.set(key, (byFn.get(key) ?? 0) + us)
  }
  const pct = (us: number): number => Math.round(us / totalUs * 1000) / 10
  const top = [...byFn.entries()].sort((a, b) => b[1] - a[1]).slice(0, topN)
    .map(([key, us]) => { const [fn, where] = key.split('\t'); return { fn, where, selfPercent: pct(us) } })
  const cats: Record<string, number> = {}
  for (const [k, us] of Object.entries(categories).sort((a, b) => b[1] - a[1])) cats[k] = pct(us)
  return { file: path.basename(file), totalMs: Math.round(totalUs / 1000), busyPercent: pct(totalUs - idleUs), categories: cats, top }
}

/** Summaries of every profile in a directory, busiest thread first. */
export function summariseProfileDir (dir: string, topN = 12): ProfileSummary[] {
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir).filter(f => f.endsWith('.cpuprofile'))
    .map(f => summariseProfile(path.join(dir, f), topN))
    .sort((a, b) => b.busyPercent - a.busyPercent)
}

if (require.main === module) {
  const dir = process.argv[2]
  if (dir === undefined) {
    process.stderr.write('usage: node dist/bench/cpu-profile.js <dir with .cpuprofile files>\n')
    process.exit(2)
  }
  process.stdout.write(JSON.stringify(summariseProfileDir(dir), null, 2) + '\n')
}
