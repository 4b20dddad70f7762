// The shared-memory ring between shard threads (src/routing/spsc-ring.ts) and the outbox that
// feeds it (src/routing/outbox.ts): order and content across wrap-arounds, a full ring, chunked
// records, the size limit, and a real producer thread at random speeds against a consumer that
// sleeps on the doorbell (no wake-up may be lost: a lost one hangs the test).
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import t from 'tap'
import { Outbox } from '../src/routing/outbox'
import { Doorbell, SpscRing } from '../src/routing/spsc-ring'
import { messageFor } from './support/ring-producer'

function drainAll (ring: SpscRing): Array<{ bytes: Buffer, more: boolean }> {
  const out: Array<{ bytes: Buffer, more: boolean }> = []
  ring.drain((data, off, len, more) => out.push({ bytes: Buffer.from(data.subarray(off, off + len)), more }))
  return out
}

t.test('capacity must be a power of two from 4 KiB', async (t) => {
  for (const bad of [1000, 4095, 6000, 2 ** 31]) t.throws(() => SpscRing.allocate(bad), RangeError, String(bad))
  const ring = new SpscRing(SpscRing.allocate(4096))
  t.equal(ring.capacity, 4096)
  t.equal(ring.maxMessage, 1020)
  t.throws(() => ring.push(Buffer.alloc(1021), 0, 1021), /over the ring's limit/, 'a message over capacity/4 is refused loudly')
})

t.test('messages keep order and content across many wrap-arounds', async (t) => {
  const ring = new SpscRing(SpscRing.allocate(4096))
  let sent = 0
  let received = 0
  let wrong = 0
  // Sizes not aligned to 4 and not dividing the capacity, so wraps land everywhere.
  for (let round = 0; round < 2000; round++) {
    const n = 1 + (round % 5)
    for (let k = 0; k < n; k++) {
      const m = messageFor(sent, 300)
      if (!ring.push(m, 0, m.length)) break
      sent++
    }
    for (const { bytes } of drainAll(ring)) {
      if (!bytes.equals(messageFor(received, 300))) wrong++
      received++
    }
  }
  t.ok(sent > 5000, `${sent} messages went through a 4 KiB ring`)
  t.equal(received, sent, 'every message came out')
  t.equal(wrong, 0, 'each one intact and in order')
  t.ok(ring.isEmpty())
})

t.test('a full ring refuses a push without writing, and takes it once drained', async (t) => {
  const ring = new SpscRing(SpscRing.allocate(4096))
  const m = Buffer.alloc(1000, 7)
  let pushed = 0
  while (ring.push(m, 0, m.length)) pushed++
  t.equal(pushed, 4, 'four 1000-byte messages (1004 bytes each with their word) fill 4 KiB')
  t.ok(ring.free() < 1004)
  t.equal(drainAll(ring).length, 4, 'the refused push left nothing behind')
  t.ok(ring.push(m, 0, m.length), 'room again after a drain')
})

t.test('the MORE flag travels with a message', async (t) => {
  const ring = new SpscRing(SpscRing.allocate(4096))
  ring.push(Buffer.from('ab'), 0, 2, true)
  ring.push(Buffer.from('cd'), 0, 2, false)
  t.same(drainAll(ring).map((m) => [m.bytes.toString(), m.more]), [['ab', true], ['cd', false]])
})

t.test('random sizes and random push/drain interleavings keep every byte (property)', async (t) => {
  let seed = 12345
  const rand = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 0x100000000 }
  for (let trial = 0; trial < 20; trial++) {
    const ring = new SpscRing(SpscRing.allocate(4096 << (trial % 3)))
    const queue: Buffer[] = []
    let bad = 0
    let total = 0
    for (let step = 0; step < 3000; step++) {
      if (rand() < 0.6) {
        const len = Math.floor(rand() * ring.maxMessage)
        const m = Buffer.alloc(len)
        for (let k = 0; k < len; k++) m[k] = Math.floor(rand() * 256)
        if (ring.push(m, 0, len)) queue.push(m)
      } else {
        for (const { bytes } of drainAll(ring)) {
          if (!bytes.equals(queue.shift() as Buffer)) bad++
          total++
        }
      }
    }
    for (const { bytes } of drainAll(ring)) { if (!bytes.equals(queue.shift() as Buffer)) bad++; total++ }
    if (bad !== 0 || queue.length !== 0) t.fail(`trial ${trial}: ${bad} corrupted, ${queue.length} lost of ${total}`)
  }
  t.pass('20 trials of 3000 random steps')
})

