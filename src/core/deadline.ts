import { CounterdError } from './errors'

/** Runs fn, failing with a retriable storage_unavailable error if it takes longer than `ms`. */
export async function withDeadline<T> (ms: number, what: string, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new CounterdError('storage_unavailable', `${what} within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([fn(), deadline])
  } finally {
    clearTimeout(timer)
  }
}
