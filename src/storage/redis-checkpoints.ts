// Cluster-mode checkpoints in Redis (a single server or Redis Cluster), incremental: a save holds
// only the counters changed since the previous one (0 = reset, which deletes the field).
//
// Key layout, per counter partition p (prefix default "counterd"; the {p7} hash tag puts all keys
// of a partition in one cluster slot, so a save is one atomic Lua script and a load one MULTI):
//   counterd:{p7}:values  hash  counter key → value as decimal integer text ("post:1" → "42")
//   counterd:{p7}:meta    hash  epoch, seq, ts (ms) of the saved checkpoint, logOffset (absent
//                               when unknown), owner (epoch claimed by the current owner, claimEpoch),
//                               holder (the ring member serving it; absent once released)
//   counterd:{p7}:dedup   hash  "<kind>:<tag>" → "<value> <ts>"  (the partition's live dedup table)
//   counterd:{p7}:pn      hash  counter key → "<P> <N>": this replica's PN-counter totals
//   counterd:{p7}:features string  everything else of the partition, encoded (likes, HLLs, samples, ...)
//   counterd:{p7}:history string   the partition's per-minute buckets as of `seq`, encoded (without
//                               ClickHouse; absent when none are kept): replaying the Kafka tail
//                               after `seq` completes them, so they survive a crash like the counters
//   counterd:{p7}:hll:<key> string a counter's unique-actor HyperLogLog as a Redis HLL (PFCOUNT reads it)
// Another service reads a counter's checkpointed value with one command:
//   HGET counterd:{p<fnv1a32(key) mod PARTITIONS>}:values <key>
//
// Fencing: a save whose epoch is lower than the stored or claimed epoch is refused (code `fenced`): a stale
// owner must never overwrite its successor. Within one epoch a save older (lower seq) than the
// stored one is refused too, so a delayed retry cannot roll values back.
import type { Cluster, Redis } from 'ioredis'
import { CounterdError } from '../core/errors'
import type { Checkpoint, DedupEntry, DedupKind, DeltaRecord } from '../core/records'
import type { CheckpointStore } from './types'
import { connectRedis, redisUnavailable } from './redis-connect'

export interface RedisCheckpointStoreOptions {
  /**
   * REDIS_URL: "redis://host:port[/db]" for one server, or a comma-separated list of
   * "redis://host:port" startup nodes for Redis Cluster. A single URL that points at a cluster
   * node is detected (INFO cluster) and used as a cluster startup node.
   */
  url: string
  /** Force cluster (true) or single-server (false) mode instead of detecting it. */
  cluster?: boolean
  /** Key prefix (default "counterd"). */
  keyPrefix?: string
  /** How long open() waits for the first connection (default 10 s). */
  startTimeoutMs?: number
  /** A command without a reply after this long fails (default 5 s), so a hung server fails saves. */
  commandTimeoutMs?: number
}

/** Where a partition's checkpoint lives. */
export function checkpointKeys (prefix: string, partition: number): { values: string, meta: string, dedup: string, pn: string, features: string, history: string, hll: (key: string) => string } {
  const tag = `${prefix}:{p${partition}}`
  return {
    values: `${tag}:values`,
    meta: `${tag}:meta`,
    dedup: `${tag}:dedup`,
    pn: `${tag}:pn`,
    features: `${tag}:features`,
    history: `${tag}:history`,
    hll: (key) => `${tag}:hll:${key}`
  }
}