t.test('outbox: records batched into messages, a record over the limit chunked and reassembled', async (t) => {
  const ring = new SpscRing(SpscRing.allocate(4096))
  const bell = new Doorbell(Doorbell.allocate())
  const box = new Outbox(ring, bell, 8192)
  const records = [Buffer.alloc(100, 1), Buffer.alloc(200, 2), Buffer.alloc(2500, 3), Buffer.alloc(2500, 5), Buffer.alloc(10, 4)]
  for (const r of records) { box.sink.bytes(r, 0, r.length); box.endRecord() }
  const got: Buffer[] = []
  let partial: Buffer[] = []
  let messages = 0
  const consume = (): void => {
    ring.drain((data, off, len, more) => {
      messages++
      partial.push(Buffer.from(data.subarray(off, off + len)))
      if (!more) { got.push(Buffer.concat(partial)); partial = [] }
    })
  }
  let rounds = 0
  while (!box.flush()) { consume(); rounds++ }
  consume()
  t.ok(rounds > 0, 'the ring filled up on the way: the outbox kept the rest for the next flush')
  t.same(Buffer.concat(got), Buffer.concat(records), 'the consumer saw every byte, in order')
  t.ok(messages >= 4, `${messages} messages: the 2500-byte record records went as chunks of at most ${ring.maxMessage}`)
  t.equal(box.staged, 0)
  box.sink.bytes(Buffer.alloc(9000), 0, 9000)
  t.ok(box.admits(0), 'a record of any size is admitted into an empty outbox')
  box.endRecord()
  const start = box.sink.len
  box.sink.bytes(Buffer.alloc(10), 0, 10)
  t.notOk(box.admits(start), 'past its limit it admits nothing more')
  box.truncate(start)
  t.equal(box.staged, 9000, 'a refused record is taken back out')
})

t.test('a producer thread at random speeds, a consumer sleeping on the doorbell: nothing lost, nothing stalls', async (t) => {
  const ringMemory = SpscRing.allocate(16384)
  const bellMemory = Doorbell.allocate()
  const ring = new SpscRing(ringMemory)
  const bell = new Doorbell(bellMemory)
  const count = 200_000
  const maxSize = 600
  const worker = new Worker(path.join(__dirname, 'support', 'ring-producer.js'), { workerData: { ring: ringMemory, bell: bellMemory, count, seed: 99, maxSize } })
  t.teardown(async () => { await worker.terminate() })
  let received = 0
  let wrong = 0
  let sleeps = 0
  // The consumer must stay alive while it sleeps: a pending wait does not hold the event loop.
  const keepAlive = setInterval(() => {}, 1000)
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      do {
        ring.drain((data, off, len) => {
          if (!data.subarray(off, off + len).equals(messageFor(received, maxSize))) wrong++
          received++
        })
        if (received === count) { resolve(); return }
        // Now and then the consumer is slow too.
        if (received % 7919 === 0) { const until = Date.now() + 2; while (Date.now() < until) { /* busy */ } }
      } while (!bell.sleep(() => !ring.isEmpty(), () => { sleeps++; pump() }))
    }
    pump()
  })
  clearInterval(keepAlive)
  t.equal(received, count, 'every message arrived')
  t.equal(wrong, 0, 'in order and intact')
  t.ok(sleeps > 0, `the consumer slept and was woken ${sleeps} times`)
})
