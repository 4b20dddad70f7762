// TLS_CERT_FILE + TLS_KEY_FILE: the node serves HTTPS and WSS on PORT with a certificate the test
// makes with openssl; plain HTTP is not answered there; a key that does not match stops the start.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import https from 'node:https'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import WebSocket from 'ws'
import { encodeBinaryFrame } from '../src/core/binary-frame'
import { MAIN, startNode } from './support/node-process'

function selfSigned (dir: string, name: string): { cert: string, key: string } {
  const cert = path.join(dir, `${name}.crt`)
  const key = path.join(dir, `${name}.key`)
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  return { cert, key }
}

async function request (port: number, ca: Buffer, method: string, p: string): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, method, path: p, ca, agent: false }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString('utf8') })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('HTTPS and WSS', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-tls-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const { cert, key } = selfSigned(dir, 'node')
  const ca = fs.readFileSync(cert)
  const node = await startNode(t, { env: { TLS_CERT_FILE: cert, TLS_KEY_FILE: key }, waitReady: false })
  for (let i = 0; i < 500; i++) {
    try { if ((await request(node.port, ca, 'GET', '/ready')).status === 200) break } catch {}
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  t.same(JSON.parse((await request(node.port, ca, 'POST', '/v1/counter/tls/1/increment')).body), { type: 'tls', id: '1', value: 1 })
  t.same(JSON.parse((await request(node.port, ca, 'GET', '/v1/counter/tls/1')).body), { type: 'tls', id: '1', value: 1 })
  await t.rejects(fetch(`http://127.0.0.1:${node.port}/v1/counter/tls/1`), 'plain HTTP gets no answer on the TLS port')

  const ws = new WebSocket(`wss://127.0.0.1:${node.port}/v1/stream?clientId=tls-1`, { ca })
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
  const ack = new Promise<Buffer>((resolve) => ws.once('message', (d: Buffer) => resolve(d)))
  ws.send(encodeBinaryFrame(5, [{ type: 'tls', id: '1', by: 4 }]))
  t.same([...(await ack)], [0x81, 5, 0, 0, 0], 'the frame is acked over WSS')
  ws.close()
  t.same(JSON.parse((await request(node.port, ca, 'GET', '/v1/counter/tls/1')).body).value, 5)

  const untrusted = new WebSocket(`wss://127.0.0.1:${node.port}/v1/stream`)
  const err = await new Promise<Error>((resolve) => untrusted.once('error', resolve))
  t.match(err.message, /self[- ]signed|certificate/i, 'a client that does not trust the certificate refuses it')
})

t.test('a certificate and a key that do not match stop the start with exit 2', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-tls-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const a = selfSigned(dir, 'a')
  const b = selfSigned(dir, 'b')
  const run = (env: Record<string, string>): { status: number | null, stderr: string } =>
    spawnSync(process.execPath, [MAIN], { env: { ...process.env, PORT: '0', DATA_DIR: path.join(dir, 'data'), ...env }, encoding: 'utf8', timeout: 30_000 })
  const mismatch = run({ TLS_CERT_FILE: a.cert, TLS_KEY_FILE: b.key })
  t.equal(mismatch.status, 2)
  t.match(mismatch.stderr, /cannot serve TLS/)
  const half = run({ TLS_CERT_FILE: a.cert })
  t.equal(half.status, 2)
  t.match(half.stderr, /TLS_CERT_FILE and TLS_KEY_FILE go together/)
})