// KEYS: meta, values, dedup, pn, features, history, then one HLL key per HLL.
// ARGV: epoch, seq, ts, logOffset ('' = unknown), hasPN ('1'/'0'), nPairs,
//   nPairs × (key, value[, "p n" when hasPN]), nDedup, nDedup × (field, value),
//   features and then history (each '' = none, else 's' followed by the blob in the next arg),
//   then one blob per HLL key,
//   then the owner mode: '0' no claim expected; '1' this store claimed the partition, so a meta
//   without `owner` means Redis lost the partition's keys; '2' a full rewrite after such a loss,
//   which claims the partition again.
// Returns {0} saved, {1, epoch, seq} fenced, {2, epoch, seq} older than stored, {3} keys lost.
const SAVE_SCRIPT = `
local cur = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'owner')
local epoch = tonumber(ARGV[1])
local seq = tonumber(ARGV[2])
local mode = ARGV[#ARGV]
if not cur[3] then
  if mode == '1' then return {3} end
  if mode == '2' then redis.call('HSET', KEYS[1], 'owner', ARGV[1]) end
end
if cur[3] and epoch < tonumber(cur[3]) then return {1, cur[3], cur[2] or '-'} end
if cur[1] then
  local ce = tonumber(cur[1])
  if epoch < ce then return {1, cur[1], cur[2]} end
  if epoch == ce and seq < tonumber(cur[2]) then return {2, cur[1], cur[2]} end
end
-- unpack() is limited to a few thousand values: write in chunks.
local CHUNK = 2000
local function put (cmd, key, list, force)
  if #list > 0 and (force or #list >= CHUNK) then
    redis.call(cmd, key, unpack(list))
    return {}
  end
  return list
end
local withPN = ARGV[5] == '1'
local i = 7
local sets, dels, psets, pdels = {}, {}, {}, {}
for _ = 1, tonumber(ARGV[6]) do
  local k, v = ARGV[i], ARGV[i + 1]
  if v == '0' then dels[#dels + 1] = k else sets[#sets + 1] = k; sets[#sets + 1] = v end
  if withPN then
    local pn = ARGV[i + 2]
    if pn == '0 0' then pdels[#pdels + 1] = k else psets[#psets + 1] = k; psets[#psets + 1] = pn end
    i = i + 3
  else
    i = i + 2
  end
  sets = put('HSET', KEYS[2], sets, false)
  dels = put('HDEL', KEYS[2], dels, false)
  psets = put('HSET', KEYS[4], psets, false)
  pdels = put('HDEL', KEYS[4], pdels, false)
end
put('HSET', KEYS[2], sets, true)
put('HDEL', KEYS[2], dels, true)
put('HSET', KEYS[4], psets, true)
put('HDEL', KEYS[4], pdels, true)
redis.call('DEL', KEYS[3])
local d = {}
for _ = 1, tonumber(ARGV[i]) do
  d[#d + 1] = ARGV[i + 1]; d[#d + 1] = ARGV[i + 2]
  i = i + 2
  d = put('HSET', KEYS[3], d, false)
end
put('HSET', KEYS[3], d, true)
i = i + 1
for k = 5, 6 do
  if ARGV[i] == 's' then
    redis.call('SET', KEYS[k], ARGV[i + 1])
    i = i + 2
  else
    redis.call('DEL', KEYS[k])
    i = i + 1
  end
end
for k = 7, #KEYS do
  redis.call('SET', KEYS[k], ARGV[i])
  i = i + 1
end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', ARGV[2], 'ts', ARGV[3])
if ARGV[4] == '' then redis.call('HDEL', KEYS[1], 'logOffset') else redis.call('HSET', KEYS[1], 'logOffset', ARGV[4]) end
return {0}
`

// KEYS: meta. ARGV: epoch. Records `owner` = epoch unless the partition already has an epoch or
// owner at least as high; returns 0 when claimed, else that higher epoch.
const CLAIM_SCRIPT = `
local cur = redis.call('HMGET', KEYS[1], 'epoch', 'owner')
local top = math.max(tonumber(cur[1] or '0'), tonumber(cur[2] or '0'))
if tonumber(ARGV[1]) <= top then return top end
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
return 0
`

// KEYS: metas. ARGV: the appender's epoch of each. Returns 0 while every owner is at most that
// epoch, else {index (1-based), owner} of the first partition a newer owner claimed. One call per
// group commit instead of a command per partition: ioredis' per-command cost adds up there.
const OWNERS_SCRIPT = `
for i = 1, #KEYS do
  local owner = tonumber(redis.call('HGET', KEYS[i], 'owner') or '0')
  if owner > tonumber(ARGV[i]) then return { i, owner } end
end
return 0
`

type Client = Redis | Cluster
type ClaimCommand = (meta: string, epoch: string) => Promise<number>
type OwnersCommand = (numKeys: number, ...keysAndArgs: string[]) => Promise<0 | [number, number]>
type SaveCommand = (numKeys: number, ...keysAndArgs: Array<string | Buffer>) => Promise<Array<number | string | null>>

