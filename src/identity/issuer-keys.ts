import { createLocalJWKSet, errors as joseErrors, type JWSHeaderParameters, type FlattenedJWSInput } from 'jose'
import type { Agent } from 'undici'
import type { Clock } from '../clock.js'
import type { IssuerJwk } from '../keys/model.js'
import { ISSUER_LIMITS, usableJwk } from './issuer-policy.js'

/**
 * An issuer's verification keys, fetched from its JWK Set endpoint the way a
 * careful verifier does (docs/workload-identity.md):
 *
 * - cached for the endpoint's Cache-Control max-age, bounded to [MIN_MAX_AGE,
 *   MAX_MAX_AGE] seconds (DEFAULT_MAX_AGE without one);
 * - a token whose kid the set lacks triggers a fetch at most once per COOLDOWN, so
 *   a flood of made-up kids costs the issuer at most one request per cooldown;
 *   callers that arrive during a fetch share it;
 * - the last good set is kept while the endpoint fails or answers garbage;
 * - every fetch has a timeout and a size limit, never follows a redirect, and
 *   trusts the issuer's own CA when one is given.
 *
 * jose's createRemoteJWKSet is not used: it drops its keys when a refetch fails
 * (no stale-if-error), ignores Cache-Control, and cannot take a custom CA. Key
 * selection within a set (kid, alg, kty) is still jose's createLocalJWKSet.
 */

export const COOLDOWN_MS = 30_000
export const FETCH_TIMEOUT_MS = 5_000
export const DEFAULT_MAX_AGE = 300
export const MIN_MAX_AGE = 60
export const MAX_MAX_AGE = 86_400

/** The issuer's keys cannot be had: no set was ever fetched, or the token's key is not in it. */
export class IssuerKeysUnavailable extends Error {
  readonly code = 'ERR_SIGNET_JWKS_UNAVAILABLE'
}

type LocalSet = ReturnType<typeof createLocalJWKSet>

export type IssuerKeySource = { jwks: { keys: IssuerJwk[] } } | { jwksUri: string; caCertificate: string | null }

export interface IssuerKeysOptions {
  source: IssuerKeySource
  clock: Clock
  /** A fetch failed; the last good set (if any) stays in use. */
  onFetchError?: (error: Error) => void
  /** How long a fetch may take; FETCH_TIMEOUT_MS by default (tests shorten it). */
  fetchTimeoutMs?: number
}

/** Seconds of Cache-Control max-age, bounded; no-store/no-cache count as the minimum. */
export function cacheSeconds(cacheControl: string | undefined): number {
  if (!cacheControl) return DEFAULT_MAX_AGE
  if (/(^|[\s,])no-(store|cache)\b/i.test(cacheControl)) return MIN_MAX_AGE
  const match = /(?:^|[\s,])max-age\s*=\s*"?(\d{1,10})"?/i.exec(cacheControl)
  const seconds = match ? Number(match[1]) : DEFAULT_MAX_AGE
  return Math.min(MAX_MAX_AGE, Math.max(MIN_MAX_AGE, seconds))
}

/** The usable keys of a fetched document; keys Signet cannot use (private, symmetric, other use) are left out. */
function parseJwks(body: string): { keys: IssuerJwk[] } {
  const document = JSON.parse(body) as { keys?: unknown }
  if (document === null || typeof document !== 'object' || !Array.isArray(document.keys)) throw new Error('the answer is not a JWK Set')
  const keys: IssuerJwk[] = []
  for (const key of document.keys.slice(0, ISSUER_LIMITS.keys)) {
    const result = usableJwk(key)
    if ('jwk' in result) keys.push(result.jwk)
  }
  if (keys.length === 0) throw new Error('the JWK Set holds no usable public signature key')
  return { keys }
}

export class IssuerKeys {
  readonly #clock: Clock
  readonly #uri: string | null
  /** Made at the first fetch: undici is loaded only by a Signet with a URL issuer. */
  #agent: Agent | null = null
  /** Set by close(): a fetch that comes after it makes no new Agent, which nothing would close. */
  #closed = false
  readonly #ca: string | undefined
  readonly #onFetchError: (error: Error) => void
  readonly #timeoutMs: number
  #set: LocalSet | null = null
  #expiresAt = 0
  /** When the last fetch started (-Infinity: never), for the cooldown. */
  #lastAttemptAt = Number.NEGATIVE_INFINITY
  #pending: Promise<void> | null = null
  /** Fetches made, for tests and metrics. */
  fetches = 0

