// What the ring looks like at one generation: its members and the owner of every partition. The
// group leader computes it (assigner.ts) and every member adopts it (membership.ts); a shard
// thread turns it into routes (ring-routing.ts).

/** One node of the ring, as it announces itself when it joins. */
export interface MemberInfo {
  /** Stable node id (the advertised URL unless NODE_ID is set): placement hashes it. */
  id: string
  /** ADVERTISE_URL: where clients reach this node's HTTP API. */
  url: string
  /** Host the other nodes open peer links to, and one peer port per shard thread. */
  peerHost: string
  peerPorts: number[]
}

export interface RingView {
  cluster: string
  generation: number
  /** Sorted by id. */
  members: MemberInfo[]
  /** Owner member id of each partition. */
  owners: string[]
  /**
   * Members that left with SIGTERM and may still hold partitions until their release completes
   * (membership.ts marks them in Redis before leaving). Filled by each member when it adopts the
   * view, not by the leader; absent: none.
   */
  leaving?: string[]
}
