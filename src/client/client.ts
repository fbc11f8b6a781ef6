import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, request, type Dispatcher } from 'undici'
import { SignetClientError } from './errors.js'
import { httpUrl } from './http-url.js'
import { backoffDelay, isConnectionError, isRetryableStatus, nextDelay, retryAfterMs } from './retry.js'
import { fileToken, fixedToken, isUsableToken, providedToken, type TokenProvider, type TokenSource } from './token-source.js'
import type { Claims, SignBatchItem, SignedToken, SignOptions } from './types.js'

/** Options of {@link SignetClient}. */
export interface SignetClientOptions {
  /** Signet's base URL, e.g. `http://signet:8080` (a path prefix is kept). Default: the `SIGNET_URL` environment variable. */
  url?: string | URL
  /**
   * The client's bearer token (`signet_...`, made with `POST /v1/admin/clients`), or a
   * function returning the current one (sync or async), called once per call.
   * Default: the `SIGNET_CLIENT_TOKEN` environment variable, else the file that `SIGNET_CLIENT_TOKEN_FILE` names. Give `token` or `tokenFile`, not both.
   */
  token?: string | TokenProvider
  /**
   * A file holding the token (e.g. a Kubernetes projected service-account token),
   * read again when it changes: its modification time is checked at most once a second.
   */
  tokenFile?: string
  /** Keyset to sign with when a call names none; Signet's default keyset when unset. */
  keyset?: string
  /** Longest a call may take, retries and waits included, in ms. Default 5000. */
  timeout?: number
  /** At most this many retries after the first attempt. Default: as many as fit before the deadline. */
  retries?: number
  /** Base of the exponential backoff between retries, in ms. Default 100 (then up to 200, 400, 800, 1000, jittered). */
  retryDelay?: number
  /** TLS settings for an https URL: a private CA, and a client certificate for mutual TLS. */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer }
  /** An undici dispatcher to use instead of the client's own keep-alive Agent (then `tls` is ignored). */
  dispatcher?: Dispatcher
}

/**
 * A call's default deadline. It covers a restart of Signet of a few seconds (a new
 * process opens storage and loads its keys), which a call then rides out; a caller
 * that would rather fail fast sets `timeout`.
 */
const DEFAULT_TIMEOUT_MS = 5000
const DEFAULT_RETRY_DELAY_MS = 100
/** No single wait between retries is longer than this. */
const MAX_RETRY_DELAY_MS = 1000
/** The last attempt of a call starts at least this long before its deadline. */
const LAST_ATTEMPT_MS = 100
/** Idle keep-alive sockets are closed after this; Signet (fastify) keeps them for 72 s. */
const KEEP_ALIVE_MS = 10_000

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function baseUrl(url: string | URL | undefined): URL {
  if (url === undefined) throw new TypeError('SignetClient: url is required (or set SIGNET_URL)')
  const parsed = httpUrl(url, 'SignetClient: url')
  if (!parsed.pathname.endsWith('/')) parsed.pathname += '/'
  parsed.search = ''
  parsed.hash = ''
  return parsed
}

function checkMs(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new TypeError(`SignetClient: ${name} must be an integer from ${min} to ${max}`)
  }
  return value
}

/**
 * The token option: exactly one of `token` and `tokenFile`; without either, the
 * SIGNET_CLIENT_TOKEN variable, else SIGNET_CLIENT_TOKEN_FILE (read like tokenFile).
 * Errors never hold the token.
 */
function tokenSource(options: SignetClientOptions): TokenSource {
  if (options.token !== undefined && options.tokenFile !== undefined) throw new TypeError('SignetClient: give token or tokenFile, not both')
  const tokenFile = options.token === undefined ? options.tokenFile ?? tokenFileFromEnv() : options.tokenFile
  if (tokenFile !== undefined) {
    if (typeof tokenFile !== 'string' || tokenFile.length === 0) throw new TypeError('SignetClient: tokenFile must be a file path')
    return fileToken(tokenFile)
  }
  if (typeof options.token === 'function') return providedToken(options.token)
  const token = options.token ?? process.env.SIGNET_CLIENT_TOKEN
  if (token === undefined) throw new TypeError('SignetClient: token or tokenFile is required (or set SIGNET_CLIENT_TOKEN or SIGNET_CLIENT_TOKEN_FILE)')
  if (!isUsableToken(token)) throw new TypeError('SignetClient: token must be a non-empty string without spaces, or a function')
  return fixedToken(token)
}

/** SIGNET_CLIENT_TOKEN_FILE, when SIGNET_CLIENT_TOKEN is not set (the variable wins, as an option would). */
function tokenFileFromEnv(): string | undefined {
  if (process.env.SIGNET_CLIENT_TOKEN !== undefined) return undefined
  const path = process.env.SIGNET_CLIENT_TOKEN_FILE
  return path === undefined || path === '' ? undefined : path
}

