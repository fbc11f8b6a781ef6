import { jwtVerify, errors, type JWTHeaderParameters, type JWTPayload, type JWTVerifyOptions, type KeyInput } from 'jose'
import { ALGORITHMS } from '../crypto/algorithms.js'
import type { LiveKeyset } from '../keys/keystore.js'
import { isTokenTooLarge, MAX_TOKEN_BYTES } from './token-limit.js'
import type { VerificationCode } from './verification-codes.js'

/** Why a token was refused; `claim` names the claim a claim check failed on. */
export interface VerificationFailure {
  valid: false
  code: VerificationCode
  detail: string
  claim?: string
}

export type Verification =
  | { valid: true; header: JWTHeaderParameters; payload: JWTPayload }
  | VerificationFailure

/** A published key and the one algorithm it verifies. */
export interface PublishedKey {
  alg: string
  key: KeyInput
}

/**
 * Where a token's key is looked up: a keyset's published keys (/v1/verify) or a
 * fetched JWK Set (the client's verifier, which may refetch it for an unknown kid).
 */
export interface KeySource {
  /** The key published under `kid`, or undefined when there is none. */
  byKid(kid: string): PublishedKey | undefined | Promise<PublishedKey | undefined>
  /** The keys published for `alg`, tried in turn for a token without a kid. */
  forAlg(alg: string): PublishedKey[] | Promise<PublishedKey[]>
}

export interface JwtChecks {
  /** Algorithms a token may name at all; any other is refused before a key is looked up. */
  algorithms: readonly string[]
  /** jose's claim checks (audience, issuer, currentDate, clockTolerance, typ, requiredClaims); `exp` is always required. */
  claims?: Omit<JWTVerifyOptions, 'algorithms' | 'crit'>
}

const fail = (code: VerificationCode, detail: string, claim?: string): VerificationFailure =>
  claim === undefined ? { valid: false, code, detail } : { valid: false, code, detail, claim }

/** Decodes the protected header without trusting it; null when it is not a JSON object. */
function readHeader(encoded: string): Record<string, unknown> | null {
  if (!/^[A-Za-z0-9_-]+$/.test(encoded)) return null
  try {
    const header = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'))
    return typeof header === 'object' && header !== null && !Array.isArray(header) ? header : null
  } catch {
    return null
  }
}

