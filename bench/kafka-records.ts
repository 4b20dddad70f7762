// What a run left in a cluster-mode node's Kafka delta log: the records appended between two
// snapshots of the topic's end offsets, read back with `kcat` (librdkafka, outside the nodes) and
// decoded with the record codec. Gives the figures a capacity plan needs: records per second,
// bytes per record, counters and increments per record (one record = one group commit of one
// counter partition, docs/cluster-storage.md).
import { execFile } from 'node:child_process'
import { Kafka, logLevel } from 'kafkajs'
import { decodeRecord } from '../src/core/record-codec'

/** End offset (next offset to be written) of every partition of the topic. */
export type EndOffsets = Map<number, number>

export async function endOffsets (brokers: string[], topic: string): Promise<EndOffsets> {
  const kafka = new Kafka({ clientId: 'bench-log-reader', brokers, logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  try {
    const list = await admin.fetchTopicOffsets(topic)
    return new Map(list.map((p) => [p.partition, Number(p.high)]))
  } finally {
    await admin.disconnect()
  }
}

export interface LogRange {
  /** messages appended between the two snapshots */
  records: number
  /** of those, how many were read back (the mock's retention may have dropped the oldest) */
  read: number
  /** Σ of message value sizes read back (the record; Kafka's batch and message headers excluded) */
  valueBytes: number
  /** Σ of counters changed per record (nKeys) */
  keys: number
  /** Σ of every delta: the increments the records carry (all +1 in the suites) */
  increments: number
  /** Σ of dedup entries (stream seqs, Idempotency-Keys) */
  dedup: number
  /** largest value read */
  maxValueBytes: number
}

async function kcat (args: string[]): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    execFile('kcat', args, { encoding: 'buffer', maxBuffer: 1 << 30 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`kcat ${args.join(' ')}: ${err.message} ${stderr.toString('utf8').slice(-400)}`))
      else resolve(stdout)
    })
  })
}

/**
 * Parses `kcat -f '%o %S\n%s\n'` output (binary values) into the value buffers, in order.
 * Exported for the tests.
 */
export function parseKcatValues (raw: Buffer): Array<{ offset: number, value: Buffer }> {
  const out: Array<{ offset: number, value: Buffer }> = []
  let o = 0
  while (o < raw.length) {
    const nl = raw.indexOf(10, o)
    if (nl < 0) throw new Error(`kcat output ends inside a header at byte ${o}`)
    const m = /^(\d+) (-?\d+)$/.exec(raw.toString('latin1', o, nl))
    if (m === null) throw new Error(`unexpected kcat header at byte ${o}: ${JSON.stringify(raw.toString('latin1', o, Math.min(nl, o + 80)))}`)
    const size = Math.max(Number(m[2]), 0)
    o = nl + 1
    if (o + size > raw.length) throw new Error(`kcat output ends inside a value at byte ${o}`)
    out.push({ offset: Number(m[1]), value: raw.subarray(o, o + size) })
    o += size + 1
  }
  return out
}

/** Reads and decodes every record appended between `before` and `after`. */
export async function readLogRange (brokers: string[], topic: string, before: EndOffsets, after: EndOffsets): Promise<LogRange> {
  const r: LogRange = { records: 0, read: 0, valueBytes: 0, keys: 0, increments: 0, dedup: 0, maxValueBytes: 0 }
  for (const [p, end] of after) {
    const start = before.get(p) ?? 0
    const count = end - start
    if (count <= 0) continue
    r.records += count
    const raw = await kcat(['-C', '-b', brokers.join(','), '-t', topic, '-p', String(p), '-o', String(start), '-c', String(count), '-e', '-q', '-f', '%o %S\n%s\n'])
    for (const { offset, value } of parseKcatValues(raw)) {
      if (offset < start || offset >= end) continue
      const rec = decodeRecord(value)
      r.read++
      r.valueBytes += value.length
      r.maxValueBytes = Math.max(r.maxValueBytes, value.length)
      r.keys += rec.keys.length
      r.dedup += rec.dedup.length
      for (const d of rec.deltas) r.increments += d
    }
  }
  return r
}
