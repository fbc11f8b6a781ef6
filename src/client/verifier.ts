import { createRemoteJWKSet, customFetch, importJWK, type JSONWebKeySet, type JWTHeaderParameters, type JWTPayload } from 'jose'
import { ALGORITHMS, type Alg } from '../crypto/algorithms.js'
import { requiredClaimsWith, verifyJwt, type KeySource, type PublishedKey } from '../signing/verify.js'
import { VerificationError } from './errors.js'
import { httpUrl } from './http-url.js'

/** Options of {@link createVerifier}. */
export interface VerifierOptions {
  /** The JWK Set to trust, e.g. `http://signet:8080/.well-known/jwks.json` or `.../keysets/{name}/jwks.json`. */
  jwksUrl: string | URL
  /** Accepted `iss` value(s); checked only when given. */
  issuer?: string | string[]
  /** Accepted `aud` value(s); checked only when given. */
  audience?: string | string[]
  /**
   * The algorithm allowlist. Either way a token's `alg` must be the `alg` member of
   * the published key it names (Signet sets `alg` on every key; a key without one is
   * not used), so by default the allowlist follows the keyset. Only Signet's
   * algorithms are accepted: never `none` or an HMAC algorithm.
   */
  algorithms?: readonly Alg[]
  /** Seconds of clock skew allowed when checking `exp` and `nbf`. Default 0. */
  clockTolerance?: number
  /** Expected `typ` header (e.g. `at+jwt`); not checked when unset. */
  typ?: string
  /** Claims that must be present besides `exp`, which always is. */
  requiredClaims?: string[]
  /**
   * Least time between two JWK Set fetches caused by an unknown `kid` (or algorithm),
   * in ms. Default 30000. The first unknown `kid` after a fetch refetches at once, so
   * a key activated by an immediate rotation is found; a flood of made-up kids then
   * costs one fetch per cooldown.
   */
  cooldown?: number
  /**
   * Longest a fetched JWK Set is used, in ms. Default 600000. A shorter
   * `Cache-Control: max-age` from the server wins (never below 1 s), so the
   * verifier refreshes as often as Signet's prepublish period assumes.
   */
  cacheMaxAge?: number
  /** Timeout of one JWK Set fetch, in ms. Default 2000. */
  timeout?: number
  /** Extra headers for the JWK Set request. */
  headers?: Record<string, string>
  /**
   * Stale-if-error (RFC 5861 section 4): how long past its expiry the last good JWK
   * Set is still used while the JWKS endpoint cannot be fetched, in ms. Default
   * 43200000 (12 h); 0 turns it off. Tokens are checked in full as always; only a
   * `kid` the stale set lacks is refused, since finding it needs a successful fetch.
   */
  staleIfErrorMs?: number
  /**
   * Where the verifier reports a JWKS outage: a warning once when it starts using a
   * stale JWK Set, an error once when that passes `staleIfErrorMs`, an info line when
   * the endpoint answers again. A pino logger fits; default `console`; `null` is silent.
   */
  logger?: VerifierLogger | null
}

/** The logging methods the verifier uses, pino-style: `(details, message)`. */
export interface VerifierLogger {
  info(details: object, message: string): void
  warn(details: object, message: string): void
  error(details: object, message: string): void
}

/** A token that verified: its claims and protected header. */
export interface VerifiedToken {
  payload: JWTPayload
  header: JWTHeaderParameters
}

/** What {@link createVerifier} returns. */
export interface Verifier {
  /** Verifies a compact JWS; throws {@link VerificationError} with a `code` saying why it failed. */
  verify(token: string): Promise<VerifiedToken>
  /** Fetches the JWK Set now, whatever the cache and cooldown say. */
  reload(): Promise<void>
  /** How many verifications used a stale JWK Set because its endpoint could not be fetched (see `staleIfErrorMs`). */
  readonly staleVerifications: number
}

/** The server's max-age never makes the verifier fetch more often than this. */
const MIN_REFRESH_MS = 1000
const DEFAULT_STALE_IF_ERROR_MS = 12 * 3600_000

const JWKS_UNAVAILABLE = 'the JWK Set could not be fetched'

