// The JSON stream format: {"seq":17,"ops":[["post","123",1],["video","9",5,"user-42"]]}; the delta
// may be left out ("[type, id]" means +1); a fourth element names the actor (unique counts, samples). Acked {"seq":17,"ok":true} or {"seq":17,"error":{...}}.
import { CounterdError } from './errors'
import { fnv1a32, isValidId, isValidType } from './keys'
import { isValidDelta, type FrameOps } from './frame-ops'

export const MAX_SEQ = 0xffffffff

/** Parses and validates a whole text frame into `out`; returns null or the error to ack with. */
export function decodeJsonFrame (text: string, out: FrameOps): CounterdError | null {
  out.n = 0
  out.seq = -1
  let frame: unknown
  try {
    frame = JSON.parse(text)
  } catch {
    return new CounterdError('malformed_json', 'frame is not valid JSON')
  }
  if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) {
    return new CounterdError('malformed_frame', 'frame must be an object {"seq":n,"ops":[...]}')
  }
  const { seq, ops } = frame as { seq?: unknown, ops?: unknown }
  if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 0 || seq > MAX_SEQ) {
    return new CounterdError('invalid_seq')
  }
  out.seq = seq
  if (!Array.isArray(ops) || ops.length === 0) return new CounterdError('malformed_frame', 'ops must be a non-empty array')
  if (ops.length > out.maxOps) return new CounterdError('too_many_ops', `frame has ${ops.length} ops; at most ${out.maxOps} are allowed`)
  for (let i = 0; i < ops.length; i++) {
    const op: unknown = ops[i]
    if (!Array.isArray(op) || op.length < 2 || op.length > 4) {
      return new CounterdError('malformed_frame', `op ${i} must be [type, id], [type, id, delta] or [type, id, delta, actor]`)
    }
    const [type, id, by = 1, actor] = op as unknown[]
    if (typeof type !== 'string' || !isValidType(type)) return new CounterdError('invalid_type', `op ${i}: type must match [a-z0-9_-]{1,32}`)
    if (typeof id !== 'string' || !isValidId(id)) return new CounterdError('invalid_id', `op ${i}: id must match [A-Za-z0-9_.:-]{1,128}`)
    if (!isValidDelta(by)) return new CounterdError('invalid_delta', `op ${i}: delta must be an integer between -(2^53-1) and 2^53-1`)
    if (actor !== undefined && (typeof actor !== 'string' || !isValidId(actor))) return new CounterdError('invalid_actor', `op ${i}: actor must match [A-Za-z0-9_.:-]{1,128}`)
    const key = type + ':' + id
    out.keys[i] = key
    out.actors[i] = actor === undefined ? null : actor
    out.delta[i] = by
    out.hash[i] = fnv1a32(key)
  }
  out.n = ops.length
  return null
}
