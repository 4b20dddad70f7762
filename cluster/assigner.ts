// TEMPORARY STAND-IN — the real cluster/assigner.ts (consistent hashing over `hashring` with
// virtual nodes and a load bound) is written on another branch. On merge, take that file and
// drop this one: cluster/membership.ts only relies on the signature below.
//
// This stand-in is deterministic and balanced but moves many partitions on a join or leave:
// partition p belongs to the (p mod n)-th member id in sorted order.

export function assignPartitions (memberIds: readonly string[], partitions: number, options?: { vnodes?: number, maxLoadFactor?: number }): string[] {
  void options
  const ids = [...new Set(memberIds)].sort()
  if (ids.length === 0) throw new RangeError('assignPartitions needs at least one member')
  if (!Number.isSafeInteger(partitions) || partitions < 1) throw new RangeError('partitions must be a positive integer')
  const owners: string[] = []
  for (let p = 0; p < partitions; p++) owners.push(ids[p % ids.length])
  return owners
}