function checkSignedToken(value: unknown): value is SignedToken {
  return isPlainObject(value) && typeof value.token === 'string' && typeof value.kid === 'string' && typeof value.exp === 'number'
}

function checkBatchAnswer(value: unknown): boolean {
  return isPlainObject(value) && Array.isArray(value.results) && value.results.every(checkSignedToken)
}

/**
 * A client for application servers that sign through Signet (docs/client.md).
 * It keeps connections alive (undici), gives each call a deadline (5 s by default,
 * retries included), and until then retries, with capped exponential backoff and
 * full jitter, connection errors before an answer and 503 (honouring Retry-After),
 * never a 4xx. Failures throw
 * {@link SignetClientError} with Signet's problem `code`, `status` and `detail`.
 *
 * A retried sign request may have been signed by Signet before the connection
 * dropped; that token was never delivered, so it is only a wasted signature.
 *
 * @example
 * import { SignetClient } from 'signet'
 *
 * const signet = new SignetClient({ url: 'http://signet:8080', tokenFile: '/var/run/secrets/signet/token' })
 * const { token, exp } = await signet.sign({ sub: 'user-42', aud: 'api' }, { ttl: 600 })
 * await signet.close() // at shutdown
 */
export class SignetClient {
  readonly #base: URL
  readonly #token: TokenSource
  readonly #keyset: string | undefined
  readonly #timeout: number
  readonly #retries: number
  readonly #retryDelay: number
  readonly #dispatcher: Dispatcher
  readonly #ownsDispatcher: boolean

