// Peer links of a ring with CLUSTER_SECRET and TLS: three nodes whose links authenticate with the
// secret (over TLS, TLS_CERT_FILE/TLS_KEY_FILE) serve every key through every node; a raw client
// of a peer port — plain TCP, TLS without the handshake, or TLS with the wrong secret — is
// refused, logged, and what it sent changes nothing. The same unit sent after the right secret's
// handshake is applied, which shows the refused ones were real increments.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import t from 'tap'
import { fnv1a32, partitionOf } from '../src/core/keys'
import { ByteSink, OP_INCR } from '../src/core/op-codec'
import { authenticatePeer } from '../src/routing/peer-auth'
import { writeUnitHeader } from '../src/routing/ring-records'
import { startKafka } from './support/kafka'
import { queryValues, startNode, type NodeProcess } from './support/node-process'
import { sleep } from './support/process-control'
import { ringEnv, waitForRing, type ClusterView } from './support/ring'
import { startRedis } from './support/redis'

const SECRET = 'ring-secret-0123456789-abcdef'
const PARTITIONS = 64

/** A peer-link frame holding one unit: an increment of `key` by `by` (as a node's router would send). */
function unitFrame (key: string, by: number): Buffer {
  const sink = new ByteSink(256)
  const nOpsAt = writeUnitHeader(sink, 0, 1, 0, null)
  const opsAt = sink.len
  sink.op(OP_INCR, fnv1a32(key), key, by, null)
  sink.buf.writeUInt32LE(1, nOpsAt)
  sink.buf.writeUInt32LE(sink.len - opsAt, nOpsAt + 4)
  const frame = Buffer.alloc(4 + sink.len)
  frame.writeUInt32LE(sink.len, 0)
  sink.buf.copy(frame, 4, 0, sink.len)
  return frame
}

/** Resolves once the socket is closed (by the node). */
async function closed (socket: net.Socket): Promise<void> {
  if (socket.destroyed) return
  await new Promise<void>((resolve) => socket.once('close', () => resolve()))
}

t.test('a ring with CLUSTER_SECRET over TLS works; a peer without the secret is refused and changes nothing', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-ring-sec-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const cert = path.join(dir, 'node.crt')
  const key = path.join(dir, 'node.key')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })

  const [kafka, redis] = await Promise.all([startKafka(t), startRedis(t)])
  const { env } = ringEnv(kafka, redis, 'ring-sec')
  const secured = { ...env, CLUSTER_SECRET: SECRET, TLS_CERT_FILE: cert, TLS_KEY_FILE: key }
  const started = await Promise.all([0, 1, 2].map(async () => await startNode(t, { env: secured, waitReady: false })))
  // The nodes serve HTTPS with a self-signed certificate; this process's HTTP client accepts it
  // (set once the nodes are started, so they do not inherit it).
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'
  t.teardown(() => { delete process.env.NODE_TLS_REJECT_UNAUTHORIZED })
  const nodes: NodeProcess[] = started.map((n) => ({ ...n, base: n.base.replace('http://', 'https://') }))
  const view = await waitForRing(t, nodes)
  const metrics = await (await fetch(`${nodes[0].base}/metrics`)).text()
  t.match(metrics, /\ncounterd_peer_links_up 8\n/, 'every link of node 0 is authenticated and up')

  // Any node answers any key: the links carry units and replies.
  const keys = Array.from({ length: 60 }, (_, i) => `sec:k${i}`)
  const expected: Record<string, number> = {}
  await Promise.all(keys.map(async (k, i) => {
    const r = await fetch(`${nodes[i % 3].base}/v1/counter/sec/k${i}/increment`, { method: 'POST', body: JSON.stringify({ by: i + 1 }) })
    t.equal(r.status, 200, `increment of ${k} through node ${i % 3}`)
    await r.arrayBuffer()
    expected[k] = i + 1
  }))
  for (const n of nodes) t.same(await queryValues(n.base, keys), expected, `every counter through ${n.base}`)

  // A key that node 0's shard 0 owns, and that shard's peer port.
  const owned = view.members.find((m) => m.url === nodes[0].base) as ClusterView['members'][number]
  let i = 0
  while (!(owned.partitions.includes(partitionOf(`sec:raw${i}`, PARTITIONS)) && partitionOf(`sec:raw${i}`, PARTITIONS) % 2 === 0)) i++
  const target = `sec:raw${i}`
  const peerPorts = /"peerPorts":\[(\d+),(\d+)\]/.exec(nodes[0].output())
  t.ok(peerPorts, 'node 0 logged its peer ports')
  const port = Number(peerPorts?.[1])
  const valueOf = async (): Promise<number> => (await queryValues(nodes[1].base, [target]))[target]
  t.equal(await valueOf(), 0)

  const refusals = (): number => (nodes[0].output().match(/"msg":"peer link refused/g) ?? []).length
  const cases: Array<[string, () => Promise<net.Socket>]> = [
    ['plain TCP', async () => {
      const s = net.connect({ host: '127.0.0.1', port })
      s.on('error', () => {})
      s.once('connect', () => s.write(unitFrame(target, 1000)))
      return s
    }],
    ['TLS without the handshake', async () => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false })
      s.on('error', () => {})
      s.once('secureConnect', () => s.write(unitFrame(target, 1000)))
      return s
    }],
    ['TLS with the wrong secret', async () => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false })
      s.on('error', () => {})
      s.once('secureConnect', () => {
        authenticatePeer(s, 'not-the-ring-secret-000000', 'dial', (err) => {
          if (err === null) s.write(unitFrame(target, 1000))
        })
        s.write(unitFrame(target, 1000)) // even sent right behind the handshake: not a record
      })
      return s
    }]
  ]
  for (const [name, open] of cases) {
    const before = refusals()
    const socket = await open()
    await closed(socket)
    for (let k = 0; k < 2400 && refusals() === before; k++) await sleep(25) // the log line comes through the shard's logger
    t.equal(refusals(), before + 1, `${name}: refused and logged`)
    t.equal(await valueOf(), 0, `${name}: nothing applied`)
  }
  t.notMatch(nodes[0].output(), new RegExp(SECRET), 'the secret is never logged')

  // The control: the same frame after the right secret's handshake is applied.
  const good = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false })
  t.teardown(() => good.destroy())
  good.on('error', () => {})
  // The reply to the unit comes once it is durable; waited for only after the handshake's own bytes.
  const replied = await new Promise<Promise<void>>((resolve, reject) => good.once('secureConnect', () => {
    authenticatePeer(good, SECRET, 'dial', (err, rest) => {
      if (err !== null) { reject(new Error(err)); return }
      const reply = rest.length > 0 ? Promise.resolve() : new Promise<void>((resolve) => good.once('data', () => resolve()))
      good.write(unitFrame(target, 7))
      resolve(reply)
    })
  }))
  await replied
  t.equal(await valueOf(), 7, 'with the secret, the unit is applied')
})
