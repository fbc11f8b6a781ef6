/**
 * The size limit on a token to verify, counted in UTF-8 bytes, as it travels. Both
 * /v1/verify and the client's verifier refuse a longer token before parsing it.
 */
export const MAX_TOKEN_BYTES = 32 * 1024

/** Whether `token` is over MAX_TOKEN_BYTES, without encoding short or very long ones. */
export function isTokenTooLarge(token: string): boolean {
  // A UTF-16 unit is 1 to 3 UTF-8 bytes (a surrogate pair is 4 for 2 units).
  if (token.length > MAX_TOKEN_BYTES) return true
  if (token.length * 3 <= MAX_TOKEN_BYTES) return false
  return Buffer.byteLength(token, 'utf8') > MAX_TOKEN_BYTES
}