/** The code of a failure jose reports once a key was chosen: crit, signature, then claims. */
function fromJoseError(error: unknown): VerificationFailure {
  if (error instanceof errors.JWTExpired) return fail('expired', 'the token has expired', 'exp')
  if (error instanceof errors.JWTClaimValidationFailed) {
    const { claim } = error
    if (claim === 'aud') return fail('audience_mismatch', 'the token is not for this audience', claim)
    if (claim === 'iss') return fail('issuer_mismatch', 'the token is not from this issuer', claim)
    if (claim === 'exp') return fail('missing_claim', 'the token has no valid exp', claim)
    if (error.reason === 'missing') return fail('missing_claim', `the token has no ${claim} claim`, claim)
    if (claim === 'nbf' || claim === 'iat') return fail('not_yet_valid', `the token is not valid yet (${claim})`, claim)
    return fail('invalid_claims', `claim ${claim} is invalid`, claim)
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return fail('invalid_signature', 'signature verification failed')
  if (error instanceof errors.JOSEAlgNotAllowed) return fail('alg_not_allowed', 'the token algorithm is not allowed')
  // jose throws JOSENotSupported for an unrecognised crit member, JWSInvalid for a malformed crit.
  if ((error instanceof errors.JWSInvalid || error instanceof errors.JOSENotSupported) && /crit|Extension Header/i.test(error.message)) {
    return fail('unsupported_crit', 'the token has a critical header this service does not understand')
  }
  return fail('malformed', 'the token is not a well-formed signed JWT')
}

/**
 * The claims a token must carry: `exp` always, then `others`. A verifier of many
 * tokens builds its list once with this (client/verifier.ts); verifyJwt adds exp itself
 * to a list without it.
 */
export function requiredClaimsWith(others: readonly string[] = []): string[] {
  return [...new Set(['exp', ...others])]
}

const EXP_ONLY = requiredClaimsWith()

/**
 * The checks of a compact JWS, in the one order that both /v1/verify and the client's
 * verifier follow, so that they refuse the same token with the same code:
 * size, header, algorithm, kid, the kid's algorithm, then (jose) crit, signature
 * and claims. Only the algorithm of the published key that the header's kid names
 * is accepted, so `none`, HMAC with a public key as secret, and algorithm swaps all
 * fail. Keys are never taken from the token (`jwk`, `jku`, `x5u`, `x5c` headers are
 * ignored); unknown `crit` members are refused, and `exp` is required. A token
 * without a kid is tried against every key published for its algorithm.
 *
 * Errors thrown by `keys` (the client's JWK Set fetch) are not caught here.
 */
export async function verifyJwt(token: unknown, keys: KeySource, checks: JwtChecks): Promise<Verification> {
  if (typeof token !== 'string' || token.length === 0) return fail('malformed', 'token must be a non-empty string')
  if (isTokenTooLarge(token)) return fail('token_too_large', `tokens over ${MAX_TOKEN_BYTES} bytes are refused`)
  const firstDot = token.indexOf('.')
  const header = firstDot > 0 ? readHeader(token.slice(0, firstDot)) : null
  if (!header) return fail('malformed', 'the token is not a well-formed signed JWT')
  const alg = header.alg
  if (typeof alg !== 'string') return fail('malformed', 'the token header has no alg')
  if (!checks.algorithms.includes(alg)) return fail('alg_not_allowed', 'the token algorithm is not allowed')

  let candidates: PublishedKey[]
  if (header.kid !== undefined) {
    const key = typeof header.kid === 'string' ? await keys.byKid(header.kid) : undefined
    if (!key) return fail('unknown_kid', 'no published key has that kid')
    candidates = key.alg === alg ? [key] : []
  } else {
    candidates = await keys.forAlg(alg)
  }
  if (candidates.length === 0) return fail('alg_not_allowed', 'the token algorithm is not allowed')

  const given = checks.claims?.requiredClaims
  const requiredClaims = given === undefined ? EXP_ONLY : given.includes('exp') ? given : requiredClaimsWith(given)
  let last: Verification = fail('invalid_signature', 'signature verification failed')
  for (const candidate of candidates) {
    try {
      const { payload, protectedHeader } = await jwtVerify(token, candidate.key, { ...checks.claims, requiredClaims, algorithms: [candidate.alg] })
      return { valid: true, header: protectedHeader, payload }
    } catch (error) {
      last = fromJoseError(error)
      if (last.code !== 'invalid_signature') return last
    }
  }
  return last
}

export interface VerifyOptions {
  audience?: string | undefined
  issuer?: string | undefined
  /** Milliseconds since the epoch; the service's clock. */
  now: number
}

/** /v1/verify: a token against the keys a keyset publishes (docs/api.md). */
export async function verifyToken(live: LiveKeyset, token: unknown, options: VerifyOptions): Promise<Verification> {
  const keys: KeySource = {
    byKid: (kid) => live.verifyKeys.get(kid),
    forAlg: (alg) => [...live.verifyKeys.values()].filter((key) => key.alg === alg),
  }
  const verification = await verifyJwt(token, keys, {
    algorithms: ALGORITHMS,
    claims: {
      currentDate: new Date(options.now),
      ...(options.audience !== undefined ? { audience: options.audience } : {}),
      ...(options.issuer !== undefined ? { issuer: options.issuer } : {}),
    },
  })
  if (verification.valid) return verification
  // The answer is { valid, code, detail }: the failing claim is the client library's extra.
  return { valid: false, code: verification.code, detail: verification.detail }
}
