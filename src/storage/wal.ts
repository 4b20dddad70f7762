// Embedded delta log: append-only segment files of CRC-framed records (record-codec.ts).
// One WAL per shard rather than per partition, so one group commit is one synchronous write
// (O_DSYNC) however many partitions it touched; each record still names its partition and seq,
// so the log is per-partition ordered. Segment names sort in write order:
//   h{shard}of{shards}-e{epoch}-{n}.wal   (n zero-padded)
// A segment of shard h of S holds only partitions p with p mod S = h, so recovery skips the
// segments of other shards without reading them (names without "of{S}", from older versions,
// are read by every shard).
import fs from 'node:fs'
import path from 'node:path'
import { FRAME_HEADER, decodeFrames, encodeFrames } from '../core/record-codec'
import type { DeltaRecord } from '../core/records'
import type { DeltaLog } from './types'

const SEGMENT_RE = /^h(\d+)(?:of(\d+))?-e(\d+)-(\d+)\.wal$/
const REPLAY_CHUNK = 4 * 1024 * 1024

export interface SegmentName { file: string, host: number, shards: number, epoch: number, n: number } // shards 0: unknown

export function listSegments (dir: string): SegmentName[] {
  if (!fs.existsSync(dir)) return []
  const out: SegmentName[] = []
  for (const file of fs.readdirSync(dir)) {
    const m = SEGMENT_RE.exec(file)
    if (m !== null) out.push({ file, host: Number(m[1]), shards: Number(m[2] ?? 0), epoch: Number(m[3]), n: Number(m[4]) })
  }
  // Within an epoch a partition lives in one host's segments, so (epoch, host, n) is log order per partition.
  return out.sort((a, b) => a.epoch - b.epoch || a.host - b.host || a.n - b.n)
}

interface Segment {
  name: string
  fd: number
  bytes: number
  maxSeq: Map<number, number> // partition → highest seq written (or being written) here
  appending: number // appends in flight: the file stays open and is never deleted meanwhile
  retired: boolean // no longer written to: closed once the last append in flight is done
}

export interface WalOptions {
  dir: string
  hostIndex: number // the shard
  shards: number
  epoch: number
  /** a new segment starts once the current one holds this many bytes */
  segmentBytes: number
  onTornTail?: (file: string, goodBytes: number, totalBytes: number) => void
}

export class WalLog implements DeltaLog {
  private current: Segment
  private readonly closed: Segment[] = []
  private nextN = 1

  constructor (private readonly opts: WalOptions) {
    fs.mkdirSync(opts.dir, { recursive: true })
    this.current = this.openSegment()
  }

  private openSegment (): Segment {
    const name = `h${this.opts.hostIndex}of${this.opts.shards}-e${this.opts.epoch}-${String(this.nextN++).padStart(8, '0')}.wal`
    // O_DSYNC: a write returns once its data is on stable storage, so one append is one write
    // (one trip to the thread pool) instead of a write and an fdatasync (two trips).
    const fd = fs.openSync(path.join(this.opts.dir, name), fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_DSYNC)
    // The new file's directory entry must be durable too, or a crash could lose a whole segment.
    const dir = fs.openSync(this.opts.dir, 'r')
    try { fs.fsyncSync(dir) } finally { fs.closeSync(dir) }
    return { name, fd, bytes: 0, maxSeq: new Map(), appending: 0, retired: false }
  }

  /** Later appends go to a new segment; the old one closes when its appends in flight are done. */
  private rotate (): void {
    const old = this.current
    this.current = this.openSegment()
    this.retire(old)
    this.closed.push(old)
  }

  private retire (seg: Segment): void {
    seg.retired = true
    if (seg.appending === 0 && seg.fd >= 0) {
      fs.closeSync(seg.fd)
      seg.fd = -1
    }
  }

