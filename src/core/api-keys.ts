// API keys (AUTH_FILE): which keys exist and what each may do. The file is JSON:
//   {"keys":[{"key":"sha256:<hex of the key>","namespace":"shop","scopes":["read","write"]}]}
// A plain "key":"…" is accepted too (the caller warns). Keys are kept only as SHA-256 digests, and
// a presented key is found by its digest, so no comparison runs over the secret itself.
import { createHash, timingSafeEqual } from 'node:crypto'
import { NAMESPACE_RE } from './namespaces'

export const SCOPES = ['read', 'write', 'admin'] as const
export type Scope = typeof SCOPES[number]

export interface ApiKey {
  /** SHA-256 of the key, hex */
  digest: string
  namespace: string
  scopes: Scope[]
  /** The key's slot in the node-wide rate limit (KEY_OPS_PER_SECOND); kept across reloads */
  slot: number
}

/** What the shards get: plain data, so it crosses to worker threads as is. */
export interface ApiKeyTable {
  keys: ApiKey[]
  /** how many keys were given in plain text (the node warns) */
  plain: number
}

export class ApiKeyFileError extends Error {}

const HEX64 = /^[0-9a-f]{64}$/

export function digestOf (key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex')
}

/** Parses and checks the whole file; the error names the entry and field that is wrong. */
export function parseApiKeyFile (text: string): ApiKeyTable {
  let doc: unknown
  try { doc = JSON.parse(text) } catch (err) { throw new ApiKeyFileError(`not JSON: ${(err as Error).message}`) }
  const list = (doc as { keys?: unknown } | null)?.keys
  if (!Array.isArray(list)) throw new ApiKeyFileError('must be {"keys":[...]}')
  const keys: ApiKey[] = []
  const seen = new Set<string>()
  let plain = 0
  list.forEach((entry: unknown, i: number) => {
    const e = entry as { key?: unknown, namespace?: unknown, scopes?: unknown } | null
    if (e === null || typeof e !== 'object') throw new ApiKeyFileError(`keys[${i}] must be an object`)
    if (typeof e.key !== 'string' || e.key.length === 0) throw new ApiKeyFileError(`keys[${i}].key must be "sha256:<64 hex digits>" or the key itself`)
    let digest: string
    if (e.key.startsWith('sha256:')) {
      digest = e.key.slice(7).toLowerCase()
      if (!HEX64.test(digest)) throw new ApiKeyFileError(`keys[${i}].key must have 64 hex digits after "sha256:"`)
    } else {
      if (e.key.length < 16) throw new ApiKeyFileError(`keys[${i}].key must be at least 16 characters`)
      digest = digestOf(e.key)
      plain++
    }
    if (seen.has(digest)) throw new ApiKeyFileError(`keys[${i}].key appears twice`)
    seen.add(digest)
    if (typeof e.namespace !== 'string' || !NAMESPACE_RE.test(e.namespace)) throw new ApiKeyFileError(`keys[${i}].namespace must match [A-Za-z0-9_.-]{1,64}`)
    if (!Array.isArray(e.scopes) || e.scopes.length === 0 || !e.scopes.every((s: unknown) => (SCOPES as readonly unknown[]).includes(s))) {
      throw new ApiKeyFileError(`keys[${i}].scopes must be a non-empty list of ${SCOPES.map(s => `"${s}"`).join(', ')}`)
    }
    keys.push({ digest, namespace: e.namespace, scopes: [...new Set(e.scopes as Scope[])], slot: i })
  })
  return { keys, plain }
}

/**
 * Gives each key a rate-limit slot, the same one a key had in an earlier table (`slots`: digest →
 * slot, updated), so a reload neither resets a key's rate nor hands its slot to another key.
 */
export function assignSlots (table: ApiKeyTable, slots: Map<string, number>, capacity: number): void {
  const taken = new Set(slots.values())
  let next = 0
  for (const k of table.keys) {
    const s = slots.get(k.digest)
    if (s !== undefined) { k.slot = s; continue }
    while (taken.has(next)) next++
    if (next >= capacity) throw new ApiKeyFileError(`more than ${capacity} keys over the node's life; restart the node to reuse rate-limit slots`)
    k.slot = next
    slots.set(k.digest, next)
    taken.add(next)
  }
}

/** Looks presented keys up by digest; built once per table. */
export class ApiKeyVerifier {
  private readonly byDigest = new Map<string, { digest: Buffer, key: ApiKey }>()

  constructor (table: ApiKeyTable) {
    for (const k of table.keys) this.byDigest.set(k.digest, { digest: Buffer.from(k.digest, 'hex'), key: k })
  }

  /** The key's entry, or null when no such key exists. */
  find (presented: string): ApiKey | null {
    const digest = createHash('sha256').update(presented, 'utf8').digest()
    const hit = this.byDigest.get(digest.toString('hex'))
    return hit !== undefined && timingSafeEqual(hit.digest, digest) ? hit.key : null
  }
}