export class RedisCheckpointStore implements CheckpointStore {
  readonly keyPrefix: string
  readonly isCluster: boolean
  private readonly client: Client
  private lastError: string | undefined
  // Per partition, a save that did not reach Redis: it is carried into the partition's next save.
  // Saves are incremental (only counters changed since the previous one), so without this a counter
  // changed only before a failed save would keep its old value in Redis while `seq` and `logOffset`
  // move past the records that changed it: recovery would then skip them.
  private readonly unsaved = new Map<number, Checkpoint>()
  // Partitions this store claimed (claimEpoch): their meta must keep its `owner` field.
  private readonly claimed = new Set<number>()
  // Partitions whose keys Redis lost (restarted without persistence, flushed, failed over to an
  // empty replica), with when that was seen: an incremental save there would leave a checkpoint
  // missing every counter not changed lately while its seq and logOffset claim to cover them.
  private readonly lost = new Map<number, number>()

  /** Connects (detecting Redis Cluster) and returns a ready store; unreachable: storage_unavailable. */
  static async open (options: RedisCheckpointStoreOptions): Promise<RedisCheckpointStore> {
    const o = validate(options)
    const { client, cluster } = await connectRedis(o.url, o)
    try {
      client.defineCommand('counterdSave', { lua: SAVE_SCRIPT }) // key count varies with the HLLs saved
      client.defineCommand('counterdClaim', { numberOfKeys: 1, lua: CLAIM_SCRIPT })
      client.defineCommand('counterdOwners', { lua: OWNERS_SCRIPT })
    } catch (err) {
      client.disconnect()
      throw asUnavailable(err, `cannot reach Redis at ${o.url}`)
    }
    return new RedisCheckpointStore(client, o.keyPrefix, cluster)
  }

  private constructor (client: Client, keyPrefix: string, isCluster: boolean) {
    this.client = client
    this.keyPrefix = keyPrefix
    this.isCluster = isCluster
  }

  /**
   * True: save() takes only counters changed since the last save (0 = reset). False while Redis
   * has lost a partition's keys: the next checkpoint must hold the whole state, and saves of lost
   * partitions are refused until one captured after the loss (a full one) rewrites them.
   */
  get incremental (): boolean {
    return this.lost.size === 0
  }

  status (): { ok: boolean, error?: string } {
    if (this.client.status !== 'ready') return { ok: false, error: `Redis connection is ${this.client.status}` }
    return this.lastError === undefined ? { ok: true } : { ok: false, error: this.lastError }
  }

  /**
   * PARTITIONS is fixed for a cluster's life (every checkpoint key and log record is placed by
   * it): the first node to start stores it at `<prefix>:partitions`, every later start checks it.
   */
  async checkPartitions (partitions: number): Promise<void> {
    const key = `${this.keyPrefix}:partitions`
    let stored: string | null
    try {
      await this.client.set(key, String(partitions), 'NX')
      stored = await this.client.get(key)
    } catch (err) {
      throw asUnavailable(err, 'reading the stored partition count from Redis failed')
    }
    if (stored !== String(partitions)) {
      throw new CounterdError('partitions_mismatch', `PARTITIONS is ${partitions} but Redis (${key}) holds data written with PARTITIONS=${String(stored)}; a cluster keeps its partition count for life`)
    }
  }

  /**
   * Fencing for a new owner: picks an epoch at least `atLeast` and above every epoch stored or
   * claimed for these partitions, and records it as their owner. From then on saves of a lower
   * epoch (the previous owner's) are refused with `fenced`. Use the result as the owner's epoch.
   */
  async claimEpoch (partitions: readonly number[], atLeast = 1): Promise<number> {
    if (!Number.isSafeInteger(atLeast) || atLeast < 1 || atLeast > 0xffffffff) {
      throw new CounterdError('invalid_argument', `atLeast must be an integer from 1 to 2^32-1, got ${JSON.stringify(atLeast)}`)
    }
    const claim = (this.client as unknown as { counterdClaim: ClaimCommand }).counterdClaim.bind(this.client)
    let epoch = atLeast
    for (;;) {
      let tops: number[]
      try {
        tops = await Promise.all(partitions.map(async (p) => Number(await claim(checkpointKeys(this.keyPrefix, p).meta, String(epoch)))))
      } catch (err) {
        throw asUnavailable(err, 'claiming partitions in Redis failed')
      }
      const top = Math.max(0, ...tops)
      if (top === 0) {
        for (const p of partitions) this.claimed.add(p)
        return epoch
      }
      // Someone holds a higher epoch somewhere: claim everything again above it.
      epoch = top + 1
      if (epoch > 0xffffffff) throw new CounterdError('internal', 'epoch would exceed 2^32-1')
    }
  }