  constructor(options: IssuerKeysOptions) {
    this.#clock = options.clock
    this.#onFetchError = options.onFetchError ?? (() => {})
    this.#timeoutMs = options.fetchTimeoutMs ?? FETCH_TIMEOUT_MS
    if ('jwks' in options.source) {
      this.#uri = null
      this.#ca = undefined
      this.#set = createLocalJWKSet(options.source.jwks as never)
      this.#expiresAt = Number.POSITIVE_INFINITY
    } else {
      this.#uri = options.source.jwksUri
      this.#ca = options.source.caCertificate ?? undefined
    }
  }

  /** The key for a token's protected header (a jose JWTVerifyGetKey). */
  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): ReturnType<LocalSet> => {
    if (this.#uri !== null) {
      if (this.#set === null || this.#clock.now() >= this.#expiresAt) await this.#refresh()
      if (this.#set === null) throw new IssuerKeysUnavailable('the issuer JWK Set is unavailable')
    }
    try {
      return await this.#set!(header, token)
    } catch (error) {
      if (!(error instanceof joseErrors.JWKSNoMatchingKey) || this.#uri === null) throw error
    }
    // A kid the set lacks: the issuer may have rotated. Look again, once per cooldown.
    await this.#refresh()
    return this.#set!(header, token)
  }

  /** Fetches the set unless the cooldown forbids it; concurrent callers share one fetch. */
  #refresh(): Promise<void> {
    if (this.#pending) return this.#pending
    if (this.#clock.now() - this.#lastAttemptAt < COOLDOWN_MS) return Promise.resolve()
    this.#lastAttemptAt = this.#clock.now()
    this.#pending = this.#fetch()
      .catch((error: Error) => this.#onFetchError(error))
      .finally(() => {
        this.#pending = null
      })
    return this.#pending
  }

  async #fetch(): Promise<void> {
    this.fetches++
    const { Agent, request } = await import('undici')
    if (this.#closed) throw new Error('the issuer keys are closed')
    const timeout = this.#timeoutMs
    // A private CA replaces the default roots for this endpoint only.
    this.#agent ??= new Agent({
      connect: { timeout, ...(this.#ca ? { ca: this.#ca } : {}) },
      headersTimeout: timeout,
      bodyTimeout: timeout,
      keepAliveTimeout: 1_000,
    })
    const response = await request(this.#uri!, {
      method: 'GET',
      dispatcher: this.#agent,
      headers: { accept: 'application/jwk-set+json, application/json' },
      signal: AbortSignal.timeout(this.#timeoutMs),
    })
    // A body left unread or cut short is destroyed, which undici reports as an 'error'
    // event; the failure is already reported by the read below, so that event is not an error of its own.
    response.body.on('error', () => {})
    try {
      if (response.statusCode !== 200) throw new Error(`the JWK Set endpoint answered HTTP ${response.statusCode}`)
      const declared = Number(response.headers['content-length'])
      if (declared > ISSUER_LIMITS.jwksBytes) throw new Error(`the JWK Set is larger than ${ISSUER_LIMITS.jwksBytes} bytes`)
      const chunks: Buffer[] = []
      let size = 0
      for await (const chunk of response.body) {
        size += (chunk as Buffer).length
        if (size > ISSUER_LIMITS.jwksBytes) throw new Error(`the JWK Set is larger than ${ISSUER_LIMITS.jwksBytes} bytes`)
        chunks.push(chunk as Buffer)
      }
      const jwks = parseJwks(Buffer.concat(chunks).toString('utf8'))
      const cacheControl = response.headers['cache-control']
      this.#set = createLocalJWKSet(jwks as never)
      this.#expiresAt = this.#clock.now() + cacheSeconds(Array.isArray(cacheControl) ? cacheControl.join(',') : cacheControl) * 1000
    } finally {
      if (!response.body.destroyed) response.body.destroy()
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.#pending?.catch(() => {})
    await this.#agent?.close().catch(() => {})
  }
}
