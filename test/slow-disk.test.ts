// A slow disk: DATA_DIR on an ext4 file system on a loop device whose writes the kernel throttles
// to 20 per second (blkio cgroup, the node's process in it), so every durable WAL write waits tens
// of milliseconds. Under HTTP and stream load the node keeps acknowledging, group commits grow
// (many ops share one slow write), reads are answered, and a kill -9 under that load loses nothing
// acknowledged. Needs root (loop devices, mount, cgroups), as CI runs.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { Tally, runLoad } from './support/load'
import { queryValues, startNode } from './support/node-process'
import { sleep } from './support/process-control'

const WRITES_PER_SECOND = 20

/** Sum and count of a histogram in a /metrics text. */
function histogram (text: string, name: string): { sum: number, count: number } {
  const sum = [...text.matchAll(new RegExp(`^${name}_sum(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0)
  const count = [...text.matchAll(new RegExp(`^${name}_count(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0)
  return { sum, count }
}

t.test('a slow disk: acks go on in larger group commits, reads are answered, kill -9 loses nothing acknowledged', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-slow-'))
  const image = path.join(dir, 'disk.img')
  const mnt = path.join(dir, 'mnt')
  fs.mkdirSync(mnt)
  execFileSync('truncate', ['-s', '256M', image])
  const loop = execFileSync('losetup', ['-f', '--show', image]).toString().trim()
  const cgroup = `/sys/fs/cgroup/blkio/counterd-slow-${process.pid}`
  t.teardown(() => {
    try { execFileSync('umount', ['-l', mnt]) } catch {}
    try { execFileSync('losetup', ['-d', loop]) } catch {}
    try { fs.rmdirSync(cgroup) } catch {}
    fs.rmSync(dir, { recursive: true, force: true })
  })
  execFileSync('mkfs.ext4', ['-q', loop])
  execFileSync('mount', [loop, mnt])
  const st = fs.statSync(loop)
  const device = `${Math.floor(st.rdev / 256)}:${st.rdev % 256}`
  fs.mkdirSync(cgroup)
  fs.writeFileSync(path.join(cgroup, 'blkio.throttle.write_iops_device'), `${device} ${WRITES_PER_SECOND}`)

  const dataDir = path.join(mnt, 'data')
  const env = { WORKERS: '2', CHECKPOINT_INTERVAL_MS: '1000' }
  let node = await startNode(t, { dataDir, env })
  fs.writeFileSync(path.join(cgroup, 'cgroup.procs'), String(node.proc.pid)) // every thread of it
  const before = histogram(await (await fetch(`${node.base}/metrics`)).text(), 'counterd_commit_ops')

  const tally = new Tally()
  let stop = false
  const load = runLoad({ base: node.base, keys: 40, httpClients: 8, streams: 2, opsPerFrame: 20, until: () => stop, seed: 11, tally, clientIdPrefix: 'slow' })
  while (tally.ackedOps < 400) await sleep(50)
  const read = await fetch(`${node.base}/v1/counter/post/k1`)
  t.equal(read.status, 200, 'a read is answered while writes wait for the disk')
  await read.arrayBuffer()
  const after = histogram(await (await fetch(`${node.base}/metrics`)).text(), 'counterd_commit_ops')
  const perCommit = (after.sum - before.sum) / (after.count - before.count)
  t.ok(perCommit > 2, `group commits grow on the slow disk: ${perCommit.toFixed(1)} ops per commit`)
  const throttled = new RegExp(`^${device} Write (\\d+)$`, 'm').exec(fs.readFileSync(path.join(cgroup, 'blkio.throttle.io_serviced'), 'utf8'))
  t.ok(Number(throttled?.[1] ?? 0) > 0, `the node's writes went through the throttled device (${throttled?.[1] ?? 0} so far)`)

  // kill -9 under that load, restart on the same (still slow) disk.
  await node.kill9()
  stop = true
  await load
  node = await node.restart()
  fs.writeFileSync(path.join(cgroup, 'cgroup.procs'), String(node.proc.pid))
  const keys = tally.keys()
  const values = await queryValues(node.base, keys)
  const wrong = keys.filter((k) => values[k] < (tally.acked.get(k) ?? 0) || values[k] > (tally.sent.get(k) ?? 0))
  t.same(wrong, [], `after kill -9 every counter lies between what was acknowledged and what was sent (${tally.ackedOps} ops acknowledged over ${keys.length} counters)`)
})
