// Reads counter values back after a run, for the exactness check: counterd through
// `POST /v1/counters/query` (1000 keys a request), Redis through one server-side SCAN script.
import http from 'node:http'
import Redis from 'ioredis'

const QUERY_BATCH = 1000
const PARALLEL = 4

export async function postJson (agent: http.Agent, port: number, path: string, body: unknown): Promise<{ status: number, json: unknown }> {
  const text = JSON.stringify(body)
  return await new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path,
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }
    }, (res) => {
      let data = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { data += c })
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(data) })
        } catch {
          reject(new Error(`${path} answered ${res.statusCode ?? 0} with non-JSON: ${data.slice(0, 200)}`))
        }
      })
    })
    req.on('error', reject)
    req.end(text)
  })
}

/** Values of `${type}:${idOf(i)}` for i in 0..n-1, in order. */
export async function readCounterd (port: number, type: string, n: number, idOf: (i: number) => string = String): Promise<Float64Array> {
  const out = new Float64Array(n)
  const agent = new http.Agent({ keepAlive: true, maxSockets: PARALLEL })
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) {
      const from = next
      const to = Math.min(n, from + QUERY_BATCH)
      next = to
      const keys: string[] = []
      for (let i = from; i < to; i++) keys.push(`${type}:${idOf(i)}`)
      const { status, json } = await postJson(agent, port, '/v1/counters/query', { keys })
      const values = (json as { values?: Record<string, unknown> }).values
      if (status !== 200 || values === undefined) throw new Error(`counters/query answered ${status}: ${JSON.stringify(json).slice(0, 300)}`)
      for (let i = from; i < to; i++) {
        const v = values[keys[i - from]]
        if (typeof v !== 'number') throw new Error(`counters/query left out ${keys[i - from]}`)
        out[i] = v
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: PARALLEL }, worker))
  } finally {
    agent.destroy()
  }
  return out
}

// Sums every integer value whose key starts with the prefix, inside Redis (one round trip).
const SUM_SCRIPT = `
local cursor, sum, keys = '0', 0, 0
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1] .. '*', 'COUNT', 10000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    sum = sum + tonumber(redis.call('GET', k))
    keys = keys + 1
  end
until cursor == '0'
return {tostring(sum), keys}`

/** Sum and key count of all keys with this prefix. */
export async function sumRedis (url: string, prefix: string): Promise<{ sum: number, keys: number }> {
  const redis = new Redis(url)
  try {
    const [sum, keys] = await redis.eval(SUM_SCRIPT, 0, prefix) as [string, number]
    return { sum: Number(sum), keys }
  } finally {
    redis.disconnect()
  }
}

// Checks keys prefix..from … prefix..(to-1) inside Redis: their sum, and how many are not `want`.
const CHECK_SCRIPT = `
local sum, bad = 0, 0
for i = tonumber(ARGV[2]), tonumber(ARGV[3]) - 1 do
  local v = tonumber(redis.call('GET', ARGV[1] .. i) or '0')
  sum = sum + v
  if v ~= tonumber(ARGV[4]) then bad = bad + 1 end
end
return {tostring(sum), bad}`

/** For keys `${prefix}0` … `${prefix}${n-1}` that should all hold `want`: their sum, how many differ, and DBSIZE. */
export async function checkRedisSequence (url: string, prefix: string, n: number, want: number): Promise<{ sum: number, wrong: number, dbsize: number }> {
  const redis = new Redis(url)
  try {
    let sum = 0
    let wrong = 0
    for (let from = 0; from < n; from += 500_000) {
      const [s, bad] = await redis.eval(CHECK_SCRIPT, 0, prefix, from, Math.min(n, from + 500_000), want) as [string, number]
      sum += Number(s)
      wrong += bad
    }
    return { sum, wrong, dbsize: await redis.dbsize() }
  } finally {
    redis.disconnect()
  }
}

export async function flushRedis (url: string): Promise<void> {
  const redis = new Redis(url)
  try {
    await redis.flushall()
  } finally {
    redis.disconnect()
  }
}
