// Ids and types as JSON values. The seed APIs send numbers (`{"user_id":123,"item_id":456,
// "item_type":1}`), everything inside counterd names things by strings. One rule for every JSON
// body, batch query, stream frame and ingested event: a string is taken as it is (and must be in
// its alphabet); a number must be a non-negative integer up to 2^53−1 and is taken as its decimal
// string, so 456 and "456" name the same counter, like or user. A number is judged by its value:
// 456.0 and 4.56e2 are 456; -0 is 0. Negative, fractional and out-of-range numbers (JSON has no
// NaN or Infinity, but a decoded value may) are refused with the field's own code.
import { CounterdError, type ErrorCode } from './errors'
import { isValidId, isValidType, MAX_ID_LEN, MAX_TYPE_LEN } from './keys'

/** What a value names: a counter type, an id (counter or item), a user, an actor. */
export type IdKind = 'type' | 'id' | 'user' | 'actor'

interface KindRule { code: ErrorCode, valid: (s: string) => boolean, alphabet: string }

const ID_ALPHABET = `[A-Za-z0-9_.:-]{1,${MAX_ID_LEN}}`
const RULES: Record<IdKind, KindRule> = {
  type: { code: 'invalid_type', valid: isValidType, alphabet: `[a-z0-9_-]{1,${MAX_TYPE_LEN}}` },
  id: { code: 'invalid_id', valid: isValidId, alphabet: ID_ALPHABET },
  user: { code: 'invalid_user_id', valid: isValidId, alphabet: ID_ALPHABET },
  actor: { code: 'invalid_actor', valid: isValidId, alphabet: ID_ALPHABET }
}

/**
 * The key string a JSON value names, or the error that says why it names none. `field` is the
 * name the caller's clients know (`item_id`, `op 3: id`), used in the message.
 */
export function jsonIdString (v: unknown, kind: IdKind, field: string): string | CounterdError {
  const rule = RULES[kind]
  if (typeof v === 'string') {
    return rule.valid(v) ? v : new CounterdError(rule.code, `${field} must match ${rule.alphabet} or be a non-negative integer`)
  }
  if (typeof v === 'number') {
    // String() of a safe integer is its plain decimal form (no exponent below 1e21); -0 gives "0".
    if (Number.isSafeInteger(v) && v >= 0) return String(v)
    return new CounterdError(rule.code, `${field} given as a number must be a non-negative integer up to 2^53-1, got ${String(v)}`)
  }
  if (v === undefined) return new CounterdError(rule.code, `${field} is missing: give a string matching ${rule.alphabet} or a non-negative integer`)
  return new CounterdError(rule.code, `${field} must be a string matching ${rule.alphabet} or a non-negative integer, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`)
}