  /**
   * Fencing of log appends: refuses (code `fenced`) records of a partition whose owner epoch in
   * Redis is higher than theirs — a successor claimed it, so this node's copy is stale and what it
   * just appended must not be acknowledged (replay ignores such records: partition-state.ts).
   */
  async checkOwners (records: readonly DeltaRecord[]): Promise<void> {
    const epochs = new Map<number, number>()
    for (const r of records) epochs.set(r.partition, Math.min(r.epoch, epochs.get(r.partition) ?? r.epoch))
    const ps = [...epochs.keys()]
    let fenced: { p: number, owner: number } | null = null
    try {
      if (this.isCluster) {
        // The partitions' keys sit in different slots: one HGET each.
        const owners = await Promise.all(ps.map(async (p) => await this.client.hget(checkpointKeys(this.keyPrefix, p).meta, 'owner')))
        const i = owners.findIndex((o, i) => Number(o ?? 0) > (epochs.get(ps[i]) as number))
        if (i >= 0) fenced = { p: ps[i], owner: Number(owners[i]) }
      } else {
        const check = (this.client as unknown as { counterdOwners: OwnersCommand }).counterdOwners.bind(this.client)
        const res = await check(ps.length, ...ps.map((p) => checkpointKeys(this.keyPrefix, p).meta), ...ps.map((p) => String(epochs.get(p))))
        if (res !== 0) fenced = { p: ps[res[0] - 1], owner: Number(res[1]) }
      }
    } catch (err) {
      throw asUnavailable(err, 'reading partition owners from Redis failed')
    }
    if (fenced !== null) {
      throw new CounterdError('fenced', `partition ${fenced.p} was claimed by a newer owner (epoch ${fenced.owner}) than this node's (${String(epochs.get(fenced.p))}); its writes here are not acknowledged`)
    }
  }

  async holders (partitions: readonly number[]): Promise<Array<string | null>> {
    try {
      return await Promise.all(partitions.map(async (p) => await this.client.hget(checkpointKeys(this.keyPrefix, p).meta, 'holder')))
    } catch (err) {
      throw asUnavailable(err, 'reading partition holders from Redis failed')
    }
  }

  async setHolder (partitions: readonly number[], holder: string | null): Promise<void> {
    try {
      await Promise.all(partitions.map(async (p) => {
        const meta = checkpointKeys(this.keyPrefix, p).meta
        if (holder === null) await this.client.hdel(meta, 'holder')
        else await this.client.hset(meta, 'holder', holder)
      }))
    } catch (err) {
      throw asUnavailable(err, 'recording partition holders in Redis failed')
    }
    if (holder === null) for (const p of partitions) this.claimed.delete(p)
  }

