import net from 'node:net'

/**
 * A port that was free a moment ago. Servers that cannot bind port 0 themselves (redis-server,
 * clickhouse-server) are started on it; launchers retry with a new port if it was taken meanwhile.
 */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(port))
    })
  })
}
