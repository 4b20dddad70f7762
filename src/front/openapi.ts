// The HTTP API as an OpenAPI 3.1 document, served at GET /openapi.json. It is the contract the
// tests hold the running node to (test/openapi.test.ts validates the document, then checks real
// answers of every route against it), so a route or a reply shape changed here must change there.
import { ERROR_CODES } from '../core/errors'
import { scopeOf } from './auth'

type Json = Record<string, unknown>

const TYPE_PATTERN = '^[a-z0-9_-]{1,32}$'
const ID_PATTERN = '^[A-Za-z0-9_.:-]{1,128}$'
const MAX_SAFE = Number.MAX_SAFE_INTEGER

const ref = (kind: 'schemas' | 'parameters' | 'responses', name: string): Json => ({ $ref: `#/components/${kind}/${name}` })
const json = (schema: Json): Json => ({ 'application/json': { schema } })
const ok = (description: string, schema: Json): Json => ({ description, content: json(schema) })
const object = (properties: Record<string, Json>, required: string[] = Object.keys(properties)): Json =>
  ({ type: 'object', properties, required, additionalProperties: false })
const body = (schema: Json, required = true): Json => ({ required, content: json(schema) })
const query = (name: string, description: string, schema: Json, required = false): Json => ({ name, in: 'query', required, description, schema })

const Value: Json = { type: 'integer', minimum: -MAX_SAFE, maximum: MAX_SAFE, description: 'exact within ±(2^53−1)' }
const Type: Json = { type: 'string', pattern: TYPE_PATTERN }
const Id: Json = { type: 'string', pattern: ID_PATTERN }
// Seed clients send numeric ids (`"item_id": 456` ≡ `"456"`): a JSON body may give an id or a
// type as a non-negative integer, which names the same counter as its decimal string.
const IdInBody: Json = { oneOf: [Id, { type: 'integer', minimum: 0, maximum: MAX_SAFE }] }
const TypeInBody: Json = { oneOf: [Type, { type: 'integer', minimum: 0, maximum: MAX_SAFE }] }
const CounterKey: Json = { type: 'string', pattern: '^[a-z0-9_-]{1,32}:[A-Za-z0-9_.:-]{1,128}$', description: '"type:id"' }
const Retry = { 'Retry-After': { description: 'seconds to wait before retrying', schema: { type: 'string', pattern: '^[0-9]+$' } } }

const errors = (...statuses: number[]): Json => Object.fromEntries(statuses.map(s => [String(s), ref('responses', `E${s}`)]))
// Every counter route can be refused for load or readiness.
const ROUTE_ERRORS = [503]

const COUNTER_PARAMS: Json[] = [ref('parameters', 'type'), ref('parameters', 'id')]

