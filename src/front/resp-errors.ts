// How counterd's errors read on the Redis protocol: one table from CounterdError code to the error
// reply a Redis client expects (the prefix clients and scripts match on, then the text). Codes
// not listed answer `ERR <code>: <message>`.
import type { CounterdError, ErrorCode } from '../core/errors'

const REPLIES: Partial<Record<ErrorCode, (e: CounterdError) => string>> = {
  // Redis' own wording where Redis has the same error.
  invalid_delta: () => 'ERR value is not an integer or out of range',
  value_out_of_range: () => 'ERR increment or decrement would overflow',
  syntax_error: () => 'ERR syntax error',
  wrong_type: () => 'WRONGTYPE Operation against a key holding the wrong kind of value',
  auth_not_configured: () => 'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
  wrong_password: () => 'WRONGPASS invalid username-password pair or user is disabled.',
  unsupported_protocol: () => 'NOPROTO unsupported protocol version',
  // Messages already in Redis' form (built where the error is raised).
  protocol_error: (e) => `ERR ${e.message}`,
  unknown_command: (e) => `ERR ${e.message}`,
  wrong_arity: (e) => `ERR ${e.message}`,
  invalid_argument: (e) => `ERR ${e.message}`,
  // counterd's own rules.
  invalid_key: (e) => `ERR ${e.message}`,
  invalid_actor: (e) => `ERR ${e.message}`,
  // Retriable: Redis answers LOADING while it loads its data; TRYAGAIN asks for a later retry.
  not_ready: () => 'LOADING counterd is recovering its data; retry shortly',
  overloaded: (e) => `TRYAGAIN ${e.message}`
}

/** The error reply (without the leading '-' and the CRLF) for an error. */
export function redisError (e: CounterdError): string {
  const f = REPLIES[e.code]
  return f !== undefined ? f(e) : `ERR ${e.code}: ${e.message}`
}
