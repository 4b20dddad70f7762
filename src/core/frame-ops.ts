// Decoded increments of one frame, in reusable typed arrays (no objects per op). A frame is
// decoded and validated whole before any op reaches the router, so a bad frame touches no state.
export class FrameOps {
  n = 0
  seq = 0
  readonly hash: Uint32Array // FNV-1a of "type:id": the partition is hash mod P
  readonly delta: Float64Array
  // Binary frames: byte offsets of type and id inside the frame. JSON frames: key strings.
  readonly typeStart: Int32Array
  readonly typeLen: Int32Array
  readonly idStart: Int32Array
  readonly idLen: Int32Array
  readonly actorStart: Int32Array // -1: the op names no actor
  readonly actorLen: Int32Array
  readonly keys: string[]
  readonly actors: Array<string | null>

  constructor (readonly maxOps: number) {
    this.hash = new Uint32Array(maxOps)
    this.delta = new Float64Array(maxOps)
    this.typeStart = new Int32Array(maxOps)
    this.typeLen = new Int32Array(maxOps)
    this.idStart = new Int32Array(maxOps)
    this.idLen = new Int32Array(maxOps)
    this.actorStart = new Int32Array(maxOps)
    this.actorLen = new Int32Array(maxOps)
    this.keys = new Array(maxOps)
    this.actors = new Array(maxOps)
  }
}

/** Deltas (and values) are signed integers exact to ±(2^53−1). */
export function isValidDelta (n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n)
}
