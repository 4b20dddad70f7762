// Events consumed from Kafka (INGEST_TOPIC), as the seeds produce them:
//
//   {"event_id": "uuid", "user_id": 123, "item_id": 456, "item_type": 1, "action": "like",
//    "timestamp": "2024-01-15T10:30:00Z"}
//
// - event_id: 1–128 printable ASCII characters, or a non-negative integer; what makes a
//   redelivered event count once (it is remembered in the item partition's dedup window).
// - item_type, item_id, user_id: strings or non-negative integers (src/core/json-ids.ts).
// - action: `like` / `unlike` (the item's likes, per user: user_id required), `view` (the counter
//   item_type:item_id + 1), `increment` (the counter + `by`, an integer within ±(2^53−1)). A view
//   or increment that names a user_id counts it as the increment's actor (unique counts, samples).
// - timestamp: optional; an ISO 8601 string or ms since the epoch. Checked, not used: an event
//   counts when it is applied.
// Other fields are ignored. Decoding is pure: no I/O, no state; a bad event gives the error that
// says why, and that error's code and message are what the dead-letter headers carry.
import { CounterdError } from './errors'
import { isValidDelta } from './frame-ops'
import { jsonIdString } from './json-ids'

export type IngestAction = 'like' | 'unlike' | 'view' | 'increment'

export interface IngestEvent {
  eventId: string
  action: IngestAction
  /** "item_type:item_id": the counter (view, increment) or the liked item (like, unlike). */
  key: string
  /** like/unlike: the user; view/increment: the actor, or null when the event names no user. */
  user: string | null
  /** The increment (view: 1; like/unlike: 0). */
  by: number
}

const EVENT_ID_RE = /^[\x21-\x7e]{1,128}$/
const ACTIONS = new Set<string>(['like', 'unlike', 'view', 'increment'])

/** Decodes one message value into an event, or the reason it is not one. */
export function decodeEvent (value: Buffer | string | null): IngestEvent | CounterdError {
  if (value === null || value.length === 0) return new CounterdError('invalid_event', 'the message has no value')
  let parsed: unknown
  try {
    parsed = JSON.parse(typeof value === 'string' ? value : value.toString('utf8'))
  } catch {
    return new CounterdError('malformed_json', 'the message value is not valid JSON')
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return new CounterdError('invalid_event', 'an event must be a JSON object {"event_id","action","item_type","item_id",...}')
  }
  const e = parsed as Record<string, unknown>
  const eventId = eventIdOf(e.event_id)
  if (eventId instanceof CounterdError) return eventId
  const action = e.action
  if (typeof action !== 'string' || !ACTIONS.has(action)) {
    return new CounterdError('invalid_event', `action must be one of like, unlike, view, increment, got ${JSON.stringify(action) ?? 'nothing'}`)
  }
  const type = jsonIdString(e.item_type, 'type', 'item_type')
  if (type instanceof CounterdError) return type
  const id = jsonIdString(e.item_id, 'id', 'item_id')
  if (id instanceof CounterdError) return id
  let user: string | null = null
  if (e.user_id !== undefined || action === 'like' || action === 'unlike') {
    const u = jsonIdString(e.user_id, 'user', 'user_id')
    if (u instanceof CounterdError) return u
    user = u
  }
  let by = action === 'view' ? 1 : 0
  if (action === 'increment') {
    if (!isValidDelta(e.by)) return new CounterdError('invalid_delta', `an increment event needs "by": an integer between -(2^53-1) and 2^53-1, got ${JSON.stringify(e.by) ?? 'nothing'}`)
    by = e.by
  }
  const ts = e.timestamp
  if (ts !== undefined && !(typeof ts === 'string' ? !Number.isNaN(Date.parse(ts)) : typeof ts === 'number' && Number.isSafeInteger(ts) && ts >= 0)) {
    return new CounterdError('invalid_event', `timestamp must be an ISO 8601 time or ms since the epoch, got ${JSON.stringify(ts)}`)
  }
  return { eventId, action: action as IngestAction, key: type + ':' + id, user, by }
}

function eventIdOf (v: unknown): string | CounterdError {
  if (typeof v === 'string' && EVENT_ID_RE.test(v)) return v
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return String(v)
  return new CounterdError('invalid_event_id', `event_id must be 1 to 128 printable ASCII characters or a non-negative integer, got ${JSON.stringify(v) ?? 'nothing'}`)
}

/**
 * The dedup tag an event is remembered by in its partition: the key, then an empty line, then the
 * event id. HTTP Idempotency-Key tags are key + '\n' + a non-empty printable key, so the two never
 * collide; the key in front makes (item, event_id) the identity, as for HTTP retries.
 */
export function eventTag (ev: IngestEvent): string {
  return ev.key + '\n\n' + ev.eventId
}
