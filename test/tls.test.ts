// TLS_CERT_FILE + TLS_KEY_FILE: the node serves HTTPS and WSS on PORT with a certificate the test
// makes with openssl; plain HTTP is not answered there; a key that does not match stops the start.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import https from 'node:https'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
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

t.test('TLS on the Redis port', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counterd-tls-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const { cert, key } = selfSigned(dir, 'node')
  const ca = fs.readFileSync(cert)
  const node = await startNode(t, { env: { TLS_CERT_FILE: cert, TLS_KEY_FILE: key, RESP_PORT: '0' }, waitReady: false })
  for (let i = 0; i < 500; i++) {
    try { if ((await request(node.port, ca, 'GET', '/ready')).status === 200) break } catch {}
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  const cli = (...args: string[]): string => execFileSync('redis-cli', ['--tls', '--cacert', cert, '-h', '127.0.0.1', '-p', String(node.respPort), ...args], { encoding: 'utf8' }).trim()
  t.equal(cli('INCRBY', 'tls:r', '5'), '5', 'redis-cli --tls with the certificate trusted')
  t.equal(execFileSync('redis-cli', ['--tls', '--insecure', '-h', '127.0.0.1', '-p', String(node.respPort), 'GET', 'tls:r'], { encoding: 'utf8' }).trim(), '5', 'redis-cli --tls --insecure')

  // Node's TLS client, a pipeline of two commands.
  const socket = tls.connect({ host: '127.0.0.1', port: node.respPort, ca })
  t.teardown(() => socket.destroy())
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', () => resolve()); socket.once('error', reject) })
  let got = ''
  const replies = new Promise<string>((resolve) => socket.on('data', (d: Buffer) => { got += d.toString('latin1'); if (got.split('\r\n').length > 2) resolve(got) }))
  socket.write('*3\r\n$6\r\nINCRBY\r\n$5\r\ntls:r\r\n$1\r\n2\r\n*2\r\n$3\r\nGET\r\n$5\r\ntls:r\r\n')
  t.equal(await replies, ':7\r\n$1\r\n7\r\n')
  t.same(JSON.parse((await request(node.port, ca, 'GET', '/v1/counter/tls/r')).body).value, 7, 'HTTPS sees the same counter')

  // Plain RESP on the TLS port is not answered as RESP: the TLS layer drops it and nothing changes.
  const plain = net.connect({ host: '127.0.0.1', port: node.respPort })
  let plainReply = ''
  plain.on('data', (d: Buffer) => { plainReply += d.toString('latin1') })
  plain.on('error', () => {})
  await new Promise<void>((resolve) => { plain.once('connect', () => { plain.write('*2\r\n$4\r\nINCR\r\n$5\r\ntls:r\r\n') }); plain.once('close', () => resolve()) })
  t.notMatch(plainReply, /^:/, 'no RESP reply to plain text')
  t.equal(cli('GET', 'tls:r'), '7', 'the plain INCR changed nothing')
  const untrusted = spawnSync('redis-cli', ['--tls', '-h', '127.0.0.1', '-p', String(node.respPort), 'PING'], { encoding: 'utf8' })
  t.match(untrusted.stdout + untrusted.stderr, /certificate|SSL|TLS/i, 'a client that does not trust the certificate refuses it')
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