/** A fetched JWK Set's keys by kid; keys without a kid serve only tokens without one. */
interface KeyIndex {
  byKid: Map<string, PublishedKey>
  all: PublishedKey[]
}

/**
 * Imports the keys a JWK Set publishes for one of Signet's algorithms (its `alg`
 * member) and for signatures: any other key (no `alg`, HMAC, `use` other than
 * `sig`, `key_ops` without `verify`, unparsable) can verify nothing and is left out.
 */
async function indexKeys(set: JSONWebKeySet): Promise<KeyIndex> {
  const index: KeyIndex = { byKid: new Map(), all: [] }
  await Promise.all(set.keys.map(async (jwk) => {
    if (typeof jwk.alg !== 'string' || !(ALGORITHMS as readonly string[]).includes(jwk.alg)) return
    if (jwk.use !== undefined && jwk.use !== 'sig') return
    if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) return
    const published = await importJWK(jwk, jwk.alg).then((key) => ({ alg: jwk.alg!, key }), () => null)
    if (published === null) return
    index.all.push(published)
    if (typeof jwk.kid === 'string') index.byKid.set(jwk.kid, published)
  }))
  return index
}

function checkDuration(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new TypeError(`createVerifier: ${name} must be a non-negative integer of ms`)
  return value
}

function checkStrings(name: string, value: string | string[] | undefined): string | string[] | undefined {
  if (value === undefined) return undefined
  const list = Array.isArray(value) ? value : [value]
  if (list.length === 0 || !list.every((item) => typeof item === 'string' && item.length > 0)) {
    throw new TypeError(`createVerifier: ${name} must be a non-empty string or a non-empty array of them`)
  }
  return value
}

function checkAlgorithms(value: readonly string[] | undefined): Alg[] | null {
  if (value === undefined) return null
  if (!Array.isArray(value) || value.length === 0) throw new TypeError('createVerifier: algorithms must be a non-empty array')
  for (const alg of value) {
    if (!(ALGORITHMS as readonly string[]).includes(alg)) {
      throw new TypeError(`createVerifier: algorithm ${JSON.stringify(String(alg))} is not one of ${ALGORITHMS.join(', ')}`)
    }
  }
  return [...new Set(value as Alg[])]
}

/** Seconds of `max-age` in a Cache-Control header (0 for no-cache/no-store), or null when it says nothing. */
export function cacheControlMaxAge(header: string | null): number | null {
  if (header === null) return null
  if (/(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)/i.test(header)) return 0
  const match = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?\s*(?:,|$)/i.exec(header)
  return match ? Number(match[1]) : null
}

/**
 * A token verifier for app servers, built on jose's remote JWK Set (docs/client.md).
 *
 * - The JWK Set is cached: for `cacheMaxAge`, or less when Signet's `Cache-Control:
 *   max-age` says so. A token with an unknown `kid` refetches it, at most once per
 *   `cooldown`, so a flood of made-up kids cannot hammer the JWKS endpoint.
 * - While the endpoint fails, the last good set stays in use for `staleIfErrorMs`
 *   past its expiry (RFC 5861 stale-if-error); logged, and counted in `staleVerifications`.
 * - Only allowlisted algorithms verify (see `algorithms`); `none` and HMAC never do.
 * - `exp` is required; `iss` and `aud` are checked when given.
 * - The checks are /v1/verify's own, in the same order (src/signing/verify.ts): a
 *   bad token is refused with the code Signet would answer.
 *
 * @example
 * import { createVerifier } from 'signet'
 *
 * const verifier = createVerifier({ jwksUrl: 'http://signet:8080/.well-known/jwks.json', audience: 'api' })
 * const { payload } = await verifier.verify(token) // throws VerificationError
 */
