// CPU time and memory of processes and their threads, read from Linux /proc. Every suite
// records how much CPU the server, the peer and the load generator used while it ran: on a
// 2-core machine shared by all three, that is the first evidence of what limited a figure.
import fs from 'node:fs'

// USER_HZ is 100 on every mainstream Linux build; /proc reports CPU time in these ticks.
const TICKS_PER_SECOND = 100

function statFields (text: string): string[] {
  // comm (field 2) may contain spaces and parentheses: split after its closing ')'.
  const close = text.lastIndexOf(')')
  return text.slice(close + 2).trim().split(' ')
}

/** user + system CPU milliseconds of a process (all threads) or of one thread; null if gone. */
export function cpuMsOf (statPath: string): number | null {
  try {
    const f = statFields(fs.readFileSync(statPath, 'utf8'))
    // After comm: state is index 0, utime index 11, stime index 12.
    return (Number(f[11]) + Number(f[12])) * 1000 / TICKS_PER_SECOND
  } catch {
    return null
  }
}

export function processCpuMs (pid: number): number | null {
  return cpuMsOf(`/proc/${pid}/stat`)
}

/** CPU of this process' waited-for children (cutime + cstime): how a finished child is measured. */
export function reapedChildrenCpuMs (): number {
  const f = statFields(fs.readFileSync('/proc/self/stat', 'utf8'))
  return (Number(f[13]) + Number(f[14])) * 1000 / TICKS_PER_SECOND
}

/** Resident set size in bytes (VmRSS), or null when the process is gone. */
export function rssBytes (pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? null : Number(m[1]) * 1024
  } catch {
    return null
  }
}

/**
 * CPU milliseconds of the whole machine since boot: `busy` (every process, all cores) and
 * `steal` (time the hypervisor gave this VM's cores to someone else).
 */
export function machineCpuMs (): { busy: number, steal: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]
  // cpu  user nice system idle iowait irq softirq steal ...
  const f = line.trim().split(/\s+/).slice(1).map(Number)
  const busy = f[0] + f[1] + f[2] + f[5] + f[6]
  return { busy: busy * 1000 / TICKS_PER_SECOND, steal: (f[7] ?? 0) * 1000 / TICKS_PER_SECOND }
}

export interface ThreadCpu {
  tid: number
  name: string
  cpuMs: number
}

export function threadsOf (pid: number): ThreadCpu[] {
  let tids: string[]
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`)
  } catch {
    return []
  }
  const out: ThreadCpu[] = []
  for (const t of tids) {
    const cpuMs = cpuMsOf(`/proc/${pid}/task/${t}/stat`)
    if (cpuMs === null) continue
    let name = ''
    try { name = fs.readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim() } catch {}
    // The main thread's tid is the pid; Node's worker threads are all named "node" otherwise.
    out.push({ tid: Number(t), name: Number(t) === pid ? `${name} (main)` : name, cpuMs })
  }
  return out
}

export interface CpuUsage {
  /** CPU milliseconds used during the window */
  cpuMs: number
  /** cpuMs / wall ms × 100: 100 = one core busy, 200 = both cores of this machine */
  percent: number
  /** threads that used at least 1% of a core, busiest first */
  threads: Array<{ name: string, percent: number }>
}

/** Measures CPU of a set of labelled processes over a window (start → stop). */
export class CpuMeter {
  private readonly started = process.hrtime.bigint()
  private readonly before = new Map<string, { pid: number, cpu: number, threads: Map<number, number> }>()
  private readonly childrenBefore = reapedChildrenCpuMs()
  private readonly machineBefore = machineCpuMs()

  constructor (pids: Record<string, number>) {
    for (const [label, pid] of Object.entries(pids)) {
      const threads = new Map<number, number>()
      for (const t of threadsOf(pid)) threads.set(t.tid, t.cpuMs)
      this.before.set(label, { pid, cpu: processCpuMs(pid) ?? 0, threads })
    }
  }

  /** Includes a process started after the window opened (all its CPU time falls in the window). */
  addStartedProcess (label: string, pid: number): void {
    this.before.set(label, { pid, cpu: 0, threads: new Map() })
  }

  /**
   * Per label usage; `reapedChildren` covers children that exited in the window (redis-benchmark);
   * `others` is what the rest of the machine used meanwhile (other processes competing for the
   * cores) and `hypervisor steal` the time the cores were not ours at all.
   */
  stop (): { wallMs: number, usage: Record<string, CpuUsage>, reapedChildren: CpuUsage } {
    const wallMs = Number(process.hrtime.bigint() - this.started) / 1e6
    const pct = (ms: number): number => Math.round(ms / wallMs * 1000) / 10
    const usage: Record<string, CpuUsage> = {}
    for (const [label, b] of this.before) {
      const cpuMs = (processCpuMs(b.pid) ?? b.cpu) - b.cpu
      const threads = threadsOf(b.pid)
        .map(t => ({ name: t.name, ms: t.cpuMs - (b.threads.get(t.tid) ?? 0) }))
        .filter(t => t.ms >= wallMs / 100)
        .sort((x, y) => y.ms - x.ms)
        .map(t => ({ name: t.name, percent: pct(t.ms) }))
      usage[label] = { cpuMs, percent: pct(cpuMs), threads }
    }
    const childMs = reapedChildrenCpuMs() - this.childrenBefore
    const ours = Object.values(usage).reduce((n, u) => n + u.cpuMs, 0) + childMs
    const machine = machineCpuMs()
    const othersMs = Math.max(0, machine.busy - this.machineBefore.busy - ours)
    const stealMs = machine.steal - this.machineBefore.steal
    usage.others = { cpuMs: othersMs, percent: pct(othersMs), threads: [] }
    usage['hypervisor steal'] = { cpuMs: stealMs, percent: pct(stealMs), threads: [] }
    return { wallMs, usage, reapedChildren: { cpuMs: childMs, percent: pct(childMs), threads: [] } }
  }
}
