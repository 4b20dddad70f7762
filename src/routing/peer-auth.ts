// Authentication of a peer link (CLUSTER_SECRET): before any record, both ends prove they know the
// ring's secret without sending it. Each side sends `"CDP1" | 32-byte random nonce`, then, on the
// other's nonce, `HMAC-SHA256(secret, role | theirNonce | myNonce | binding)` where role is the
// sender's side ("dial" or "accept": a reflected proof does not pass) and binding is the TLS
// session's exported keying material when the link is TLS (so a proof relayed through a
// man-in-the-middle's own TLS session does not pass), else empty. Each checks the other's proof
// in constant time. A peer that fails, or says nothing within the timeout, is disconnected.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type net from 'node:net'
import type tls from 'node:tls'

const MAGIC = Buffer.from('CDP1', 'latin1')
const HELLO_BYTES = MAGIC.length + 32
const PROOF_BYTES = 32
export const HANDSHAKE_TIMEOUT_MS = 10_000

export type PeerRole = 'dial' | 'accept'

function proof (secret: string, role: PeerRole, theirs: Buffer, mine: Buffer, binding: Buffer): Buffer {
  return createHmac('sha256', secret).update(role).update(theirs).update(mine).update(binding).digest()
}

/** The TLS session's keying material both ends share (empty for plain TCP). */
function bindingOf (socket: net.Socket): Buffer {
  const s = socket as tls.TLSSocket
  return typeof s.exportKeyingMaterial === 'function' && s.encrypted === true
    ? s.exportKeyingMaterial(32, 'EXPORTER-counterd-peer-link', Buffer.alloc(0))
    : Buffer.alloc(0)
}

/**
 * Runs the handshake on a connected socket; `done` is called once, synchronously from the data
 * event that completes it (so the caller's own 'data' listener misses nothing), with the bytes
 * that came after the proof, or with the reason it failed (the socket is then destroyed).
 */
export function authenticatePeer (socket: net.Socket, secret: string, role: PeerRole, done: (err: string | null, rest: Buffer) => void): void {
  const mine = randomBytes(32)
  let got: Buffer = Buffer.alloc(0)
  let theirs: Buffer | null = null
  let finished = false
  const finish = (err: string | null, rest: Buffer): void => {
    if (finished) return
    finished = true
    clearTimeout(timer)
    socket.off('data', onData)
    socket.off('close', onClose)
    if (err !== null) socket.destroy()
    done(err, rest)
  }
  const onClose = (): void => finish('the peer closed the connection during the handshake', Buffer.alloc(0))
  const onData = (chunk: Buffer): void => {
    got = got.length === 0 ? chunk : Buffer.concat([got, chunk])
    if (theirs === null) {
      if (got.length < MAGIC.length && MAGIC.subarray(0, got.length).equals(got)) return
      if (!got.subarray(0, MAGIC.length).equals(MAGIC)) { finish('the peer did not start a counterd peer-link handshake (no CLUSTER_SECRET, or not a node)', got); return }
      if (got.length < HELLO_BYTES) return
      theirs = Buffer.from(got.subarray(MAGIC.length, HELLO_BYTES))
      got = got.subarray(HELLO_BYTES)
      socket.write(proof(secret, role, theirs, mine, bindingOf(socket)))
    }
    if (got.length < PROOF_BYTES) return
    const expected = proof(secret, role === 'dial' ? 'accept' : 'dial', mine, theirs as Buffer, bindingOf(socket))
    if (!timingSafeEqual(expected, got.subarray(0, PROOF_BYTES))) { finish('the peer\'s proof of CLUSTER_SECRET is wrong', got); return }
    finish(null, Buffer.from(got.subarray(PROOF_BYTES)))
  }
  const timer = setTimeout(() => finish(`no handshake within ${HANDSHAKE_TIMEOUT_MS} ms`, Buffer.alloc(0)), HANDSHAKE_TIMEOUT_MS)
  timer.unref()
  socket.on('data', onData)
  socket.on('close', onClose)
  socket.write(Buffer.concat([MAGIC, mine]))
}