  async load (partition: number): Promise<Checkpoint | null> {
    const k = checkpointKeys(this.keyPrefix, partition)
    let res: Array<[Error | null, unknown]> | null
    try {
      // One MULTI: everything of one save, never a mix of two.
      res = await this.client.multi().hgetall(k.meta).hgetall(k.values).hgetall(k.dedup).hgetall(k.pn).getBuffer(k.features).getBuffer(k.history).exec()
    } catch (err) {
      throw asUnavailable(err, `loading the checkpoint of partition ${partition} from Redis failed`)
    }
    if (res === null) throw new CounterdError('storage_unavailable', `loading the checkpoint of partition ${partition}: transaction aborted`)
    for (const [err] of res) if (err !== null) throw asUnavailable(err, `loading the checkpoint of partition ${partition} failed`)
    const meta = res[0][1] as Record<string, string>
    if (meta.seq === undefined) return null
    const values = res[1][1] as Record<string, string>
    const dedupHash = res[2][1] as Record<string, string>
    const pn = res[3][1] as Record<string, string>
    const features = res[4][1] as Buffer | null
    const history = res[5][1] as Buffer | null
    // Counters at 0 have no value field but may still have replica totals (P = N).
    const keys = Object.keys(values)
    for (const key in pn) if (values[key] === undefined) keys.push(key)
    const nums: number[] = new Array(keys.length)
    const ps: number[] = new Array(keys.length)
    const ns: number[] = new Array(keys.length)
    for (let i = 0; i < keys.length; i++) {
      const v = values[keys[i]]
      nums[i] = v === undefined ? 0 : parseInteger(v, `${k.values} ${keys[i]}`)
      const totals = pn[keys[i]]
      if (totals === undefined) {
        // Saved without totals: the value is all this replica's own.
        ps[i] = Math.max(nums[i], 0)
        ns[i] = Math.max(-nums[i], 0)
      } else {
        const [p, n] = totals.split(' ')
        ps[i] = parseNumber(p, `${k.pn} ${keys[i]}`)
        ns[i] = parseNumber(n, `${k.pn} ${keys[i]}`)
      }
    }
    const dedup: DedupEntry[] = []
    for (const field in dedupHash) {
      const colon = field.indexOf(':')
      const kind = Number(field.slice(0, colon))
      const [v, ts] = dedupHash[field].split(' ')
      if (colon < 1 || (kind !== 1 && kind !== 2)) throw new CounterdError('corrupt_state', `${k.dedup} has a malformed field ${JSON.stringify(field)}`)
      dedup.push({ kind: kind as DedupKind, tag: field.slice(colon + 1), value: parseNumber(v, `${k.dedup} ${field}`), ts: parseNumber(ts, `${k.dedup} ${field}`) })
    }
    const cp: Checkpoint = {
      partition,
      epoch: parseInteger(meta.epoch, `${k.meta} epoch`),
      seq: parseInteger(meta.seq, `${k.meta} seq`),
      ts: parseNumber(meta.ts, `${k.meta} ts`),
      keys,
      values: nums,
      ps,
      ns,
      dedup
    }
    if (features !== null) cp.features = features
    if (history !== null) cp.history = history
    if (meta.logOffset !== undefined) cp.logOffset = parseInteger(meta.logOffset, `${k.meta} logOffset`)
    return cp
  }

  /**
   * Saves each checkpoint atomically (partitions in parallel). Rejects after all were tried:
   * `fenced` if any partition was refused for its epoch, else storage_unavailable.
   */
  async save (checkpoints: Checkpoint[]): Promise<void> {
    const results = await Promise.allSettled(checkpoints.map(async (given) => {
      const earlier = this.unsaved.get(given.partition)
      this.unsaved.delete(given.partition)
      // After a loss the rewrite is full: nothing earlier needs carrying.
      const cp = earlier === undefined || this.lost.has(given.partition) ? given : carryInto(earlier, given)
      try {
        await this.saveOne(cp)
      } catch (err) {
        // Not stored (or not known to be): keep it for the next save, unless the partition is
        // lost to a newer owner (fenced), its keys were lost, or the checkpoint itself is invalid.
        const code = (err as CounterdError).code
        if (code === 'storage_unavailable' && !this.lost.has(cp.partition)) {
          const newer = this.unsaved.get(cp.partition)
          this.unsaved.set(cp.partition, newer === undefined ? cp : carryInto(cp, newer))
        }
        throw err
      }
    }))
    const fenced: string[] = []
    let other: CounterdError | null = null
    for (const r of results) {
      if (r.status === 'fulfilled') continue
      const err = r.reason as CounterdError
      if (err.code === 'fenced') fenced.push(err.message)
      else other ??= err
    }
    if (fenced.length > 0) throw new CounterdError('fenced', fenced.join('; '))
    if (other !== null) {
      this.lastError = other.message
      throw other
    }
    this.lastError = undefined
  }

