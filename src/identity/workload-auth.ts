import { decodeJwt, jwtVerify, errors as joseErrors } from 'jose'
import { hashToken } from '../auth/tokens.js'
import type { Clock } from '../clock.js'
import type { Client, Issuer } from '../keys/model.js'
import { LruMap } from '../util/lru.js'
import type { IdentityDirectory } from './directory.js'
import { IssuerKeys, IssuerKeysUnavailable } from './issuer-keys.js'

/**
 * Authentication by a workload token (docs/workload-identity.md): a JWT from a
 * registered issuer, verified against that issuer's keys, that names one live client.
 */

/** Seconds of clock skew allowed on exp, nbf and iat. */
export const SKEW_SECONDS = 60
/** Verified tokens remembered (by SHA-256) until their exp. */
export const CACHE_ENTRIES = 10_000
/** Longest `sub` looked up against the bindings. */
const MAX_SUBJECT = 1024

/**
 * Why a workload token was refused: the `result` label of
 * signet_workload_auth_total (a fixed set, so labels stay bounded).
 */
export const REFUSALS = [
  'malformed', 'unknown_issuer', 'invalid_signature', 'jwks_unavailable', 'audience', 'expired',
  'not_yet_valid', 'lifetime', 'missing_claim', 'no_client', 'ambiguous_client',
] as const
export type WorkloadRefusal = (typeof REFUSALS)[number]

export type WorkloadOutcome =
  | { client: Client; issuer: string; subject: string }
  | { refused: WorkloadRefusal; issuer: string }

interface Verified {
  issuer: string
  /** The issuer as the token was verified under it; a changed issuer verifies again. */
  issuerVersion: string
  subject: string
  /** Accepted until then (ms): exp plus the skew. */
  until: number
}

export interface WorkloadAuthenticatorOptions {
  /** The current issuers and bindings (the keystore's view). */
  directory: () => IdentityDirectory
  clock: Clock
  /** Every answer, accepted or why not, by issuer name ('' when the token names none registered). */
  onResult?: (issuer: string, result: 'accepted' | WorkloadRefusal) => void
  /** A JWK Set fetch failed (issuer name, error); never given any part of a token. */
  onFetchError?: (issuer: string, error: Error) => void
}

/** The claim a jose claim-check error names, for the refusal reason. */
function refusalOf(error: unknown): WorkloadRefusal {
  if (error instanceof IssuerKeysUnavailable) return 'jwks_unavailable'
  if (error instanceof joseErrors.JWTExpired) return 'expired'
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return 'missing_claim'
    if (error.claim === 'aud') return 'audience'
    if (error.claim === 'nbf' || error.claim === 'iat') return 'not_yet_valid'
    return 'missing_claim'
  }
  if (error instanceof joseErrors.JWTInvalid) return 'malformed'
  return 'invalid_signature'
}

const keySourceOf = (issuer: Issuer): string => JSON.stringify([issuer.jwksUri, issuer.jwks, issuer.caCertificate])

export class WorkloadAuthenticator {
  readonly #directory: () => IdentityDirectory
  readonly #clock: Clock
  readonly #onResult: (issuer: string, result: 'accepted' | WorkloadRefusal) => void
  readonly #onFetchError: (issuer: string, error: Error) => void
  readonly #verified = new LruMap<string, Verified>(CACHE_ENTRIES)
  /** Key fetchers by issuer name, with the key source they were made for. */
  readonly #keys = new Map<string, { source: string; keys: IssuerKeys }>()

  constructor(options: WorkloadAuthenticatorOptions) {
    this.#directory = options.directory
    this.#clock = options.clock
    this.#onResult = options.onResult ?? (() => {})
    this.#onFetchError = options.onFetchError ?? (() => {})
  }

