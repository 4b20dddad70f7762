// Many HTTP clients and WebSocket streams hammer overlapping keys; every final value must equal
// the sum of the acknowledged ops (all ops are acknowledged here: nothing fails).
import t from 'tap'
import { queryValues, startNode } from './support/node-process'
import { Tally, runLoad } from './support/load'

for (const ackMode of ['durable', 'applied']) {
  t.test(`concurrent clients, ack=${ackMode}`, async (t) => {
    const node = await startNode(t, { env: { ACK_MODE: ackMode } })
    const tally = new Tally()
    const stopAt = Date.now() + 3000
    await runLoad({ base: node.base, keys: 40, httpClients: 24, streams: 6, opsPerFrame: 50, until: () => Date.now() > stopAt, seed: 7, tally, clientIdPrefix: `conc-${ackMode}` })
    t.ok(tally.ackedOps > 1000, `enough load to mean something (${tally.ackedOps} ops acked)`)
    t.same(tally.acked, tally.sent, 'every op sent was acknowledged')
    const values = await queryValues(node.base, tally.keys())
    for (const key of tally.keys()) t.equal(values[key], tally.acked.get(key), `${key} equals the sum of its acknowledged ops`)
  })
}