function build (): Json {
  const ValueReply = object({ type: Type, id: Id, value: Value })
  const LikeBody = { ...object({ user_id: IdInBody, item_id: IdInBody, item_type: TypeInBody }), additionalProperties: true }
  const paths: Json = {
    '/v1/counter/{type}/{id}/increment': {
      parameters: COUNTER_PARAMS,
      post: {
        operationId: 'increment',
        summary: 'Add `by` (default 1, may be negative) to a counter; the reply carries the value right after it',
        parameters: [
          { name: 'Idempotency-Key', in: 'header', required: false, description: 'a retry with the same key on the same counter is applied once, within DEDUP_WINDOW_MS', schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,128}$' } },
          { name: 'Prefer', in: 'header', required: false, description: 'return=minimal: answered 204 without the value (a hot counter\'s increment may then go to one of its sub-counters)', schema: { type: 'string' } }
        ],
        requestBody: body({ type: 'object', properties: { by: { ...Value, default: 1 }, actor: { ...IdInBody, description: 'who incremented: feeds the unique count and the sample' } } }, false),
        responses: { 200: ok('applied (and with ACK_MODE=durable, durable)', ValueReply), 204: { description: 'applied (and with ACK_MODE=durable, durable); sent with Prefer: return=minimal' }, ...errors(400, 413, ...ROUTE_ERRORS) }
      }
    },
    '/v1/counter/{type}/{id}': {
      parameters: COUNTER_PARAMS,
      get: {
        operationId: 'getCounter',
        summary: 'A counter\'s value (0 for a counter never touched)',
        parameters: [
          query('replicas', 'true: add the PN-counter pair of every replica', { type: 'string', enum: ['true', 'false'] }),
          query('shards', 'true: add how a hot counter is split (null when it is not) and the value of each part', { type: 'string', enum: ['true', 'false'] })
        ],
        responses: {
          200: ok('the value', {
            ...object({
              type: Type,
              id: Id,
              value: Value,
              replicas: { type: 'array', items: object({ replica: { type: 'string' }, p: { type: 'integer', minimum: 0 }, n: { type: 'integer', minimum: 0 } }) },
              split: { oneOf: [{ type: 'null' }, object({ ways: { type: 'integer', minimum: 2 }, state: { type: 'string', enum: ['split', 'merging'] } })] },
              shards: { type: 'array', items: object({ key: { type: 'string' }, partition: { type: 'integer', minimum: 0 }, value: { type: 'integer' } }) }
            }, ['type', 'id', 'value'])
          }),
          ...errors(400, ...ROUTE_ERRORS)
        }
      },
      delete: {
        operationId: 'resetCounter',
        summary: 'Reset to 0, ordered with the increments around it',
        responses: { 200: ok('reset', object({ type: Type, id: Id, value: { const: 0 } })), ...errors(400, ...ROUTE_ERRORS) }
      }
    },
    '/v1/counter/{type}/{id}/unique': {
      parameters: COUNTER_PARAMS,
      get: {
        operationId: 'uniqueActors',
        summary: 'Distinct actors of the counter\'s increments (HyperLogLog, exact up to 128)',
        responses: { 200: ok('the estimate', object({ type: Type, id: Id, unique: { type: 'integer', minimum: 0 } })), ...errors(400, ...ROUTE_ERRORS) }
      }
    },
    '/v1/counter/{type}/{id}/rate': {
      parameters: COUNTER_PARAMS,
      get: {
        operationId: 'rate',
        summary: 'Increments per second over about the last minute, exponentially decayed',
        responses: { 200: ok('the rate', object({ type: Type, id: Id, rate_per_sec: { type: 'number', minimum: 0 } })), ...errors(400, ...ROUTE_ERRORS) }
      }
    },
    '/v1/counter/{type}/{id}/sample': {
      parameters: COUNTER_PARAMS,
      get: {
        operationId: 'sample',
        summary: 'A reservoir sample of the actors of the counter\'s increments',
        parameters: [query('n', 'how many, 1..SAMPLE_SIZE (default SAMPLE_SIZE)', { type: 'string', pattern: '^[0-9]+$' })],
        responses: { 200: ok('the sample', object({ type: Type, id: Id, sample: { type: 'array', items: Id } })), ...errors(400, ...ROUTE_ERRORS) }
      }
    },
    '/v1/counter/{type}/{id}/history': {
      parameters: COUNTER_PARAMS,
      get: {
        operationId: 'history',
        summary: 'Net change per UTC minute, hour or day over the minutes starting in [from, to)',
        description: 'With CLICKHOUSE_URL the series comes from ClickHouse. Without it (embedded or cluster storage) each partition keeps per-minute buckets for the last HISTORY_RETENTION_MINUTES (default 1440): a range reaching further back answers what is kept. 404 not_found when no history is kept (HISTORY_RETENTION_MINUTES=0 without ClickHouse).',
        parameters: [
          query('from', 'ms since the Unix epoch or ISO 8601 (default: to − 1 hour)', { type: 'string' }),
          query('to', 'ms since the Unix epoch or ISO 8601 (default: now)', { type: 'string' }),
          query('step', 'bucket size', { type: 'string', enum: ['minute', 'hour', 'day'], default: 'minute' })
        ],
        responses: {
          200: ok('buckets with a net change, oldest first', object({
            type: Type,
            id: Id,
            step: { type: 'string', enum: ['minute', 'hour', 'day'] },
            from: { type: 'integer', minimum: 0 },
            to: { type: 'integer', minimum: 0 },
            points: { type: 'array', items: object({ ts: { type: 'integer', minimum: 0 }, value: Value }) }
          })),
          ...errors(400, 404, ...ROUTE_ERRORS)
        }
      }
    },
    '/v1/counters/query': {
      post: {
        operationId: 'queryCounters',
        summary: 'Many counters in one request (at most MAX_QUERY_KEYS keys; duplicates answered once)',
        requestBody: body(object({ keys: { type: 'array', items: CounterKey } })),
        responses: { 200: ok('the values by key', object({ values: { type: 'object', additionalProperties: Value } })), ...errors(400, 413, ...ROUTE_ERRORS) }
      }
    },
    '/v1/like': likeOperation('like', 'A user likes an item: counted once per user'),
    '/v1/unlike': likeOperation('unlike', 'A user takes a like back: undoes only a real like'),
    '/v1/count': {
      get: {
        operationId: 'likeCount',
        summary: 'An item\'s like count',
        parameters: [query('item_type', 'the item\'s type', Type, true), query('item_id', 'the item\'s id', Id, true)],
        responses: { 200: ok('the count', object({ item_id: Id, item_type: Type, count: { type: 'integer', minimum: 0 } })), ...errors(400, ...ROUTE_ERRORS) }
      }
    },
    '/v1/has-liked': {
      get: {
        operationId: 'hasLiked',
        summary: 'Whether a user likes an item now',
        parameters: [query('user_id', 'the user', Id, true), query('item_type', 'the item\'s type', Type, true), query('item_id', 'the item\'s id', Id, true)],
        responses: { 200: ok('the answer', object({ user_id: Id, item_id: Id, item_type: Type, liked: { type: 'boolean' } })), ...errors(400, ...ROUTE_ERRORS) }
      }
    },
    '/v1/counts': {
      post: {
        operationId: 'likeCounts',
        summary: 'Like counts of many items (at most MAX_QUERY_KEYS)',
        requestBody: body(object({ items: { type: 'array', items: { ...object({ item_type: TypeInBody, item_id: IdInBody }), additionalProperties: true } } })),
        responses: { 200: ok('counts by "type:id"', object({ counts: { type: 'object', additionalProperties: { type: 'integer', minimum: 0 } } })), ...errors(400, 413, ...ROUTE_ERRORS) }
      }
    },
    '/v1/top': {
      get: {
        operationId: 'top',
        summary: 'The counters rising fastest, merged across partitions',
        parameters: [query('type', 'only counters of this type', Type), query('k', 'how many, 1..1000 (default 10)', { type: 'string', pattern: '^[0-9]+$' })],
        responses: {
          200: ok('fastest first', object({
            type: { oneOf: [Type, { type: 'null' }] },
            k: { type: 'integer', minimum: 1, maximum: 1000 },
            top: { type: 'array', items: object({ key: CounterKey, type: Type, id: Id, rate_per_sec: { type: 'number', minimum: 0 } }) }
          })),
          ...errors(400, ...ROUTE_ERRORS)
        }
      }
    },
    '/v1/quota': {
      get: {
        operationId: 'quota',
        summary: 'A user\'s like quota (takes nothing)',
        parameters: [query('user_id', 'the user', Id, true)],
        responses: {
          200: ok('the bucket', object({ user_id: Id, limit_per_minute: { type: 'integer', minimum: 1 }, remaining: { type: 'integer', minimum: 0 }, retry_after_ms: { type: 'integer', minimum: 0 } })),
          ...errors(400, ...ROUTE_ERRORS)
        }
      }
    },
    '/v1/replication/state': {
      get: {
        operationId: 'replicationState',
        summary: 'This replica\'s totals as WAL-framed log records, for another region\'s merge',
        responses: { 200: { description: 'log records (docs/cluster-storage.md)', content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } }, ...errors(...ROUTE_ERRORS) }
      }
    },
    '/v1/replication/merge': {
      post: {
        operationId: 'replicationMerge',
        summary: 'Merge another replica\'s totals (the larger total per replica wins); acknowledged once logged',
        requestBody: { required: true, content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } },
        responses: { 200: ok('merged', object({ records: { type: 'integer', minimum: 0 }, countersChanged: { type: 'integer', minimum: 0 } })), ...errors(400, 413, ...ROUTE_ERRORS) }
      }
    },
    '/v1/stream': {
      get: {
        operationId: 'stream',
        summary: 'WebSocket stream of increment frames (docs/stream-protocol.md)',
        parameters: [query('clientId', 'frames resent with the same (clientId, seq) count once', { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$' })],
        responses: { 101: { description: 'switched to the WebSocket protocol' }, ...errors(400) }
      }
    },
    '/v1/cluster': {
      get: {
        operationId: 'cluster',
        summary: 'The ring of nodes as this node sees it: members, their URLs, the partitions each owns',
        description: 'With cluster storage (KAFKA_BROKERS and REDIS_URL) the ring of CLUSTER_NAME; 503 not_ready before this node has its place in it. An embedded node answers as a ring of one: cluster null, generation 0, itself owning every partition.',
        responses: {
          200: ok('the ring', object({
            cluster: { type: ['string', 'null'] },
            generation: { type: 'integer', minimum: 0 },
            self: { type: 'string' },
            members: { type: 'array', items: object({ id: { type: 'string' }, url: { type: 'string' }, partitions: { type: 'array', items: { type: 'integer', minimum: 0 } } }) }
          })),
          ...errors(503)
        }
      }
    },
    '/health': {
      get: { operationId: 'health', summary: 'Liveness', responses: { 200: ok('the process runs', object({ status: { const: 'ok' } })) } }
    },
    '/ready': {
      get: {
        operationId: 'ready',
        summary: 'Readiness: recovered, serving, and the log accepts writes',
        responses: {
          200: ok('ready', {
            ...object({ status: { const: 'ready' }, storage: { const: 'ok' }, history: { type: 'string' }, historyPendingRows: { type: 'integer', minimum: 0 } }, ['status', 'storage'])
          }),
          503: {
            description: 'recovering, draining, or storage failing',
            headers: Retry,
            content: json({
              ...object({
                error: ref('schemas', 'ErrorBody'),
                recovering: { type: 'boolean' },
                draining: { type: 'boolean' },
                storage: { type: 'string' },
                history: { type: 'string' },
                historyPendingRows: { type: 'integer', minimum: 0 }
              }, ['error'])
            })
          }
        }
      }
    },
    '/metrics': {
      get: {
        operationId: 'metrics',
        summary: 'Prometheus text exposition of the whole node',
        responses: { 200: { description: 'metrics', content: { 'text/plain': { schema: { type: 'string' } } } } }
      }
    },
    '/': {
      get: { operationId: 'livePage', summary: 'A live page of the node: rates, p99, in flight, shards, counters rising, a lookup box', responses: { 200: { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } } } }
    },
    '/openapi.json': {
      get: { operationId: 'openapi', summary: 'This document', responses: { 200: ok('OpenAPI 3.1', { type: 'object', required: ['openapi', 'paths'] }) } }
    }
  }

  // With AUTH_FILE every route but the open ones needs a key with its scope (README "Security").
  for (const [p, item] of Object.entries(paths) as Array<[string, Json]>) {
    for (const [method, op] of Object.entries(item) as Array<[string, Json]>) {
      if (method === 'parameters') continue
      const scope = scopeOf(`${method === 'delete' ? 'DELETE' : method.toUpperCase()} ${p.replace(/\{([a-z]+)\}/g, ':$1')}`, false)
      if (scope === null) continue
      op.security = [{ bearer: [scope] }]
      op.description = `Needs a key with the ${scope} scope when the node has AUTH_FILE${scope === 'admin' && p === '/metrics' ? ' (not with METRICS_OPEN=true)' : ''}. ` +
        (scope === 'admin' ? 'Admin routes are node-wide (every namespace). ' : 'Counters, likes and quotas are those of the key\'s namespace; keys in replies are spelled without it. ') +
        'With KEY_OPS_PER_SECOND each request costs the key one op: over the rate, 429 rate_limited with Retry-After, nothing applied.'
      Object.assign(op.responses as Json, errors(401, 403, 429))
    }
  }

  const errorResponse = (status: number, description: string, headers?: Json): Json =>
    ({ description, ...(headers === undefined ? {} : { headers }), content: json(ref('schemas', 'Error')) })

  return {
    openapi: '3.1.0',
    info: {
      title: 'counterd',
      version: '1',
      description: 'Counters for engagement statistics. A request answered with an error changed nothing. ' +
        'Every error body is {"error":{"code","message"}}; clients match on `code`.'
    },
    jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
    paths,
    components: {
      parameters: {
        type: { name: 'type', in: 'path', required: true, description: 'the counter\'s type', schema: Type },
        id: { name: 'id', in: 'path', required: true, description: 'the counter\'s id', schema: Id }
      },
      schemas: {
        ErrorBody: object({ code: { type: 'string', enum: [...ERROR_CODES] }, message: { type: 'string' } }),
        Error: object({ error: ref('schemas', 'ErrorBody') })
      },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An API key from AUTH_FILE: Authorization: Bearer <key> (the stream also takes ?token=<key>). The key\'s namespace holds the counters it reads and writes.' }
      },
      responses: {
        E400: errorResponse(400, 'a bad argument, id, body or header (see the error code); nothing was applied'),
        E401: errorResponse(401, 'unauthorized: no API key, or an unknown one'),
        E403: errorResponse(403, 'forbidden: the key lacks the scope this route needs'),
        E404: errorResponse(404, 'not_found'),
        E413: errorResponse(413, 'payload_too_large: the body is over MAX_BODY_BYTES; the connection is closed'),
        E429: errorResponse(429, 'rate_limited: a user over LIKES_PER_MINUTE, or an API key over KEY_OPS_PER_SECOND; nothing was applied', Retry),
        E503: errorResponse(503, 'overloaded, not_ready, shutting_down or storage_unavailable', Retry)
      }
    }
  }

  function likeOperation (operationId: string, summary: string): Json {
    return {
      post: {
        operationId,
        summary,
        parameters: [{ name: 'Idempotency-Key', in: 'header', required: false, description: 'a retry with the same key costs no quota', schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,128}$' } }],
        requestBody: body(LikeBody),
        responses: {
          200: ok('the item\'s count after it', object({ user_id: Id, item_id: Id, item_type: Type, liked: { type: 'boolean' }, count: { type: 'integer', minimum: 0 } })),
          ...errors(400, 413, 429, ...ROUTE_ERRORS)
        }
      }
    }
  }
}

/** The document, built once. */
export const OPENAPI: Readonly<Json> = Object.freeze(build())
/** Its serialized form, served as is. */
export const OPENAPI_JSON = JSON.stringify(OPENAPI)
