// Writing replies on uWS responses: a response may be answered late (after the actor host
// replied), so every reply checks that the client has not gone and corks its writes.
import { CounterdError } from '../core/errors'
import { observeAnswer } from './metrics'
import type { HttpResponse } from './uws'

const STATUS_LINES: Record<number, string> = {
  200: '200 OK',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  413: '413 Payload Too Large',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable'
}

/** Set by the onAborted handler every route installs before any asynchronous step. */
export interface Abortable { aborted: boolean }

export function replyJson (res: HttpResponse, state: Abortable, status: number, body: string, headers?: Record<string, string>, close = false): void {
  if (state.aborted) return
  state.aborted = true // answered: later replies for this request are dropped
  observeAnswer(res, status)
  res.cork(() => {
    res.writeStatus(STATUS_LINES[status] ?? `${status} Unknown`)
    res.writeHeader('content-type', 'application/json')
    if (headers !== undefined) for (const k in headers) res.writeHeader(k, headers[k])
    res.end(body, close)
  })
}

/** 204: a write applied (durable per the ack mode), no body (`Prefer: return=minimal`). */
export function replyNoContent (res: HttpResponse, state: Abortable): void {
  if (state.aborted) return
  state.aborted = true
  observeAnswer(res, 204)
  res.cork(() => {
    res.writeStatus('204 No Content')
    res.endWithoutBody()
  })
}

export function replyError (res: HttpResponse, state: Abortable, err: CounterdError, retryAfterSeconds: number, extraHeaders?: Record<string, string>): void {
  const headers: Record<string, string> = { ...extraHeaders }
  if (err.status === 503 || err.status === 429) headers['retry-after'] = String(retryAfterSeconds)
  // An oversized body is not read to its end, so the connection cannot be reused.
  replyJson(res, state, err.status, JSON.stringify(err.toJSON()), headers, err.status === 413)
}