  async append (records: DeltaRecord[]): Promise<void> {
    if (records.length === 0) return
    if (this.current.bytes >= this.opts.segmentBytes) this.rotate()
    const seg = this.current
    const buf = encodeFrames(records)
    // Noted before writing: a checkpoint that completes meanwhile must not think this segment covered.
    for (const r of records) {
      if ((seg.maxSeq.get(r.partition) ?? 0) < r.seq) seg.maxSeq.set(r.partition, r.seq)
    }
    seg.appending++
    try {
      let off = 0
      while (off < buf.length) off += await write(seg.fd, buf, off)
      seg.bytes += buf.length
    } catch (err) {
      // A failed write may have left a partial frame; nothing may follow it in this file, or replay
      // would stop there. Retries go to a fresh segment.
      if (this.current === seg) this.rotate()
      throw err
    } finally {
      seg.appending--
      if (seg.retired) this.retire(seg)
    }
  }

  async replay (partitions: readonly number[], onRecord: (r: DeltaRecord) => void): Promise<void> {
    const wanted = new Set(partitions)
    for (const seg of listSegments(this.opts.dir)) {
      if (seg.host === this.opts.hostIndex && seg.epoch === this.opts.epoch) continue // our own, new
      if (seg.shards > 0 && !partitions.some((p) => p % seg.shards === seg.host)) continue // another shard's
      await this.replaySegment(seg.file, (r) => { if (wanted.has(r.partition)) onRecord(r) })
    }
  }

  /**
   * Reads a segment in chunks through one reused buffer (a chunk is checked and replayed while it
   * is still in cache, and no buffer the size of the segment is made), handing every whole frame
   * to onRecord; a record is a view of the buffer, valid only during the call. Stops at the first
   * frame that fails its CRC or is cut short by the end of the file (a torn tail).
   */
  private async replaySegment (file: string, onRecord: (r: DeltaRecord) => void): Promise<void> {
    const fh = await fs.promises.open(path.join(this.opts.dir, file), 'r')
    try {
      let buf = Buffer.allocUnsafe(REPLAY_CHUNK)
      let have = 0 // bytes in buf not yet decoded
      let offset = 0 // file offset of buf[0]
      for (;;) {
        const { bytesRead } = await fh.read(buf, have, buf.length - have, offset + have)
        const end = have + bytesRead
        const good = decodeFrames(buf.subarray(0, end), onRecord)
        const rest = end - good
        if (rest >= FRAME_HEADER && good + FRAME_HEADER + buf.readUInt32LE(good) <= end) {
          // A whole frame is there and did not decode: damaged. Nothing after it is trusted.
          this.opts.onTornTail?.(file, offset + good, (await fh.stat()).size)
          return
        }
        if (bytesRead === 0) {
          if (rest > 0) this.opts.onTornTail?.(file, offset + good, offset + end)
          return
        }
        // Keep the partial frame at the front; grow the buffer for a frame larger than it.
        buf.copy(buf, 0, good, end)
        offset += good
        have = rest
        const need = rest >= FRAME_HEADER ? FRAME_HEADER + buf.readUInt32LE(0) : 0
        if (need > buf.length) {
          const bigger = Buffer.allocUnsafe(need)
          buf.copy(bigger, 0, 0, have)
          buf = bigger
        }
      }
    } finally {
      await fh.close()
    }
  }

  /** Closed segments whose every record is at or below the checkpointed seqs are deleted. */
  async checkpointed (upTo: ReadonlyMap<number, number>): Promise<void> {
    if (this.current.bytes > 0) this.rotate()
    for (let i = this.closed.length - 1; i >= 0; i--) {
      const seg = this.closed[i]
      let covered = seg.appending === 0
      for (const [p, seq] of seg.maxSeq) {
        if ((upTo.get(p) ?? 0) < seq) { covered = false; break }
      }
      if (covered) {
        await fs.promises.rm(path.join(this.opts.dir, seg.name), { force: true })
        this.closed.splice(i, 1)
      }
    }
  }

  async close (): Promise<void> {
    this.retire(this.current)
  }
}

function write (fd: number, buf: Buffer, off: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.write(fd, buf, off, buf.length - off, null, (err, n) => { if (err !== null) reject(err); else resolve(n) })
  })
}
