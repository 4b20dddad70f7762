// A port nothing listens on now: the kernel's pick for port 0, released at once. For servers that
// cannot share an ephemeral port (uWS keeps port 0 exclusive, so shards sharing one port need a
// real number first) or cannot bind port 0 themselves; a caller retries if it was taken meanwhile.
import net from 'node:net'

export async function freePort (host = '127.0.0.1'): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}
