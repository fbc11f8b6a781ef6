import { createPublicKey, X509Certificate } from 'node:crypto'
import { isIP } from 'node:net'
import { ALGORITHMS, type Alg } from '../crypto/algorithms.js'
import { checkKeysetName } from '../keys/policy.js'
import { InvalidRequest } from '../errors.js'
import type { Issuer, IssuerJwk } from '../keys/model.js'

/**
 * Issuer policy (docs/workload-identity.md): defaults, limits and the rules between
 * fields. Shared by the admin API (whose schemas quote these limits) and the CLI,
 * so both refuse the same input the same way.
 */
export const ISSUER_LIMITS = {
  /** Characters of `issuer`, `jwksUri` and each audience. */
  text: 2048,
  audiences: 100,
  /** Keys in a static JWK Set, and keys used from a fetched one. */
  keys: 100,
  /** Serialised size of a static or fetched JWK Set. */
  jwksBytes: 256 * 1024,
  caCertificateBytes: 64 * 1024,
  /** Longest maxTokenLifetime: 7 days. */
  maxTokenLifetime: 604_800,
} as const

export const ISSUER_DEFAULTS = {
  algorithms: ['RS256', 'ES256'] as Alg[],
  maxTokenLifetime: 3600,
}

/** Key types a workload token may be signed with: asymmetric only, never `oct` (HMAC). */
const KEY_TYPES = new Set(['RSA', 'EC', 'OKP'])
/** Members only a private (or symmetric) JWK has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']

export interface IssuerInput {
  name?: unknown
  issuer?: unknown
  jwksUri?: unknown
  jwks?: unknown
  audiences?: unknown
  algorithms?: unknown
  maxTokenLifetime?: unknown
  caCertificate?: unknown
}

const given = (value: unknown): boolean => value !== undefined && value !== null
const CONTROL = /[\u0000-\u001f\u007f]/

function text(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > ISSUER_LIMITS.text || CONTROL.test(value)) {
    throw new InvalidRequest(`${field} must be a non-empty string of at most ${ISSUER_LIMITS.text} characters without control characters`)
  }
  return value
}

/**
 * Whether `hostname` (as URL gives it, lower-cased) is loopback: an address in
 * 127.0.0.0/8, [::1], or the name `localhost`, which RFC 6761 section 6.3 reserves
 * for loopback (names under it, or names merely starting with it, are not).
 */
function isLoopback(hostname: string): boolean {
  if (hostname === 'localhost') return true
  const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname
  if (isIP(host) === 4) return host.startsWith('127.')
  return isIP(host) === 6 && host === '::1'
}

/** https, or http to a loopback address only (a sidecar or a local proxy); no credentials in the URL. */
export function checkJwksUri(value: unknown): string {
  const uri = text('jwksUri', value)
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    throw new InvalidRequest('jwksUri must be an absolute https URL')
  }
  if (url.username || url.password) throw new InvalidRequest('jwksUri must not carry credentials')
  if (url.protocol === 'https:') return uri
  if (url.protocol === 'http:' && isLoopback(url.hostname)) return uri
  throw new InvalidRequest('jwksUri must be https, or http to a loopback address (localhost, 127.0.0.1 or [::1])')
}

/**
 * One key of an issuer's JWK Set when Signet can use it to verify a workload token:
 * a public RSA, EC or OKP key meant for signatures; null otherwise, with the reason.
 */
export function usableJwk(value: unknown): { jwk: IssuerJwk } | { reason: string } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { reason: 'is not a JSON object' }
  const jwk = value as Record<string, unknown>
  if (typeof jwk.kty !== 'string' || !KEY_TYPES.has(jwk.kty)) return { reason: 'must have kty RSA, EC or OKP (symmetric keys are never accepted)' }
  if (PRIVATE_MEMBERS.some((member) => member in jwk)) return { reason: 'holds private key members; give public keys only' }
  if (jwk.use !== undefined && jwk.use !== 'sig') return { reason: 'is not a signature key (use)' }
  if (jwk.kid !== undefined && typeof jwk.kid !== 'string') return { reason: 'has a kid that is not a string' }
  if (jwk.alg !== undefined && !(ALGORITHMS as readonly unknown[]).includes(jwk.alg)) return { reason: 'names an algorithm that is not an asymmetric signature algorithm' }
  let details
  try {
    const key = createPublicKey({ key: jwk as never, format: 'jwk' })
    details = { type: key.asymmetricKeyType, ...key.asymmetricKeyDetails }
  } catch {
    return { reason: 'is not a valid public key' }
  }
  // The sizes Signet itself signs with: RSA from 2048 bits (RFC 7518 section 3.3), the JOSE curves.
  if (details.type === 'rsa' && (details.modulusLength ?? 0) < 2048) return { reason: 'is an RSA key under 2048 bits' }
  if (details.type !== 'rsa' && details.type !== 'ec' && details.type !== 'ed25519') return { reason: 'is of an unsupported key type' }
  return { jwk: jwk as IssuerJwk }
}