  /** The issuer's key fetcher, made anew when its key source changed. */
  #keysOf(issuer: Issuer): IssuerKeys {
    const source = keySourceOf(issuer)
    const known = this.#keys.get(issuer.name)
    if (known?.source === source) return known.keys
    void known?.keys.close()
    const keys = new IssuerKeys({
      source: issuer.jwks ? { jwks: issuer.jwks } : { jwksUri: issuer.jwksUri!, caCertificate: issuer.caCertificate },
      clock: this.#clock,
      onFetchError: (error) => this.#onFetchError(issuer.name, error),
    })
    this.#keys.set(issuer.name, { source, keys })
    return keys
  }

  /**
   * Who a workload token names. A token verified before and not yet expired is
   * answered synchronously from memory, after checking that its issuer is unchanged
   * and that exactly one live client is still bound to its subject (so a revoked
   * client or a deleted issuer is refused at once); any other goes through
   * signature and claim checks. `hash` is the token's hashToken(), when the
   * caller has it already.
   */
  authenticate(token: string, hash: string = hashToken(token)): WorkloadOutcome | Promise<WorkloadOutcome> {
    const known = this.#verified.get(hash)
    if (known) {
      const directory = this.#directory()
      if (known.until > this.#clock.now() && directory.issuerVersion(known.issuer) === known.issuerVersion) {
        return this.#report(this.#bind(directory, known.issuer, known.subject))
      }
      this.#verified.delete(hash)
    }
    return this.#verify(token, hash).then((outcome) => this.#report(outcome))
  }

  #report(outcome: WorkloadOutcome): WorkloadOutcome {
    this.#onResult(outcome.issuer, 'refused' in outcome ? outcome.refused : 'accepted')
    return outcome
  }

  #bind(directory: IdentityDirectory, issuer: string, subject: string): WorkloadOutcome {
    const binding = directory.bind(issuer, subject)
    return 'client' in binding ? { client: binding.client, issuer, subject } : { refused: binding.refused, issuer }
  }

  async #verify(token: string, hash: string): Promise<WorkloadOutcome> {
    let iss: unknown
    try {
      iss = decodeJwt(token).iss
    } catch {
      return { refused: 'malformed', issuer: '' }
    }
    const directory = this.#directory()
    const issuer = typeof iss === 'string' ? directory.issuerByIss(iss) : undefined
    if (!issuer) return { refused: 'unknown_issuer', issuer: '' }
    const refuse = (refused: WorkloadRefusal): WorkloadOutcome => ({ refused, issuer: issuer.name })

    const now = this.#clock.now()
    let payload
    try {
      ;({ payload } = await jwtVerify(token, this.#keysOf(issuer).getKey, {
        issuer: issuer.issuer,
        audience: issuer.audiences,
        // Asymmetric algorithms only: never none, never HMAC (an HS256 token keyed with a public key fails here).
        algorithms: issuer.algorithms,
        clockTolerance: SKEW_SECONDS,
        currentDate: new Date(now),
        requiredClaims: ['exp', 'sub'],
      }))
    } catch (error) {
      return refuse(refusalOf(error))
    }
    const { exp, iat, nbf, sub } = payload
    if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_SUBJECT) return refuse('missing_claim')
    // jose checks iat only against a maximum age; a token from the future is refused here.
    if (iat !== undefined && iat > now / 1000 + SKEW_SECONDS) return refuse('not_yet_valid')
    const start = iat ?? nbf
    if (start === undefined) return refuse('missing_claim')
    if (exp! - start > issuer.maxTokenLifetime) return refuse('lifetime')

    const outcome = this.#bind(directory, issuer.name, sub)
    if ('client' in outcome) {
      this.#verified.set(hash, { issuer: issuer.name, issuerVersion: directory.issuerVersion(issuer.name)!, subject: sub, until: (exp! + SKEW_SECONDS) * 1000 })
    }
    return outcome
  }

  /** Stops the key fetchers' connections. */
  async close(): Promise<void> {
    const all = [...this.#keys.values()]
    this.#keys.clear()
    this.#verified.clear()
    await Promise.all(all.map(({ keys }) => keys.close()))
  }
}
