// What the client throws and emits: the server's error code and message, the HTTP status when
// there was one, and whether repeating the request may succeed. Retry logic reads only `retriable`.

/** Server codes that mean "not now" (the server's catalogue marks the same ones retriable). */
export const RETRIABLE_CODES: ReadonlySet<string> = new Set([
  'rate_limited', 'overloaded', 'not_ready', 'shutting_down', 'storage_unavailable', 'internal',
  'partition_moving', 'peer_unavailable', // a ring of nodes: the counter's partition is changing owner, or its owner is unreachable
  'network' // the client's own: no answer at all (refused, reset, timed out)
])

export class CounterdClientError extends Error {
  readonly code: string
  readonly status: number | null
  readonly retriable: boolean

  constructor (code: string, message: string = code, status: number | null = null) {
    super(message)
    this.name = 'CounterdClientError'
    this.code = code
    this.status = status
    this.retriable = RETRIABLE_CODES.has(code)
  }

  /** From an error reply `{"error":{"code","message"}}` (anything else becomes `bad_reply`). */
  static fromReply (status: number, body: unknown): CounterdClientError {
    const e = (body as { error?: { code?: unknown, message?: unknown } } | null)?.error
    if (typeof e?.code !== 'string') return new CounterdClientError('bad_reply', `HTTP ${status} without an error body`, status)
    return new CounterdClientError(e.code, typeof e.message === 'string' ? e.message : e.code, status)
  }
}
