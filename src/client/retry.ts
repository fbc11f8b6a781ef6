/**
 * When and how long SignetClient waits before trying again. Only failures where
 * the request surely did not get a verdict from a healthy Signet are retried:
 * connection errors before any answer, and 503. A 4xx is an answer about the
 * request itself and would fail the same way again.
 *
 * How many times is not fixed: a call retries until its deadline (the client's
 * `timeout`), so a restart of Signet shorter than the deadline is ridden out.
 */

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
 * Delay before retry number `retry` (1-based): exponential from `baseMs`, capped
 * at `maxMs`, with "full jitter" (uniform between 0 and that ceiling) so clients
 * that failed together do not come back together. See
 * https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
 */
export function backoffDelay(retry: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(retry - 1, 30))
  return Math.round(random() * ceiling)
}

/** Milliseconds asked by a Retry-After header in seconds (RFC 9110 section 10.2.3; dates are ignored), or null. */
export function retryAfterMs(header: string | string[] | undefined): number | null {
  const value = Array.isArray(header) ? header[0] : header
  if (value === undefined || !/^\d{1,6}$/.test(value.trim())) return null
  return Number(value.trim()) * 1000
}

/**
 * How long to wait before the next attempt, or null to give up now. `remainingMs`
 * is what is left of the call's deadline. A Retry-After from Signet is honoured
 * (never retried sooner); when it does not fit in the deadline the call gives up at
 * once. A backoff that would overshoot is shortened so that one last attempt still
 * starts `lastAttemptMs` before the deadline: the moment a restart ends is never
 * slept through.
 */
export function nextDelay(backoffMs: number, retryAfter: number | null, remainingMs: number, lastAttemptMs: number): number | null {
  const latest = remainingMs - lastAttemptMs
  if (latest <= 0) return null
  if (retryAfter === null) return Math.min(backoffMs, latest)
  return retryAfter < latest ? Math.min(Math.max(retryAfter, backoffMs), latest) : null
}
