// Starts counterd for a suite: its own data directory, a free port, the given settings, and
// (with --profile) CPU profiles of every thread in a per-suite directory.
import fs from 'node:fs'
import path from 'node:path'
import { startNodeService, type NodeService } from './node-service'
import type { BenchContext } from './suite'

export interface CounterdOptions {
  label: string
  env?: Record<string, string>
  /** reuse a data directory (recovery); a fresh one when omitted */
  dataDir?: string
  /** profile this instance even when the run is not profiling (or never, with false) */
  profile?: boolean
  timeoutMs?: number
  pollMs?: number
}

export interface Counterd extends NodeService {
  dataDir: string
  profileDir?: string
}

let uwsBinding: string | undefined

/** Which uWS binding counterd reported loading (its "starting" log line), once one has started. */
export function observedUwsBinding (): string | undefined {
  return uwsBinding
}

export function assertCounterdBuilt (ctx: BenchContext): void {
  if (!fs.existsSync(ctx.counterdScript)) {
    throw new Error(`${ctx.counterdScript} does not exist: build the server first (npx tsc -p .)`)
  }
}

export async function startCounterd (ctx: BenchContext, o: CounterdOptions): Promise<Counterd> {
  assertCounterdBuilt(ctx)
  const dataDir = o.dataDir ?? ctx.tempDir(`counterd-${o.label}`)
  let profileDir: string | undefined
  if (o.profile !== false && ctx.profileDir !== undefined) {
    profileDir = path.join(ctx.profileDir, o.label)
    fs.mkdirSync(profileDir, { recursive: true })
  }
  const service = await startNodeService({
    name: `counterd (${o.label})`,
    script: ctx.counterdScript,
    // Suite settings first, then --env overrides (experiments such as WORKERS=1).
    env: { HOST: '127.0.0.1', PORT: '0', DATA_DIR: dataDir, ...o.env, ...ctx.counterdEnv },
    ...(profileDir === undefined ? {} : { profileDir }),
    waitReady: true,
    timeoutMs: o.timeoutMs ?? 120_000,
    ...(o.pollMs === undefined ? {} : { pollMs: o.pollMs })
  })
  uwsBinding = /"uws":"([^"]+)"/.exec(service.tail())?.[1] ?? uwsBinding
  return { ...service, dataDir, ...(profileDir === undefined ? {} : { profileDir }) }
}

/** Stops counterd and reports a non-zero exit (SIGTERM must drain and exit 0). */
export async function stopCounterd (c: Counterd, notes: string[]): Promise<void> {
  const code = await c.stop()
  if (code !== 0) notes.push(`${c.name} exited with ${String(code)} on SIGTERM (expected 0); last output: ${c.tail().slice(-500)}`)
}
