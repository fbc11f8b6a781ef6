import { randomBytes } from 'node:crypto'
import { encodeHeader, signCompact, type SigningKey, type TokenHeader } from '../crypto/jws.js'
import {
  Forbidden, InvalidRequest, IssuerMismatch, PayloadTooLarge, ReservedClaim, Sealed, TtlTooLong,
} from '../errors.js'
import type { SignedToken } from '../client/types.js'
import type { LiveKeyset } from '../keys/keystore.js'
import type { Client } from '../keys/model.js'
import type { SignItem } from '../schemas/index.js'
import { checkClaimPolicy } from '../auth/claim-policy.js'

/** Largest serialised `claims` object accepted (docs/api.md, POST /v1/sign). */
export const MAX_CLAIMS_BYTES = 16 * 1024
/** Claims the service sets itself. */
const RESERVED = ['iat', 'exp'] as const

/** A sign request checked against every rule, ready to sign. */
export interface PreparedToken {
  header: TokenHeader
  payload: string
  iat: number
  exp: number
  jti: string
}

function allowedKeyset(client: Client, keyset: string): boolean {
  return client.keysets === '*' || client.keysets.includes(keyset)
}

/** Throws 403 unless the client may use the keyset. */
export function checkKeysetAccess(client: Client, keyset: string): void {
  if (!allowedKeyset(client, keyset)) throw new Forbidden(`this client may not use keyset ${keyset}`)
}

/**
 * jti values come from a pool of random bytes refilled 4 KiB at a time: one
 * getrandom call per 256 tokens instead of one per token.
 */
let jtiPool = Buffer.alloc(0)
let jtiOffset = 0
function randomJti(): string {
  if (jtiOffset + 16 > jtiPool.length) {
    jtiPool = randomBytes(4096)
    jtiOffset = 0
  }
  const jti = jtiPool.toString('base64url', jtiOffset, jtiOffset + 16)
  jtiOffset += 16
  return jti
}

/**
 * The encoded default protected header ({ typ: JWT }) of each signer, serialised
 * once; it goes with the signer when a rotation drops it. Other headers (a caller's
 * typ or cty) are encoded each time.
 */
const defaultHeaders = new WeakMap<SigningKey, string>()
function encodedHeader(signer: SigningKey, header: TokenHeader): string {
  if (header.typ !== 'JWT' || header.cty !== undefined) return encodeHeader(signer, header)
  let encoded = defaultHeaders.get(signer)
  if (encoded === undefined) {
    encoded = encodeHeader(signer, header)
    defaultHeaders.set(signer, encoded)
  }
  return encoded
}

/** The token's lifetime: the one asked for (at least 1, by the schema) within the keyset's and the client's maxTtl. */
function checkTtl(live: LiveKeyset, client: Client, ttl: number | undefined): number {
  const ceiling = Math.min(live.keyset.maxTtl, client.maxTtl ?? Infinity)
  if (ttl === undefined) return Math.min(live.keyset.defaultTtl, ceiling)
  if (ttl > ceiling) throw new TtlTooLong(`ttl must not exceed ${ceiling} seconds for this client and keyset`)
  return ttl
}

/** The protected header: typ (JWT unless given) and cty; the schema allows no other member. */
function tokenHeader(header: SignItem['header']): TokenHeader {
  const result: TokenHeader = { typ: header?.typ ?? 'JWT' }
  if (header?.cty !== undefined) result.cty = header.cty
  return result
}

/**
 * A token must say exactly what the caller sent. JSON.parse has already rounded an
 * integer beyond +/-(2^53-1) (RFC 8259 section 6, RFC 7493 section 2.2), so the
 * token would carry another number: refused, naming where it is. The serialised
 * claims are scanned first: such a number prints as 16 or more digits or with an
 * exponent, so most requests skip the walk.
 */
function checkExactNumbers(claims: Record<string, unknown>, serialised: string): void {
  if (!/\d{16}|e\+/.test(serialised)) return
  const pending: [unknown, string][] = [[claims, 'claims']]
  while (pending.length > 0) {
    const [value, path] = pending.pop()!
    if (typeof value === 'number') {
      if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
        throw new InvalidRequest(`${path} is an integer beyond +/-(2^53-1), which a JSON number cannot carry exactly: send it as a string`)
      }
    } else if (Array.isArray(value)) {
      value.forEach((item, index) => pending.push([item, `${path}[${index}]`]))
    } else if (value !== null && typeof value === 'object') {
      for (const [name, item] of Object.entries(value)) pending.push([item, `${path}.${name.slice(0, 64)}`])
    }
  }
}

/** iat and exp are Signet's; the types of sub, iss, jti, nbf and aud are the schema's. */
function refuseReservedClaims(claims: Record<string, unknown>): void {
  for (const name of RESERVED) {
    if (name in claims) throw new ReservedClaim(`${name} is set by Signet and may not be sent`)
  }
}

/**
 * Checks one sign item (already checked against its schema) against the
 * keyset and the client, and builds its payload. `now` is in
 * milliseconds. Nothing is signed yet, so a batch can check every item first.
 */
export function prepareToken(live: LiveKeyset, client: Client, item: SignItem, now: number): PreparedToken {
  const claims: Record<string, unknown> = item.claims
  let serialised: string
  try {
    serialised = JSON.stringify(claims)
  } catch {
    throw new InvalidRequest('claims cannot be serialised')
  }
  if (Buffer.byteLength(serialised) > MAX_CLAIMS_BYTES) throw new PayloadTooLarge(`claims must be at most ${MAX_CLAIMS_BYTES} bytes serialised`)
  checkExactNumbers(claims, serialised)
  refuseReservedClaims(claims)

  const issuer = live.keyset.issuer
  if (issuer !== null && claims.iss !== undefined && claims.iss !== issuer) throw new IssuerMismatch('iss must be the keyset issuer or left out')
  checkClaimPolicy(client, claims, issuer !== null)
  const ttl = checkTtl(live, client, item.ttl)
  const header = tokenHeader(item.header)

  const iat = Math.floor(now / 1000)
  const exp = iat + ttl
  const jti = (claims.jti as string | undefined) ?? randomJti()
  // The payload is the claims as serialised above plus what Signet sets, appended
  // as text: the claims are not serialised a second time.
  const added = [`"iat":${iat}`, `"exp":${exp}`]
  if (issuer !== null && claims.iss === undefined) added.unshift(`"iss":${JSON.stringify(issuer)}`)
  if (claims.jti === undefined) added.push(`"jti":"${jti}"`)
  const payload = serialised === '{}' ? `{${added.join(',')}}` : `${serialised.slice(0, -1)},${added.join(',')}}`
  return { header, payload, iat, exp, jti }
}

function activeSigner(live: LiveKeyset): SigningKey {
  if (!live.signer) throw live.signerError ?? new Sealed('the keyset has no key that can sign')
  return live.signer
}

/** Signs a prepared token with the keyset's active key. */
export async function signPrepared(live: LiveKeyset, prepared: PreparedToken): Promise<SignedToken> {
  const signer = activeSigner(live)
  const token = await signCompact(signer, encodedHeader(signer, prepared.header), prepared.payload)
  return { token, kid: signer.kid, alg: signer.alg, keyset: live.keyset.name, iat: prepared.iat, exp: prepared.exp, jti: prepared.jti }
}

