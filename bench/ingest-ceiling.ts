// The ingest suite's peer: a bare kafkajs consumer of the same topic, as light as consuming can be
// in Node.js on this machine. It decodes every event (JSON.parse, the action checked) and counts it
// in a Map, and commits its offsets after each batch like counterd does; it keeps nothing durable,
// remembers no event_id and applies nothing through shards. Counts are served over HTTP the way
// counterd answers them (POST /v1/counters/query), plus GET /events (events counted).
//   env: BROKERS (comma-separated), TOPIC, GROUP, PORT (0 = any)
import http from 'node:http'
import { Kafka, logLevel } from 'kafkajs'

const brokers = (process.env.BROKERS ?? '').split(',')
const topic = process.env.TOPIC ?? ''
const counts = new Map<string, number>()
let events = 0
let assigned = 0

const kafka = new Kafka({ clientId: 'ingest-ceiling', brokers, logLevel: logLevel.NOTHING })
const consumer = kafka.consumer({ groupId: process.env.GROUP ?? 'ingest-ceiling', maxWaitTimeInMs: 250, sessionTimeout: 10_000, heartbeatInterval: 3000 })

async function main (): Promise<void> {
  consumer.on(consumer.events.GROUP_JOIN, (e) => { assigned = (e.payload.memberAssignment[topic] ?? []).length })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: true,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 8,
    eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
      for (const m of batch.messages) {
        if (m.value === null) continue
        const e = JSON.parse(m.value.toString('utf8')) as { action: string, item_type: unknown, item_id: unknown, by?: number }
        const by = e.action === 'increment' ? (e.by ?? 0) : e.action === 'like' || e.action === 'view' ? 1 : e.action === 'unlike' ? -1 : 0
        const key = `${String(e.item_type)}:${String(e.item_id)}`
        counts.set(key, (counts.get(key) ?? 0) + by)
        events++
      }
      if (batch.messages.length > 0) resolveOffset(batch.messages[batch.messages.length - 1].offset)
      await heartbeat()
    }
  })
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString('utf8') })
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      if (req.url === '/events') { res.end(JSON.stringify({ events, assigned })); return }
      if (req.url === '/v1/counters/query' && req.method === 'POST') {
        const keys = (JSON.parse(body) as { keys: string[] }).keys
        res.end(JSON.stringify({ values: Object.fromEntries(keys.map((k) => [k, counts.get(k) ?? 0])) }))
        return
      }
      res.statusCode = 404
      res.end('{}')
    })
  })
  server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
    const addr = server.address()
    process.stdout.write(JSON.stringify({ msg: 'listening', port: typeof addr === 'object' && addr !== null ? addr.port : 0 }) + '\n')
  })
  const stop = (): void => { consumer.disconnect().finally(() => process.exit(0)) }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

main().catch((err: unknown) => {
  process.stderr.write(`ingest ceiling failed: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
