// counterd's TypeScript client: typed HTTP calls for the whole API (CounterdClient) and an
// exactly-once stream of increments over the WebSocket (CounterStream). README "Client".
export { CounterdClient, type ClientOptions, type CounterValue, type HistoryReply, type IncrementOptions, type LikeResult, type Quota, type ReplicaValue, type TopEntry } from './http'
export { CounterStream, type StreamOptions, type StreamStats } from './stream'
export { CounterdClientError, RETRIABLE_CODES } from './errors'
