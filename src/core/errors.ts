// One error family for the whole service. Every error has a stable `code` (what clients and
// tests match on), an HTTP `status`, and a `retriable` flag: retry logic reads only that flag.
// Errors cross thread boundaries as plain {code, message} and are rebuilt with fromWire().

export interface WireError {
  code: string
  message: string
}

interface ErrorKind {
  status: number
  retriable: boolean
  message: string
}

// The catalogue: code → status, retriable, default message. Add new codes here only.
const KINDS = {
  invalid_type: { status: 400, retriable: false, message: 'type must match [a-z0-9_-]{1,32}' },
  invalid_id: { status: 400, retriable: false, message: 'id must match [A-Za-z0-9_.:-]{1,128}' },
  invalid_key: { status: 400, retriable: false, message: 'key must be "type:id" with type [a-z0-9_-]{1,32} and id [A-Za-z0-9_.:-]{1,128}' },
  invalid_delta: { status: 400, retriable: false, message: 'by must be an integer between -(2^53-1) and 2^53-1' },
  value_out_of_range: { status: 400, retriable: false, message: 'the increment would take the value outside ±(2^53-1); nothing was applied' },
  malformed_json: { status: 400, retriable: false, message: 'body is not valid JSON' },
  invalid_body: { status: 400, retriable: false, message: 'body does not have the expected shape' },
  too_many_keys: { status: 400, retriable: false, message: 'too many keys in one query' },
  invalid_idempotency_key: { status: 400, retriable: false, message: 'Idempotency-Key must be 1 to 128 printable ASCII characters' },
  invalid_client_id: { status: 400, retriable: false, message: 'clientId must match [A-Za-z0-9_.:-]{1,64}' },
  malformed_frame: { status: 400, retriable: false, message: 'frame could not be decoded' },
  invalid_seq: { status: 400, retriable: false, message: 'seq must be an integer between 0 and 2^32-1' },
  too_many_ops: { status: 400, retriable: false, message: 'too many ops in one frame' },
  payload_too_large: { status: 413, retriable: false, message: 'body is larger than the configured limit' },
  not_found: { status: 404, retriable: false, message: 'no such route' },
  method_not_allowed: { status: 405, retriable: false, message: 'method not allowed on this route' },
  invalid_actor: { status: 400, retriable: false, message: 'actor must match [A-Za-z0-9_.:-]{1,128}' },
  invalid_user_id: { status: 400, retriable: false, message: 'user_id must match [A-Za-z0-9_.:-]{1,128}' },
  unauthorized: { status: 401, retriable: false, message: 'an API key is required' },
  forbidden: { status: 403, retriable: false, message: 'this API key may not do this' },
  rate_limited: { status: 429, retriable: true, message: 'too many likes from this user; retry after the time given' },
  overloaded: { status: 503, retriable: true, message: 'too much work in flight; retry later' },
  not_ready: { status: 503, retriable: true, message: 'the node is still recovering' },
  shutting_down: { status: 503, retriable: true, message: 'the node is shutting down' },
  storage_unavailable: { status: 503, retriable: true, message: 'the log is not accepting writes' },
  partition_moving: { status: 503, retriable: true, message: 'this counter\'s partition is moving between nodes; retry shortly' },
  peer_unavailable: { status: 503, retriable: true, message: 'the node that owns this counter cannot be reached; retry' },
  fenced: { status: 409, retriable: false, message: 'a newer owner (higher epoch) has written this partition; this node must stop writing it' },
  internal: { status: 500, retriable: true, message: 'internal error' },
  partitions_mismatch: { status: 500, retriable: false, message: 'PARTITIONS differs from the value the stored data was written with' },
  // Feature data structures (actors/features/): construction, arguments, encoded state.
  invalid_option: { status: 500, retriable: false, message: 'an option has an invalid value' },
  invalid_argument: { status: 400, retriable: false, message: 'an argument has an invalid value' },
  corrupt_state: { status: 500, retriable: false, message: 'encoded state could not be decoded' },
  // The Redis-protocol front (src/front/resp.ts maps every code to a Redis error reply).
  protocol_error: { status: 400, retriable: false, message: 'the Redis protocol stream could not be read' },
  unknown_command: { status: 400, retriable: false, message: 'unknown command' },
  wrong_arity: { status: 400, retriable: false, message: 'wrong number of arguments' },
  syntax_error: { status: 400, retriable: false, message: 'syntax error' },
  wrong_type: { status: 400, retriable: false, message: 'counterd keys hold counters; this command works on another kind of value' },
  auth_not_configured: { status: 400, retriable: false, message: 'AUTH called without any password configured' },
  wrong_password: { status: 400, retriable: false, message: 'invalid username-password pair or user is disabled' },
  unsupported_protocol: { status: 400, retriable: false, message: 'unsupported protocol version' },
  // Ingested events (src/core/ingest-event.ts): the reasons a message goes to the dead-letter topic.
  invalid_event: { status: 400, retriable: false, message: 'the event does not have the expected shape' },
  invalid_event_id: { status: 400, retriable: false, message: 'event_id must be 1 to 128 printable ASCII characters or a non-negative integer' }
} satisfies Record<string, ErrorKind>

export type ErrorCode = keyof typeof KINDS

/** Every code, in a fixed order (metrics keep one slot per code). */
export const ERROR_CODES = Object.keys(KINDS) as ErrorCode[]

export class CounterdError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly retriable: boolean

  constructor (code: ErrorCode, message?: string) {
    const kind: ErrorKind = KINDS[code]
    super(message ?? kind.message)
    this.name = 'CounterdError'
    this.code = code
    this.status = kind.status
    this.retriable = kind.retriable
  }

  toWire (): WireError {
    return { code: this.code, message: this.message }
  }

  /** The JSON body every HTTP error reply carries. */
  toJSON (): { error: WireError } {
    return { error: this.toWire() }
  }
}

export function isErrorCode (code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(KINDS, code)
}

/** Rebuilds an error that crossed a thread or process boundary; unknown codes become `internal`. */
export function fromWire (wire: WireError): CounterdError {
  return isErrorCode(wire.code) ? new CounterdError(wire.code, wire.message) : new CounterdError('internal', wire.message)
}

/** Any thrown value as a CounterdError (unexpected ones become `internal`, keeping the message). */
export function asCounterdError (err: unknown): CounterdError {
  if (err instanceof CounterdError) return err
  if (err !== null && typeof err === 'object' && 'code' in err && 'message' in err &&
      typeof (err as WireError).code === 'string' && isErrorCode((err as WireError).code)) {
    return fromWire(err as WireError)
  }
  return new CounterdError('internal', err instanceof Error ? err.message : String(err))
}
