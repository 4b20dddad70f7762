// How long this machine's disk takes to make a small append durable (write + fdatasync), the
// floor under every ack=durable latency. Measured in the directory the benchmark's servers use.
import fs from 'node:fs'
import path from 'node:path'
import { median } from './stats'

export interface FsyncProbe {
  dir: string
  samples: number
  p50Ms: number
  maxMs: number
}

export function probeFsync (dir: string, samples = 50): FsyncProbe {
  const file = path.join(dir, 'fsync-probe')
  const fd = fs.openSync(file, 'w')
  const block = Buffer.alloc(4096, 7)
  const times: number[] = []
  try {
    for (let i = 0; i < samples; i++) {
      const t0 = process.hrtime.bigint()
      fs.writeSync(fd, block)
      fs.fdatasyncSync(fd)
      times.push(Number(process.hrtime.bigint() - t0) / 1e6)
    }
  } finally {
    fs.closeSync(fd)
    fs.rmSync(file, { force: true })
  }
  return { dir, samples, p50Ms: Math.round(median(times) * 1000) / 1000, maxMs: Math.round(Math.max(...times) * 1000) / 1000 }
}
