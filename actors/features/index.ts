// The feature data structures of the partition actors (docs/features.md). Each has a compact
// encode()/static decode() for snapshots and checkpoints and throws CounterdError on bad input.
export { HyperLogLog, type HyperLogLogOptions, HLL_REGISTERS, HLL_DENSE_SIZE, DEFAULT_EXACT_LIMIT } from './hll'
export { LikeSet, type LikeSetOptions, type LikeSetStats } from './like-set'
export { BloomFilter, type BloomFilterOptions } from './bloom'
export { Reservoir, type ReservoirOptions } from './reservoir'
export { TokenBuckets, type TokenBucketOptions } from './token-bucket'
export { PNCounter, type PNCounterOptions, type PNRecord } from './pn-counter'
export { murmur64, murmur64String, REDIS_HLL_SEED } from './murmur64'
export { Prng } from './prng'