export function createVerifier(options: VerifierOptions): Verifier {
  if (typeof options !== 'object' || options === null) throw new TypeError('createVerifier: options are required')
  const url = httpUrl(options.jwksUrl, 'createVerifier: jwksUrl')
  const issuer = checkStrings('issuer', options.issuer)
  const audience = checkStrings('audience', options.audience)
  const explicitAlgorithms = checkAlgorithms(options.algorithms)
  const clockTolerance = options.clockTolerance ?? 0
  if (typeof clockTolerance !== 'number' || !Number.isFinite(clockTolerance) || clockTolerance < 0) {
    throw new TypeError('createVerifier: clockTolerance must be a non-negative number of seconds')
  }
  if (options.typ !== undefined && (typeof options.typ !== 'string' || options.typ.length === 0)) throw new TypeError('createVerifier: typ must be a string')
  const requiredClaims = requiredClaimsWith(options.requiredClaims)
  const cooldown = checkDuration('cooldown', options.cooldown, 30_000)
  const cacheMaxAge = checkDuration('cacheMaxAge', options.cacheMaxAge, 600_000)
  const timeout = checkDuration('timeout', options.timeout, 2000)

  const staleIfError = checkDuration('staleIfErrorMs', options.staleIfErrorMs, DEFAULT_STALE_IF_ERROR_MS)
  const logger = options.logger === undefined ? console : options.logger
  if (logger !== null && (typeof logger !== 'object' || ['info', 'warn', 'error'].some((level) => typeof (logger as unknown as Record<string, unknown>)[level] !== 'function'))) {
    throw new TypeError('createVerifier: logger must have info, warn and error methods, or be null')
  }
  // Logged without credentials or query: only where the JWK Set is.
  const logged = { jwksUrl: `${url.origin}${url.pathname}` }

  // The Cache-Control of the last 200 answer, read by load() once jose has parsed its body.
  let answeredLifetime = cacheMaxAge
  const fetchJwks = async (resource: string, init: RequestInit): Promise<Response> => {
    const response = await fetch(resource, init)
    if (response.status === 200) {
      const maxAge = cacheControlMaxAge(response.headers.get('cache-control'))
      answeredLifetime = maxAge === null ? cacheMaxAge : Math.min(cacheMaxAge, Math.max(MIN_REFRESH_MS, maxAge * 1000))
    }
    return response
  }

  // jose fetches (timeout, one fetch shared by concurrent callers, JWK Set checks);
  // keys are chosen from `cached` below, never by jose's own refetching, so that a
  // stale set can still be used while the endpoint fails.
  const remote = createRemoteJWKSet(url, {
    cooldownDuration: Number.MAX_SAFE_INTEGER,
    cacheMaxAge: Number.MAX_SAFE_INTEGER,
    timeoutDuration: timeout,
    headers: options.headers,
    [customFetch]: fetchJwks,
  })

  /** The last good JWK Set's keys, and until when it is fresh. */
  interface Cached {
    index: KeyIndex
    expiresAt: number
  }
  let cached: Cached | null = null

  /** Turns a failed JWK Set fetch (timeout, non-200, not a JWK Set) into jwks_unavailable. */
  const fetching = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work()
    } catch (error) {
      throw new VerificationError('jwks_unavailable', JWKS_UNAVAILABLE, { cause: error })
    }
  }

  // An outage: fetches fail while a stale set is in use. Logged once as it starts,
  // once if it outlasts staleIfErrorMs, and once when it ends.
  let outage: { since: number; staleVerifications: number; refusing: boolean } | null = null
  let staleVerifications = 0

  let loading: Promise<void> | null = null
  /** Fetches the JWK Set; concurrent callers share one fetch. */
  const load = (): Promise<void> => (loading ??= fetching(async () => {
    await remote.reload()
    const index = await indexKeys(remote.jwks() as JSONWebKeySet)
    cached = { index, expiresAt: Date.now() + answeredLifetime }
    if (outage !== null) {
      logger?.info({ ...logged, outageMs: Date.now() - outage.since, staleVerifications: outage.staleVerifications }, 'the JWK Set endpoint answers again; using its fresh JWK Set')
      outage = null
    }
  }).finally(() => { loading = null }))

  // After a failed fetch, verifications do not fetch again for a moment: an
  // unreachable JWKS endpoint is not hammered by every request.
  let failedAt = -Infinity
  const refresh = async (): Promise<void> => {
    if (Date.now() - failedAt < MIN_REFRESH_MS) throw new VerificationError('jwks_unavailable', JWKS_UNAVAILABLE)
    try {
      await load()
    } catch (error) {
      failedAt = Date.now()
      throw error
    }
  }

  /** Refetches for a kid or algorithm the cached set lacks, at most once per cooldown. */
  let unknownRefetchAt = -Infinity
  const unknownKeyRefetch = async (): Promise<boolean> => {
    if (Date.now() - unknownRefetchAt < cooldown) return false
    unknownRefetchAt = Date.now()
    await refresh()
    return true
  }

  /**
   * The JWK Set to choose a key from: fetched on first use and once expired. When
   * the fetch of an expired set fails, the set is used stale up to staleIfErrorMs
   * past its expiry; meanwhile verifications do not wait for the endpoint, and it is
   * tried again in the background at most once a second.
   */
  const currentKeys = async (): Promise<{ set: Cached; stale: boolean }> => {
    if (cached === null) {
      await refresh()
      return { set: cached!, stale: false }
    }
    if (Date.now() < cached.expiresAt) return { set: cached, stale: false }
    const staleUntil = cached.expiresAt + staleIfError
    if (outage === null || Date.now() > staleUntil) {
      try {
        await refresh()
        return { set: cached, stale: false }
      } catch (error) {
        if (!(error instanceof VerificationError) || error.code !== 'jwks_unavailable') throw error
        if (Date.now() > staleUntil) {
          if (outage !== null && !outage.refusing) {
            outage.refusing = true
            logger?.error({ ...logged, staleIfErrorMs: staleIfError, outageMs: Date.now() - outage.since }, 'the JWK Set endpoint has failed for longer than staleIfErrorMs: refusing every token until it answers')
          }
          throw error
        }
        if (outage === null) {
          outage = { since: Date.now(), staleVerifications: 0, refusing: false }
          logger?.warn({ ...logged, staleIfErrorMs: staleIfError, reason: describe(error.cause) }, 'the JWK Set endpoint cannot be fetched: verifying with the last good JWK Set')
        }
      }
    } else {
      refresh().catch(() => { /* still failing: the stale set stays in use */ })
    }
    return { set: cached, stale: true }
  }

  /**
   * Finds a key in the current set; a miss refetches it (at most once per cooldown)
   * and looks again, so a key published since the last fetch is found.
   */
  const lookUp = async <T>(find: (index: KeyIndex) => T | undefined): Promise<T | undefined> => {
    let { set, stale } = await currentKeys()
    let found = find(set.index)
    if (found === undefined && (await unknownKeyRefetch())) {
      ;({ set, stale } = { set: cached!, stale: false })
      found = find(set.index)
    }
    if (found !== undefined && stale) {
      staleVerifications++
      if (outage !== null) outage.staleVerifications++
    }
    return found
  }

  const keys: KeySource = {
    byKid: (kid) => lookUp((index) => index.byKid.get(kid)),
    // A token without a kid: an algorithm the cached set lacks may be a keyset that just changed alg.
    forAlg: async (alg) => (await lookUp((index) => {
      const matching = index.all.filter((key) => key.alg === alg)
      return matching.length > 0 ? matching : undefined
    })) ?? [],
  }

  const checks = {
    algorithms: explicitAlgorithms ?? ALGORITHMS,
    claims: { issuer, audience, clockTolerance, requiredClaims, typ: options.typ },
  }

  return {
    async verify(token: string): Promise<VerifiedToken> {
      // The checks and their codes are /v1/verify's own; a failed JWK Set fetch throws jwks_unavailable.
      const verification = await verifyJwt(token, keys, checks)
      if (!verification.valid) {
        throw new VerificationError(verification.code, verification.detail, verification.claim === undefined ? undefined : { claim: verification.claim })
      }
      return { payload: verification.payload, header: verification.header }
    },
    async reload(): Promise<void> {
      await load()
    },
    get staleVerifications() {
      return staleVerifications
    },
  }
}

/** What went wrong with a fetch, for the outage log line: jose's code and message (they hold no key material). */
function describe(error: unknown): string {
  const cause = error as { code?: unknown; message?: unknown } | undefined
  return [cause?.code, cause?.message].filter((part) => typeof part === 'string').join(': ') || 'unknown'
}
