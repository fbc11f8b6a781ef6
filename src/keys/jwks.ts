import { createHash } from 'node:crypto'
import type { PublicJwk } from '../crypto/jwk.js'
import { PUBLISHED_STATES, type KeyRecord } from './model.js'

/**
 * JWK Set rendering: which keys a keyset publishes, how each looks, and the
 * served document (bytes and strong ETag) the keystore computes once per change.
 */

/** A JWK Set as served: bytes computed once per change, and their strong ETag. */
export interface JwksDocument {
  body: Buffer
  etag: string
}

/** The keys of one keyset its JWK Set publishes, in the order it lists them. */
export function publishedKeys(keys: readonly KeyRecord[]): KeyRecord[] {
  return orderForJwks(keys.filter((key) => PUBLISHED_STATES.includes(key.state)))
}

/** Active key first, then pending, then retired, newest first within each. */
function orderForJwks(keys: KeyRecord[]): KeyRecord[] {
  const rank = { active: 0, pending: 1, retired: 2, destroyed: 3, revoked: 3 } as const
  return [...keys].sort((a, b) => rank[a.state] - rank[b.state] || b.createdAt - a.createdAt || a.kid.localeCompare(b.kid))
}

/** The public JWK as published: never a private member, x5c only when asked. */
export function publishedJwk(key: KeyRecord, withCertificate: boolean): PublicJwk {
  const { kty, kid, use, alg, n, e, crv, x, y } = key.publicJwk
  const jwk: PublicJwk = { kty, kid, use, alg }
  if (n !== undefined) Object.assign(jwk, { n, e })
  if (crv !== undefined) jwk.crv = crv
  if (x !== undefined) jwk.x = x
  if (y !== undefined) jwk.y = y
  if (withCertificate && key.certificate) {
    jwk.x5c = [key.certificate.toString('base64')]
    jwk['x5t#S256'] = createHash('sha256').update(key.certificate).digest('base64url')
  }
  return jwk
}

/** The JWK Set of `published` (as publishedKeys orders them) as served bytes with their ETag. */
export function jwksDocument(published: KeyRecord[], withCertificates: boolean): JwksDocument {
  const body = Buffer.from(JSON.stringify({ keys: published.map((key) => publishedJwk(key, withCertificates)) }))
  return { body, etag: `"${createHash('sha256').update(body).digest('base64url')}"` }
}