  private async saveOne (cp: Checkpoint): Promise<void> {
    checkCheckpoint(cp)
    const lostAt = this.lost.get(cp.partition)
    // Captured before the loss was seen: incremental, so it cannot rebuild the partition.
    if (lostAt !== undefined && cp.ts <= lostAt) throw this.lostError(cp.partition)
    const mode = lostAt !== undefined ? '2' : this.claimed.has(cp.partition) ? '1' : '0'
    const k = checkpointKeys(this.keyPrefix, cp.partition)
    const hlls = cp.hlls ?? []
    const keys: string[] = [k.meta, k.values, k.dedup, k.pn, k.features, k.history]
    for (const [key] of hlls) keys.push(k.hll(key))
    const withPN = cp.ps !== undefined && cp.ns !== undefined
    const argv: Array<string | Buffer> = [String(cp.epoch), String(cp.seq), String(cp.ts), cp.logOffset === undefined ? '' : String(cp.logOffset), withPN ? '1' : '0', String(cp.keys.length)]
    for (let i = 0; i < cp.keys.length; i++) {
      argv.push(cp.keys[i], String(cp.values[i]))
      if (withPN) argv.push(`${(cp.ps as number[])[i]} ${(cp.ns as number[])[i]}`)
    }
    argv.push(String(cp.dedup.length))
    for (const d of cp.dedup) argv.push(`${d.kind}:${d.tag}`, `${d.value} ${d.ts}`)
    if (cp.features === undefined) argv.push('')
    else argv.push('s', cp.features)
    if (cp.history === undefined) argv.push('')
    else argv.push('s', cp.history)
    for (const [, blob] of hlls) argv.push(blob)
    argv.push(mode)
    let res: Array<number | string | null>
    try {
      res = await (this.client as unknown as { counterdSave: SaveCommand }).counterdSave(keys.length, ...keys, ...argv)
    } catch (err) {
      throw asUnavailable(err, `saving the checkpoint of partition ${cp.partition} to Redis failed`)
    }
    if (res[0] === 1) {
      throw new CounterdError('fenced', `partition ${cp.partition}: checkpoint of epoch ${cp.epoch} refused, Redis holds epoch ${String(res[1])} (seq ${String(res[2])})`)
    }
    if (res[0] === 2) {
      throw new CounterdError('fenced', `partition ${cp.partition}: checkpoint at seq ${cp.seq} refused, Redis already holds seq ${String(res[2])} of epoch ${String(res[1])}`)
    }
    if (res[0] === 3) {
      this.lost.set(cp.partition, Date.now())
      this.unsaved.delete(cp.partition)
      throw this.lostError(cp.partition)
    }
    if (mode === '2') {
      this.lost.delete(cp.partition)
      this.claimed.add(cp.partition)
    }
  }

  private lostError (partition: number): CounterdError {
    return new CounterdError('storage_unavailable', `Redis lost the checkpoint of partition ${partition} (restarted without persistence, flushed, or failed over to an empty replica?): it is rewritten in full by the next checkpoint`)
  }

  async close (): Promise<void> {
    try {
      await this.client.quit()
    } catch {
      this.client.disconnect()
    }
  }
}

/**
 * `newer` plus what of `older` (an earlier checkpoint of the same partition whose save failed) it
 * does not supersede: counters and HyperLogLogs `newer` lacks have not changed since `older`, so
 * their values there are still current. Everything else (seq, dedup, features, history) comes from `newer`.
 */
function carryInto (older: Checkpoint, newer: Checkpoint): Checkpoint {
  const have = new Set(newer.keys)
  const keys = newer.keys.slice()
  const values = newer.values.slice()
  const withPN = newer.ps !== undefined && newer.ns !== undefined
  const ps = withPN ? (newer.ps as number[]).slice() : undefined
  const ns = withPN ? (newer.ns as number[]).slice() : undefined
  const olderPN = older.ps !== undefined && older.ns !== undefined
  for (let i = 0; i < older.keys.length; i++) {
    if (have.has(older.keys[i])) continue
    keys.push(older.keys[i])
    values.push(older.values[i])
    if (ps !== undefined && ns !== undefined) {
      // Saved without totals, a value is all this replica's own (as load() reads it).
      ps.push(olderPN ? (older.ps as number[])[i] : Math.max(older.values[i], 0))
      ns.push(olderPN ? (older.ns as number[])[i] : Math.max(-older.values[i], 0))
    }
  }
  let hlls = newer.hlls
  if (older.hlls !== undefined && older.hlls.length > 0) {
    const fresh = new Set((newer.hlls ?? []).map(([key]) => key))
    hlls = [...(newer.hlls ?? []), ...older.hlls.filter(([key]) => !fresh.has(key))]
  }
  return { ...newer, keys, values, ps, ns, hlls }
}

