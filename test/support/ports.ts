// Servers that cannot bind port 0 themselves (redis-server, clickhouse-server) are started on a
// port that was free a moment ago; launchers retry with a new port if it was taken meanwhile.
export { freePort } from '../../src/node/free-port'
