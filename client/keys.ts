// The API's key rules (README "HTTP API v1"), checked before anything is sent so a bad key fails
// at the call that made it rather than as a whole frame's error ack.
const TYPE_RE = /^[a-z0-9_-]{1,32}$/
const ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/

export function isValidType (type: string): boolean {
  return TYPE_RE.test(type)
}

export function isValidId (id: string): boolean {
  return ID_RE.test(id)
}
