import { createPublicKey, X509Certificate } from 'node:crypto'
import { isIP } from 'node:net'
import { ALGORITHMS, type Alg } from '../crypto/algorithms.js'
import { InvalidRequest } from '../errors.js'
import type { Issuer, IssuerJwk } from '../keys/model.js'
import type { IssuerInput, IssuerPatch } from '../schemas/index.js'

/**
 * Issuer policy (docs/workload-identity.md): defaults, limits and the rules between
 * fields. The request schemas (src/schemas) enforce the limits; the admin API and
 * the CLI check input against them, then here for the rules between fields.
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

const given = (value: unknown): boolean => value !== undefined && value !== null

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
function checkJwksUri(uri: string): string {
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

/**
 * A static JWK Set (its shape and key count checked by the schema): every key
 * usable, and at most jwksBytes serialised (a CLI file is not held to the body limit).
 */
function checkStaticJwks(value: { keys: unknown[] }): { keys: IssuerJwk[] } {
  const { keys } = value
  if (Buffer.byteLength(JSON.stringify(value)) > ISSUER_LIMITS.jwksBytes) throw new InvalidRequest(`jwks must be at most ${ISSUER_LIMITS.jwksBytes} bytes`)
  return {
    keys: keys.map((key, index) => {
      const result = usableJwk(key)
      if ('reason' in result) throw new InvalidRequest(`jwks key ${index} ${result.reason}`)
      return result.jwk
    }),
  }
}

function checkCaCertificate(value: string): string {
  if (!value.includes('-----BEGIN CERTIFICATE-----')) throw new InvalidRequest('caCertificate must be a PEM certificate')
  try {
    new X509Certificate(value)
  } catch {
    throw new InvalidRequest('caCertificate is not a valid PEM certificate')
  }
  return value
}

type IssuerPolicy = Omit<Issuer, 'name' | 'createdAt' | 'updatedAt'>

/** An issuer's policy fields, from input or from a stored issuer with a change over it. */
type PolicyFields = Omit<IssuerInput, 'name' | 'algorithms' | 'maxTokenLifetime'> & { algorithms: readonly Alg[]; maxTokenLifetime: number }

/**
 * The rules between an issuer's fields (each field's type and limits were checked
 * by the request schema): exactly one key source, a usable JWK Set, a CA only for
 * an https jwksUri.
 */
function checkPolicy(input: PolicyFields): IssuerPolicy {
  if (given(input.jwksUri) === given(input.jwks)) throw new InvalidRequest('give exactly one of jwksUri (where the JWK Set is fetched) and jwks (a static JWK Set)')
  const jwksUri = given(input.jwksUri) ? checkJwksUri(input.jwksUri!) : null
  const jwks = given(input.jwks) ? checkStaticJwks(input.jwks!) : null
  let caCertificate: string | null = null
  if (given(input.caCertificate)) {
    if (jwksUri === null || !jwksUri.startsWith('https:')) throw new InvalidRequest('caCertificate applies only to an https jwksUri')
    caCertificate = checkCaCertificate(input.caCertificate!)
  }
  return {
    issuer: input.issuer,
    jwksUri,
    jwks,
    audiences: [...new Set(input.audiences)],
    algorithms: [...new Set(input.algorithms)],
    maxTokenLifetime: input.maxTokenLifetime,
    caCertificate,
  }
}

/** A new issuer's fields, with the defaults filled in. */
export function checkNewIssuer(input: IssuerInput): IssuerPolicy & { name: string } {
  return {
    name: input.name,
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
export function applyIssuerChange(current: Issuer, change: IssuerPatch): IssuerPolicy {
  if (change.name !== undefined && change.name !== current.name) throw new InvalidRequest('an issuer cannot be renamed')
  const merged: PolicyFields = { ...current, ...Object.fromEntries(Object.entries(change).filter(([, value]) => value !== undefined)) }
  if (given(change.jwks) && change.jwksUri === undefined) {
    merged.jwksUri = null
    if (change.caCertificate === undefined) merged.caCertificate = null
  }
  if (given(change.jwksUri) && change.jwks === undefined) merged.jwks = null
  return checkPolicy(merged)
}