function checkCheckpoint (cp: Checkpoint): void {
  const bad = (what: string): never => { throw new CounterdError('invalid_argument', `checkpoint of partition ${cp.partition}: ${what}`) }
  if (!Number.isInteger(cp.partition) || cp.partition < 0 || cp.partition > 65535) bad('partition must be an integer from 0 to 65535')
  if (!Number.isSafeInteger(cp.epoch) || cp.epoch < 0) bad('epoch must be a non-negative integer')
  if (!Number.isSafeInteger(cp.seq) || cp.seq < 0) bad('seq must be a non-negative integer')
  if (cp.keys.length !== cp.values.length) bad('keys and values differ in length')
  if (cp.logOffset !== undefined && (!Number.isSafeInteger(cp.logOffset) || cp.logOffset < 0)) bad('logOffset must be a non-negative integer')
  for (let i = 0; i < cp.values.length; i++) if (!Number.isSafeInteger(cp.values[i])) bad(`value of ${cp.keys[i]} is not a safe integer`)
  if ((cp.ps === undefined) !== (cp.ns === undefined)) bad('ps and ns come together')
  if (cp.ps !== undefined && cp.ns !== undefined) {
    if (cp.ps.length !== cp.keys.length || cp.ns.length !== cp.keys.length) bad('ps and ns must be parallel to keys')
    for (let i = 0; i < cp.ps.length; i++) {
      // Totals only grow, so unlike values they may pass 2^53 (then approximately).
      if (!Number.isFinite(cp.ps[i]) || !Number.isFinite(cp.ns[i]) || cp.ps[i] < 0 || cp.ns[i] < 0) bad(`totals of ${cp.keys[i]} must be finite and non-negative`)
    }
  }
}

function parseNumber (s: string | undefined, where: string): number {
  const n = s === undefined || s === '' ? NaN : Number(s)
  if (!Number.isFinite(n)) throw new CounterdError('corrupt_state', `${where} is not a number: ${JSON.stringify(s)}`)
  return n
}

function parseInteger (s: string | undefined, where: string): number {
  const n = parseNumber(s, where)
  if (!Number.isSafeInteger(n)) throw new CounterdError('corrupt_state', `${where} is not a safe integer: ${JSON.stringify(s)}`)
  return n
}

const asUnavailable = redisUnavailable


function validate (o: RedisCheckpointStoreOptions): Required<Omit<RedisCheckpointStoreOptions, 'cluster'>> & { cluster?: boolean } {
  if (typeof o.url !== 'string' || o.url.trim() === '') throw new CounterdError('invalid_option', 'url must be a redis:// URL or a comma-separated list of them')
  for (const u of o.url.split(',')) {
    let parsed: URL
    try {
      parsed = new URL(u.trim())
    } catch {
      throw new CounterdError('invalid_option', `url must be a redis:// URL or a comma-separated list of them, got ${JSON.stringify(u)}`)
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
      throw new CounterdError('invalid_option', `url must use redis:// or rediss://, got ${JSON.stringify(u)}`)
    }
  }
  const keyPrefix = o.keyPrefix ?? 'counterd'
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(keyPrefix)) throw new CounterdError('invalid_option', `keyPrefix must be 1 to 64 of [A-Za-z0-9_.:-], got ${JSON.stringify(keyPrefix)}`)
  const int = (name: string, v: number, min: number, max: number): number => {
    if (!Number.isSafeInteger(v) || v < min || v > max) throw new CounterdError('invalid_option', `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`)
    return v
  }
  return {
    url: o.url,
    cluster: o.cluster,
    keyPrefix,
    startTimeoutMs: int('startTimeoutMs', o.startTimeoutMs ?? 10_000, 100, 600_000),
    commandTimeoutMs: int('commandTimeoutMs', o.commandTimeoutMs ?? 5000, 10, 600_000)
  }
}
