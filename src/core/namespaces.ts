// Namespaces (AUTH_FILE): each API key belongs to one, and a namespace's counters are its own.
// The front qualifies every counter key (and every other name a partition keys state by: a like's
// item, a stream's clientId, a user's like quota) once, at parse time, as "<namespace>/<key>".
// No user key can spell that: '/' is outside every alphabet of src/core/keys.ts. Everything below
// the front (partitions, log records, checkpoints, history) then keeps namespaces apart without
// knowing of them; replies strip the prefix again. Without AUTH_FILE the namespace is '' and keys
// are exactly the user's keys, as before namespaces existed.
import { FNV_OFFSET, fnv1a32Byte, splitKey } from './keys'

export const NAMESPACE_RE = /^[A-Za-z0-9_.-]{1,64}$/
export const NS_SEPARATOR = '/'
export const NS_SEPARATOR_BYTE = 0x2f

/** A key (or name) as the partitions store it: `name` itself without a namespace. */
export function qualify (ns: string, name: string): string {
  return ns === '' ? name : ns + NS_SEPARATOR + name
}

/** The user's key of a stored one of namespace `ns` (the caller knows it is of that namespace). */
export function unqualify (ns: string, stored: string): string {
  return ns === '' ? stored : stored.slice(ns.length + 1)
}

/** The prefix every stored key of `ns` starts with ('' without a namespace). */
export function prefixOf (ns: string): string {
  return ns === '' ? '' : ns + NS_SEPARATOR
}

/** FNV-1a state after hashing `ns`'s prefix: a frame's key bytes continue from it (FNV_OFFSET for ''). */
export function prefixHash (ns: string): number {
  let h = FNV_OFFSET
  const p = prefixOf(ns)
  for (let i = 0; i < p.length; i++) h = fnv1a32Byte(h, p.charCodeAt(i))
  return h
}

/** Whether a stored key belongs to some namespace (an open node's keys never do). */
export function isQualified (stored: string): boolean {
  return stored.includes(NS_SEPARATOR)
}

/** A stored key is a valid "type:id", optionally behind a valid namespace prefix. */
export function isValidStoredKey (stored: string): boolean {
  const slash = stored.indexOf(NS_SEPARATOR)
  if (slash < 0) return splitKey(stored) !== null
  return NAMESPACE_RE.test(stored.slice(0, slash)) && splitKey(stored.slice(slash + 1)) !== null
}
