// A producer thread for the ring tests: pushes `count` messages of seeded random sizes into a
// ring, each filled with bytes derived from its index, at random speeds (bursts, busy pauses,
// event-loop yields), ringing the consumer's doorbell after each push. When the ring is full it
// waits a little and tries again. Posts 'done' when everything is in.
import { parentPort, workerData } from 'node:worker_threads'
import { Doorbell, SpscRing } from '../../src/routing/spsc-ring'

interface ProducerData { ring: SharedArrayBuffer, bell: SharedArrayBuffer, count: number, seed: number, maxSize: number }

let state = 1
function rand (): number { // xorshift32
  state ^= state << 13; state >>>= 0
  state ^= state >>> 17
  state ^= state << 5; state >>>= 0
  return state / 0x100000000
}

/** Message i: its size and content are a function of i only, so the consumer can check it. */
export function messageFor (i: number, maxSize: number): Buffer {
  const size = 4 + ((i * 2654435761) >>> 0) % (maxSize - 4)
  const b = Buffer.allocUnsafe(size)
  b.writeUInt32LE(i, 0)
  for (let k = 4; k < size; k++) b[k] = (i + k) & 0xff
  return b
}

async function run (d: ProducerData): Promise<void> {
  const ring = new SpscRing(d.ring)
  const bell = new Doorbell(d.bell)
  state = d.seed >>> 0
  let i = 0
  while (i < d.count) {
    const burst = 1 + Math.floor(rand() * 64)
    for (let b = 0; b < burst && i < d.count; b++) {
      const m = messageFor(i, d.maxSize)
      while (!ring.push(m, 0, m.length)) {
        bell.ring()
        await new Promise((resolve) => setTimeout(resolve, 0))
      }
      bell.ring()
      i++
    }
    const r = rand()
    if (r < 0.3) await new Promise((resolve) => setImmediate(resolve))
    else if (r < 0.4) { const until = Date.now() + 1; while (Date.now() < until) { /* busy */ } }
  }
  parentPort?.postMessage('done')
}

if (parentPort !== null && workerData !== null) void run(workerData as ProducerData)
