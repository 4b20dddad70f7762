// Counter keys and the partition function. Keys are `{type}:{id}`; every allowed character is
// ASCII, so a key's UTF-8 bytes, latin1 bytes and string code units are all the same, which lets
// the binary stream path validate and hash keys straight from the frame without building strings.
//
// Partition function (stable for a cluster's life; every node and client must agree):
//   partition = fnv1a32(bytes of "type:id") mod P
// where fnv1a32 is 32-bit FNV-1a (offset basis 2166136261, prime 16777619). Test vectors in
// test/keys.test.ts and README.

export const MAX_TYPE_LEN = 32
export const MAX_ID_LEN = 128
export const MAX_KEY_LEN = MAX_TYPE_LEN + 1 + MAX_ID_LEN

// Byte classes: bit 1 = allowed in a type, bit 2 = allowed in an id.
const TYPE_OK = 1
const ID_OK = 2
const CLASS = new Uint8Array(256)
for (let c = 0; c < 256; c++) {
  const ch = String.fromCharCode(c)
  if (/[a-z0-9_-]/.test(ch)) CLASS[c] |= TYPE_OK
  if (/[A-Za-z0-9_.:-]/.test(ch)) CLASS[c] |= ID_OK
}

export function isValidType (s: string): boolean {
  const n = s.length
  if (n < 1 || n > MAX_TYPE_LEN) return false
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c > 255 || (CLASS[c] & TYPE_OK) === 0) return false
  }
  return true
}

export function isValidId (s: string): boolean {
  const n = s.length
  if (n < 1 || n > MAX_ID_LEN) return false
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c > 255 || (CLASS[c] & ID_OK) === 0) return false
  }
  return true
}

/** Splits "type:id" at the first colon (types have none); null when either part is invalid. */
export function splitKey (key: string): { type: string, id: string } | null {
  const colon = key.indexOf(':')
  if (colon < 1) return null
  const type = key.slice(0, colon)
  const id = key.slice(colon + 1)
  return isValidType(type) && isValidId(id) ? { type, id } : null
}

export function isTypeByte (c: number): boolean { return (CLASS[c] & TYPE_OK) !== 0 }
export function isIdByte (c: number): boolean { return (CLASS[c] & ID_OK) !== 0 }

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

/** 32-bit FNV-1a of an ASCII string (every valid key is ASCII). */
export function fnv1a32 (s: string): number {
  let h = FNV_OFFSET
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, FNV_PRIME)
  }
  return h >>> 0
}

/** FNV-1a continued over bytes; start with FNV_OFFSET. Lets callers hash a key in pieces. */
export function fnv1a32Bytes (h: number, buf: Uint8Array, start: number, end: number): number {
  for (let i = start; i < end; i++) {
    h ^= buf[i]
    h = Math.imul(h, FNV_PRIME)
  }
  return h
}

export function fnv1a32Byte (h: number, byte: number): number {
  return Math.imul(h ^ byte, FNV_PRIME)
}

export { FNV_OFFSET, FNV_PRIME }

export function partitionOf (key: string, partitions: number): number {
  return fnv1a32(key) % partitions
}
