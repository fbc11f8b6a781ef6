import { createPublicKey, type KeyObject } from 'node:crypto'
import { calculateJwkThumbprint } from 'jose'
import { algSpec, type Alg } from './algorithms.js'

/** The public members a JWK Set may carry for a signing key (docs/api.md, JWK Sets). */
export interface PublicJwk {
  kty: 'RSA' | 'EC' | 'OKP'
  kid: string
  use: 'sig'
  alg: Alg
  n?: string
  e?: string
  crv?: string
  x?: string
  y?: string
  x5c?: string[]
  'x5t#S256'?: string
}

const PUBLIC_MEMBERS = { RSA: ['n', 'e'], EC: ['crv', 'x', 'y'], OKP: ['crv', 'x'] } as const

/** Only the public members of `key` as a JWK, whatever kind of KeyObject is passed. */
function publicMembers(key: KeyObject): Record<string, string> {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key
  const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>
  const kty = jwk.kty as keyof typeof PUBLIC_MEMBERS
  const members: Record<string, string> = { kty }
  for (const name of PUBLIC_MEMBERS[kty] ?? []) {
    const value = jwk[name]
    if (typeof value === 'string') members[name] = value
  }
  return members
}

/** RFC 7638 thumbprint (SHA-256, base64url) of the public key: Signet's kid. */
export async function thumbprint(key: KeyObject): Promise<string> {
  return calculateJwkThumbprint(publicMembers(key) as never, 'sha256')
}

/** The public JWK of `key` with its kid, `use: "sig"` and `alg`. */
export async function toPublicJwk(key: KeyObject, alg: Alg): Promise<PublicJwk> {
  const members = publicMembers(key)
  const spec = algSpec(alg)
  if (members.kty !== spec.kty || (spec.crv && members.crv !== spec.crv)) {
    throw new TypeError(`key does not fit ${alg}`)
  }
  const kid = await thumbprint(key)
  return { kty: spec.kty, kid, use: 'sig', alg, ...members } as PublicJwk
}