/** A static JWK Set: 1 to 100 public signature keys, every one usable. */
export function checkStaticJwks(value: unknown): { keys: IssuerJwk[] } {
  const keys = (value as { keys?: unknown } | null)?.keys
  if (value === null || typeof value !== 'object' || !Array.isArray(keys) || keys.length === 0 || keys.length > ISSUER_LIMITS.keys) {
    throw new InvalidRequest(`jwks must be a JWK Set: { "keys": [ 1 to ${ISSUER_LIMITS.keys} public keys ] }`)
  }
  if (Buffer.byteLength(JSON.stringify(value)) > ISSUER_LIMITS.jwksBytes) throw new InvalidRequest(`jwks must be at most ${ISSUER_LIMITS.jwksBytes} bytes`)
  return {
    keys: keys.map((key, index) => {
      const result = usableJwk(key)
      if ('reason' in result) throw new InvalidRequest(`jwks key ${index} ${result.reason}`)
      return result.jwk
    }),
  }
}

function checkCaCertificate(value: unknown): string {
  if (typeof value !== 'string' || value.length > ISSUER_LIMITS.caCertificateBytes || !value.includes('-----BEGIN CERTIFICATE-----')) {
    throw new InvalidRequest(`caCertificate must be a PEM certificate (at most ${ISSUER_LIMITS.caCertificateBytes} bytes)`)
  }
  try {
    new X509Certificate(value)
  } catch {
    throw new InvalidRequest('caCertificate is not a valid PEM certificate')
  }
  return value
}

type IssuerPolicy = Omit<Issuer, 'name' | 'createdAt' | 'updatedAt'>

/** Checks every field of an issuer, and the rules between them. */
function checkPolicy(input: IssuerInput): IssuerPolicy {
  const issuer = text('issuer', input.issuer)
  if (given(input.jwksUri) === given(input.jwks)) throw new InvalidRequest('give exactly one of jwksUri (where the JWK Set is fetched) and jwks (a static JWK Set)')
  const jwksUri = given(input.jwksUri) ? checkJwksUri(input.jwksUri) : null
  const jwks = given(input.jwks) ? checkStaticJwks(input.jwks) : null
  const { audiences, algorithms, maxTokenLifetime } = input
  if (!Array.isArray(audiences) || audiences.length === 0 || audiences.length > ISSUER_LIMITS.audiences) {
    throw new InvalidRequest(`audiences must be a list of 1 to ${ISSUER_LIMITS.audiences} accepted aud values, e.g. ["signet"]`)
  }
  audiences.forEach((audience, index) => text(`audiences[${index}]`, audience))
  if (!Array.isArray(algorithms) || algorithms.length === 0 || !algorithms.every((alg) => (ALGORITHMS as readonly unknown[]).includes(alg))) {
    throw new InvalidRequest(`algorithms must be a non-empty list of ${ALGORITHMS.join(', ')} (never none or HMAC)`)
  }
  if (typeof maxTokenLifetime !== 'number' || !Number.isSafeInteger(maxTokenLifetime) || maxTokenLifetime < 1 || maxTokenLifetime > ISSUER_LIMITS.maxTokenLifetime) {
    throw new InvalidRequest(`maxTokenLifetime must be a whole number of seconds from 1 to ${ISSUER_LIMITS.maxTokenLifetime}`)
  }
  let caCertificate: string | null = null
  if (given(input.caCertificate)) {
    if (jwksUri === null || !jwksUri.startsWith('https:')) throw new InvalidRequest('caCertificate applies only to an https jwksUri')
    caCertificate = checkCaCertificate(input.caCertificate)
  }
  return {
    issuer,
    jwksUri,
    jwks,
    audiences: [...new Set(audiences as string[])],
    algorithms: [...new Set(algorithms as Alg[])],
    maxTokenLifetime,
    caCertificate,
  }
}

/** A new issuer's fields, with the defaults filled in. */
export function checkNewIssuer(input: IssuerInput): IssuerPolicy & { name: string } {
  const name = checkKeysetName(input.name)
  return {
    name,
    ...checkPolicy({
      ...input,
      algorithms: input.algorithms ?? ISSUER_DEFAULTS.algorithms,
      maxTokenLifetime: input.maxTokenLifetime ?? ISSUER_DEFAULTS.maxTokenLifetime,
    }),
  }
}

/**
 * An issuer after a change: given fields replace the stored ones. Giving `jwks`
 * drops the stored `jwksUri` (and its CA) and giving `jwksUri` drops a static set,
 * so a change can move an issuer from one key source to the other.
 */
export function applyIssuerChange(current: Issuer, change: IssuerInput): IssuerPolicy {
  if (change.name !== undefined && change.name !== current.name) throw new InvalidRequest('an issuer cannot be renamed')
  const merged: IssuerInput = { ...current, ...Object.fromEntries(Object.entries(change).filter(([, value]) => value !== undefined)) }
  if (given(change.jwks) && change.jwksUri === undefined) {
    merged.jwksUri = null
    if (change.caCertificate === undefined) merged.caCertificate = null
  }
  if (given(change.jwksUri) && change.jwks === undefined) merged.jwks = null
  return checkPolicy(merged)
}
