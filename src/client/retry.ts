/**
 * When and how long SignetClient waits before trying again. Only failures where
 * the request surely did not get a verdict from a healthy Signet are retried:
 * connection errors and 503. A 4xx is an answer about the request itself and
 * would fail the same way again.
 */

/** Most retries a call may make after its first attempt. */
export const MAX_RETRIES = 3

/** Socket-level failures: the connection was refused, dropped or never made. */
const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH',
  'ENOTFOUND', 'EAI_AGAIN', // a container whose name does not resolve yet
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT',
])

/** True for an error thrown by undici when no HTTP answer came because of the connection. */
export function isConnectionError(error: unknown): boolean {
  let current: unknown = error
  // undici wraps some socket errors; look down the cause chain a few levels.
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as NodeJS.ErrnoException).code
    if (code !== undefined && CONNECTION_ERROR_CODES.has(code)) return true
    current = (current as Error & { cause?: unknown }).cause
  }
  return false
}

/** Statuses worth another try: the service is restarting, sealed for a moment or overloaded. */
export function isRetryableStatus(status: number): boolean {
  return status === 503
}

/**
 * Delay before retry number `retry` (1-based): exponential from `baseMs`, with
 * "equal jitter" (half fixed, half random) so clients that failed together do not
 * come back together, capped at `maxMs`.
 */
export function backoffDelay(retry: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** (retry - 1))
  return Math.round(ceiling / 2 + random() * (ceiling / 2))
}

/** Milliseconds asked by a Retry-After header in seconds (dates are ignored), or null. */
export function retryAfterMs(header: string | string[] | undefined): number | null {
  const value = Array.isArray(header) ? header[0] : header
  if (value === undefined || !/^\d{1,6}$/.test(value.trim())) return null
  return Number(value.trim()) * 1000
}
