// The slice of autocannon's API the benchmark uses (the package ships no type definitions).
declare module 'autocannon' {
  interface Request {
    method?: string
    path?: string
    body?: string | Buffer
    headers?: Record<string, string>
    setupRequest?: (req: Request, context: Record<string, unknown>) => Request
    onResponse?: (status: number, body: string, context: Record<string, unknown>) => void
  }
  interface Histogram {
    average: number
    mean: number
    stddev: number
    min: number
    max: number
    total: number
    p50: number
    p90: number
    p99: number
    p99_9?: number
    [k: string]: number | undefined
  }
  interface Options {
    url: string
    connections?: number
    pipelining?: number
    duration?: number
    amount?: number
    timeout?: number
    workers?: number
    method?: string
    headers?: Record<string, string>
    body?: string
    requests?: Request[]
    title?: string
    bailout?: number
  }
  interface Result {
    title?: string
    url: string
    requests: Histogram
    latency: Histogram
    throughput: Histogram
    errors: number
    timeouts: number
    mismatches: number
    non2xx: number
    resets: number
    duration: number
    start: Date
    finish: Date
    '1xx': number
    '2xx': number
    '3xx': number
    '4xx': number
    '5xx': number
    statusCodeStats?: Record<string, { count: number }>
  }
  interface Instance extends PromiseLike<Result> {
    stop: () => void
    on: (event: string, fn: (...args: unknown[]) => void) => void
  }
  function autocannon (opts: Options): Instance
  function autocannon (opts: Options, cb: (err: Error | null, result: Result) => void): Instance
  export = autocannon
}
