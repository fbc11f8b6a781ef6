import type { KeyObject } from 'node:crypto'
import { jwtVerify, errors, type JWTPayload, type ProtectedHeaderParameters } from 'jose'
import type { LiveKeyset } from '../keys/keystore.js'

/** Largest token /v1/verify looks at (SPEC section 3). */
export const MAX_TOKEN_BYTES = 32 * 1024

export type Verification =
  | { valid: true; header: ProtectedHeaderParameters; payload: JWTPayload }
  | { valid: false; code: string; detail: string }

export interface VerifyOptions {
  audience?: string | undefined
  issuer?: string | undefined
  /** Milliseconds since the epoch; the service's clock. */
  now: number
}

const fail = (code: string, detail: string): Verification => ({ valid: false, code, detail })

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

function fromJoseError(error: unknown): Verification {
  if (error instanceof errors.JWTExpired) return fail('expired', 'the token has expired')
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf' || error.claim === 'iat') return fail('not_yet_valid', `the token is not valid yet (${error.claim})`)
    if (error.claim === 'aud') return fail('audience_mismatch', 'the token is not for this audience')
    if (error.claim === 'iss') return fail('issuer_mismatch', 'the token is not from this issuer')
    if (error.claim === 'exp') return fail('missing_claim', 'the token has no valid exp')
    return fail('invalid_claims', `claim ${error.claim} is invalid`)
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
 * Verifies a token against the keys a keyset publishes. Only the algorithm of the
 * published key that the header's kid names is accepted, so `none`, HMAC with a
 * public key as secret, and algorithm swaps all fail. Keys are never taken from
 * the token (`jwk`, `jku`, `x5u`, `x5c` headers are ignored); unknown `crit`
 * members are refused, and `exp` is required.
 */
export async function verifyToken(live: LiveKeyset, token: unknown, options: VerifyOptions): Promise<Verification> {
  if (typeof token !== 'string' || token.length === 0) return fail('malformed', 'token must be a non-empty string')
  if (Buffer.byteLength(token) > MAX_TOKEN_BYTES) return fail('token_too_large', `tokens over ${MAX_TOKEN_BYTES} bytes are refused`)
  const firstDot = token.indexOf('.')
  const header = firstDot > 0 ? readHeader(token.slice(0, firstDot)) : null
  if (!header) return fail('malformed', 'the token is not a well-formed signed JWT')
  const alg = header.alg
  if (typeof alg !== 'string') return fail('malformed', 'the token header has no alg')

  let candidates: { alg: string; key: KeyObject }[]
  if (header.kid !== undefined) {
    const key = typeof header.kid === 'string' ? live.verifyKeys.get(header.kid) : undefined
    if (!key) return fail('unknown_kid', 'no published key of this keyset has that kid')
    candidates = [key]
  } else {
    candidates = [...live.verifyKeys.values()]
  }
  candidates = candidates.filter((candidate) => candidate.alg === alg)
  if (candidates.length === 0) return fail('alg_not_allowed', 'the token algorithm is not allowed')

  let last: Verification = fail('invalid_signature', 'signature verification failed')
  for (const candidate of candidates) {
    try {
      const { payload, protectedHeader } = await jwtVerify(token, candidate.key, {
        algorithms: [candidate.alg],
        currentDate: new Date(options.now),
        requiredClaims: ['exp'],
        ...(options.audience !== undefined ? { audience: options.audience } : {}),
        ...(options.issuer !== undefined ? { issuer: options.issuer } : {}),
      })
      return { valid: true, header: protectedHeader, payload }
    } catch (error) {
      last = fromJoseError(error)
      if (!last.valid && last.code !== 'invalid_signature') return last
    }
  }
  return last
}