  constructor(options: SignetClientOptions = {}) {
    if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new TypeError('SignetClient: options must be an object')
    this.#base = baseUrl(options.url ?? process.env.SIGNET_URL)
    this.#token = tokenSource(options)
    if (options.keyset !== undefined && (typeof options.keyset !== 'string' || options.keyset.length === 0)) {
      throw new TypeError('SignetClient: keyset must be a keyset name')
    }
    this.#keyset = options.keyset
    this.#timeout = checkMs('timeout', options.timeout, DEFAULT_TIMEOUT_MS, 1, 600_000)
    this.#retries = checkMs('retries', options.retries, Infinity, 0, 1_000_000)
    this.#retryDelay = checkMs('retryDelay', options.retryDelay, DEFAULT_RETRY_DELAY_MS, 0, 60_000)
    this.#ownsDispatcher = options.dispatcher === undefined
    this.#dispatcher = options.dispatcher ?? new Agent({
      keepAliveTimeout: KEEP_ALIVE_MS,
      connect: { timeout: this.#timeout, ...options.tls },
    })
  }

  /**
   * Signs `claims` with the keyset's active key (`POST /v1/sign`).
   *
   * @example
   * const { token } = await signet.sign({ sub: 'user-42' }, { ttl: 600, header: { typ: 'at+jwt' } })
   */
  async sign(claims: Claims, options: SignOptions = {}): Promise<SignedToken> {
    if (!isPlainObject(claims)) throw new TypeError('SignetClient.sign: claims must be an object')
    if (!isPlainObject(options)) throw new TypeError('SignetClient.sign: options must be an object')
    const body: Record<string, unknown> = { claims }
    const keyset = options.keyset ?? this.#keyset
    if (keyset !== undefined) body.keyset = keyset
    if (options.ttl !== undefined) body.ttl = options.ttl
    if (options.header !== undefined) body.header = options.header
    return (await this.#post('v1/sign', body, checkSignedToken)) as SignedToken
  }

  /**
   * Signs up to 1000 tokens in one request (`POST /v1/sign/batch`), answered in
   * order. Signet checks every item first: one bad item refuses the whole batch,
   * and the error's `index` names it.
   *
   * @example
   * const results = await signet.signBatch([{ claims: { sub: 'a' } }, { claims: { sub: 'b' }, ttl: 60 }])
   */
  async signBatch(items: SignBatchItem[], options: { keyset?: string } = {}): Promise<SignedToken[]> {
    if (!Array.isArray(items) || items.length === 0) throw new TypeError('SignetClient.signBatch: items must be a non-empty array')
    const body: Record<string, unknown> = { items }
    const keyset = options.keyset ?? this.#keyset
    if (keyset !== undefined) body.keyset = keyset
    const answer = await this.#post('v1/sign/batch', body, checkBatchAnswer)
    return (answer as { results: SignedToken[] }).results
  }

  /** Closes the keep-alive connections (only those of the client's own Agent). */
  async close(): Promise<void> {
    if (this.#ownsDispatcher) await this.#dispatcher.close()
  }

  /**
   * One call: attempts until an answer that is not retryable, the deadline (or the
   * `retries` limit) is reached. Retried: a connection that failed before any answer
   * came, and 503. A connection that breaks off during an answer is not retried.
   */
  async #post(path: string, body: unknown, expected: (answer: unknown) => boolean): Promise<unknown> {
    const url = new URL(path, this.#base)
    const payload = JSON.stringify(body)
    const requestId = randomUUID()
    const deadline = Date.now() + this.#timeout
    const headers = {
      authorization: `Bearer ${await withinDeadline(this.#token(requestId), deadline, requestId)}`,
      'content-type': 'application/json',
      accept: 'application/json, application/problem+json',
      'x-request-id': requestId,
    }
    for (let attempt = 1; ; attempt++) {
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw timeoutError(requestId, attempt - 1)
      let failure: SignetClientError
      let askedDelay: number | null = null
      const signal = AbortSignal.timeout(remaining)
      try {
        const response = await request(url, {
          method: 'POST', headers, body: payload, dispatcher: this.#dispatcher, signal,
          headersTimeout: remaining, bodyTimeout: remaining,
        })
        const text = await readBody(response.body, response.statusCode, signal, requestId, attempt)
        if (response.statusCode === 200) return parseAnswer(text, expected, requestId, attempt)
        failure = problemError(response.statusCode, response.headers['content-type'], text, requestId, attempt)
        if (!isRetryableStatus(response.statusCode)) throw failure
        askedDelay = retryAfterMs(response.headers['retry-after'])
      } catch (error) {
        if (error instanceof SignetClientError) throw error
        if (signal.aborted || isTimeout(error)) throw timeoutError(requestId, attempt, error)
        if (!isConnectionError(error)) {
          throw new SignetClientError({ code: 'request_failed', status: null, detail: 'the request could not be sent', requestId, attempts: attempt }, { cause: error })
        }
        const code = (error as NodeJS.ErrnoException).code ?? 'unknown'
        failure = new SignetClientError({ code: 'connection_error', status: null, detail: `cannot reach Signet (${code})`, requestId, attempts: attempt }, { cause: error })
      }
      if (attempt > this.#retries) throw failure
      const delay = nextDelay(backoffDelay(attempt, this.#retryDelay, MAX_RETRY_DELAY_MS), askedDelay, deadline - Date.now(), LAST_ATTEMPT_MS)
      // No time left for another attempt: waiting would only turn this failure into a timeout.
      if (delay === null) throw failure
      await sleep(delay)
    }
  }
}

/**
 * The body of an answer whose headers came. Once Signet has answered, the request
 * was handled: a connection that breaks off now is reported, not retried.
 */
async function readBody(body: Dispatcher.ResponseData['body'], status: number, signal: AbortSignal, requestId: string, attempts: number): Promise<string> {
  try {
    return await body.text()
  } catch (error) {
    if (signal.aborted || isTimeout(error)) throw timeoutError(requestId, attempts, error)
    throw new SignetClientError({ code: 'connection_error', status, detail: 'the connection broke off during Signet\'s answer', requestId, attempts }, { cause: error })
  }
}

/** A token function that does not answer in time ends the call with a timeout, as a slow Signet would. */
async function withinDeadline<T>(work: Promise<T>, deadline: number, requestId: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(timeoutError(requestId, 0)), Math.max(0, deadline - Date.now()))
  })
  try {
    return await Promise.race([work, late])
  } finally {
    clearTimeout(timer)
  }
}

function isTimeout(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  const name = (error as Error | undefined)?.name
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || name === 'TimeoutError'
}

function timeoutError(requestId: string, attempts: number, cause?: unknown): SignetClientError {
  return new SignetClientError({ code: 'timeout', status: null, detail: 'Signet did not answer in time', requestId, attempts }, cause === undefined ? undefined : { cause })
}

/** A 200 body of the expected shape; anything else means the URL is not Signet's (or a proxy interfered). */
function parseAnswer(text: string, expected: (answer: unknown) => boolean, requestId: string, attempts: number): unknown {
  let answer: unknown
  try {
    answer = JSON.parse(text)
  } catch {
    answer = undefined
  }
  if (answer === undefined || !expected(answer)) {
    throw new SignetClientError({ code: 'invalid_response', status: 200, detail: 'Signet answered 200 with an unexpected body', requestId, attempts })
  }
  return answer
}

/** The error for a non-200 answer: Signet's problem members when the body is one. */
function problemError(status: number, contentType: string | string[] | undefined, text: string, requestId: string, attempts: number): SignetClientError {
  const type = Array.isArray(contentType) ? contentType[0] : contentType
  let problem: Record<string, unknown> = {}
  if (type !== undefined && /json/i.test(type)) {
    try {
      const parsed: unknown = JSON.parse(text)
      if (isPlainObject(parsed)) problem = parsed
    } catch {
      // Not a problem body after all (a proxy's page): reported as http_error below.
    }
  }
  const str = (value: unknown): string | undefined => (typeof value === 'string' && value.length > 0 ? value : undefined)
  return new SignetClientError({
    code: str(problem.code) ?? 'http_error',
    status,
    detail: str(problem.detail) ?? `Signet answered HTTP ${status} without a problem body`,
    title: str(problem.title),
    type: str(problem.type),
    index: typeof problem.index === 'number' ? problem.index : undefined,
    requestId,
    attempts,
  })
}
