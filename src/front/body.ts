// Reading and failing HTTP requests: the body up to the configured limit, JSON parsing, and the
// error reply every route uses.
import { CounterdError } from '../core/errors'
import type { FrontContext } from './context'
import { replyError, type Abortable } from './replies'
import type { HttpResponse } from './uws'

/**
 * Answers a request with an error, counts it and logs it: a client's mistake (4xx) or work shed
 * (503) is routine, so debug and without a stack; only a fault of the node (500) is an error.
 */
export function failRequest (ctx: FrontContext, res: HttpResponse, state: Abortable, err: CounterdError): void {
  ctx.metrics.countError('http', err.code)
  if (err.status === 500) ctx.logger.error({ err }, 'request failed')
  else if (ctx.logger.isLevelEnabled('debug')) ctx.logger.debug({ status: err.status, code: err.code, reason: err.message }, 'request refused')
  replyError(res, state, err, ctx.config.retryAfterSeconds)
}

/** Reads a request body up to `limit` bytes; `done` gets null after a 413 was sent. */
export function readBody (ctx: FrontContext, res: HttpResponse, state: Abortable, contentLength: string, done: (body: Buffer | null) => void, limit = ctx.config.maxBodyBytes): void {
  const declared = contentLength === '' ? 0 : Number(contentLength)
  const tooLarge = (): void => {
    failRequest(ctx, res, state, new CounterdError('payload_too_large', `body is larger than ${limit} bytes`))
    done(null)
  }
  if (declared > limit) { tooLarge(); return }
  let first: Buffer | null = null
  let chunks: Buffer[] | null = null
  let size = 0
  let over = false
  res.onData((chunk, isLast) => {
    if (over) return
    size += chunk.byteLength
    if (size > limit) { over = true; tooLarge(); return }
    // uWS reuses the chunk's memory after this call: copy what we keep.
    if (isLast && first === null) { done(Buffer.from(new Uint8Array(chunk))); return }
    const copy = Buffer.from(new Uint8Array(chunk))
    if (first === null) first = copy
    else (chunks ??= [first]).push(copy)
    if (isLast) done(chunks === null ? first : Buffer.concat(chunks))
  })
}

export function parseJsonBody (body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'))
  } catch {
    throw new CounterdError('malformed_json')
  }
}

/** Reads a JSON body (size limit, then JSON.parse) and hands the parsed value on; errors are answered. */
export function readJsonBody (ctx: FrontContext, res: HttpResponse, state: Abortable, contentLength: string, use: (parsed: unknown) => void): void {
  readBody(ctx, res, state, contentLength, (body) => {
    if (body === null) return
    let parsed: unknown
    try { parsed = parseJsonBody(body) } catch (err) { failRequest(ctx, res, state, err as CounterdError); return }
    use(parsed)
  })
}
