import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'

/** Every bearer token starts with this, so secret scanners can find leaked ones. */
export const TOKEN_PREFIX = 'signet_'

/** A new client token: the prefix and 256 random bits, base64url. */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url')
}

/**
 * The stored form of a token: SHA-256, hex. Tokens carry 256 random bits, so a
 * fast hash is enough; there is nothing to brute-force.
 */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

/** Compares two token hashes in constant time. */
export function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex')
  const right = Buffer.from(b, 'hex')
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right)
}
