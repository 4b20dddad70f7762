// The JSON stream format: {"seq":17,"ops":[["post","123",1],["video","9",5,"user-42"]]}; the delta
// may be left out ("[type, id]" means +1); a fourth element names the actor (unique counts, samples). Acked {"seq":17,"ok":true} or {"seq":17,"error":{...}}.
import { CounterdError } from './errors'
import { jsonIdString } from './json-ids'
import { fnv1a32, isValidId, isValidType } from './keys'
import { isValidDelta, type FrameOps } from './frame-ops'

export const MAX_SEQ = 0xffffffff

/**
 * Parses and validates a whole text frame into `out`; returns null or the error to ack with. Keys
 * start with `prefix` (a namespace's, src/core/namespaces.ts; '' none).
 */
export function decodeJsonFrame (text: string, out: FrameOps, prefix = ''): CounterdError | null {
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
    const [typeV, idV, by = 1, actorV] = op as unknown[]
    // Strings are the common case: checked inline; anything else goes through the shared rule.
    const type = typeof typeV === 'string' && isValidType(typeV) ? typeV : jsonIdString(typeV, 'type', `op ${i}: type`)
    if (type instanceof CounterdError) return type
    const id = typeof idV === 'string' && isValidId(idV) ? idV : jsonIdString(idV, 'id', `op ${i}: id`)
    if (id instanceof CounterdError) return id
    if (!isValidDelta(by)) return new CounterdError('invalid_delta', `op ${i}: delta must be an integer between -(2^53-1) and 2^53-1`)
    let actor: string | null = null
    if (actorV !== undefined) {
      const a = jsonIdString(actorV, 'actor', `op ${i}: actor`)
      if (a instanceof CounterdError) return a
      actor = a
    }
    const key = prefix + type + ':' + id
    out.keys[i] = key
    out.actors[i] = actor
    out.delta[i] = by
    out.hash[i] = fnv1a32(key)
  }
  out.n = ops.length
  return null
}
