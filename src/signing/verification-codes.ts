/**
 * Why a token did not verify: the one vocabulary of `POST /v1/verify` (its `code`
 * when `valid` is false) and of the client library's `VerificationError`. The same
 * bad token gets the same code from both, since both run the checks of
 * src/signing/verify.ts in the same order (docs/api.md lists the codes too).
 */
export const VERIFICATION_CODES = [
  'malformed',
  'token_too_large',
  'alg_not_allowed',
  'unknown_kid',
  'unsupported_crit',
  'invalid_signature',
  'expired',
  'not_yet_valid',
  'audience_mismatch',
  'issuer_mismatch',
  'missing_claim',
  'invalid_claims',
] as const

export type VerificationCode = (typeof VERIFICATION_CODES)[number]

/** What each code means, one line each. */
export const VERIFICATION_CODE_MEANINGS: Readonly<Record<VerificationCode, string>> = {
  malformed: 'not a compact JWS with a JSON header naming its alg, or a payload that is not a JSON object',
  token_too_large: 'over 32 KiB (UTF-8 bytes); refused before any parsing',
  alg_not_allowed: 'an algorithm that is not allowed: none, HMAC, or not the one of the published key its kid names',
  unknown_kid: 'no published key has the kid (unknown, revoked, or of another keyset)',
  unsupported_crit: 'a critical header (crit) the verifier does not understand',
  invalid_signature: 'the signature does not verify with the published key',
  expired: 'exp has passed',
  not_yet_valid: 'nbf is in the future, or nbf or iat is not a number',
  audience_mismatch: 'aud is not the audience asked for',
  issuer_mismatch: 'iss is not the issuer asked for',
  missing_claim: 'a required claim is absent (exp always is required)',
  invalid_claims: 'another claim check failed (typ, a claim of the wrong type)',
}
