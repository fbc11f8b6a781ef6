import type { Alg, RsaBits } from '../crypto/algorithms.js'
import type { PublicJwk } from '../crypto/jwk.js'

/** Where a keyset's private keys live (docs/api.md, the keyset object; docs/hsm.md). */
export type Backend = 'software' | 'pkcs11'

/** A keyset's policy as stored. Times are seconds, as in the API. */
export interface Keyset {
  name: string
  alg: Alg
  rsaBits: RsaBits
  issuer: string | null
  defaultTtl: number
  maxTtl: number
  rotationPeriod: number
  /** null: the default, max(3600, 2 x JWKS max-age), resolved at use. */
  prepublish: number | null
  x5c: boolean
  backend: Backend
  createdAt: number
  updatedAt: number
}

export const KEY_STATES = ['pending', 'active', 'retired', 'destroyed', 'revoked'] as const
export type KeyState = (typeof KEY_STATES)[number]

/** The states whose keys are published in the JWK Set. */
export const PUBLISHED_STATES: readonly KeyState[] = ['pending', 'active', 'retired']

/** One signing key. Times are epoch milliseconds; null until the event happens. */
export interface KeyRecord {
  kid: string
  keyset: string
  alg: Alg
  state: KeyState
  publicJwk: PublicJwk
  /** DER of the self-signed certificate published as x5c. */
  certificate: Buffer | null
  /** Envelope-encrypted PKCS#8 private key (software backend); null once destroyed or revoked. */
  privateKey: Buffer | null
  /** For HSM keys: the object's CKA_ID in the token, hex. */
  hsmId: string | null
  createdAt: number
  activatesAt: number | null
  activatedAt: number | null
  retiredAt: number | null
  publishedUntil: number | null
  destroyedAt: number | null
  revokedAt: number | null
  revokeReason: string | null
  /** Longest keyset maxTtl (seconds) in force while the key was active. */
  maxTtlSeen: number
}

export const SCOPES = ['sign', 'verify', 'admin'] as const
export type Scope = (typeof SCOPES)[number]

export interface Client {
  id: string
  name: string
  /** Allowed keyset names, or '*' for all. */
  keysets: string[] | '*'
  scopes: Scope[]
  audiences: string[] | null
  maxTtl: number | null
  /**
   * The subject of the client certificate this client must present over mutual
   * TLS (normalised, e.g. `CN=billing-api,O=Acme`); null or absent: not bound.
   */
  certificateSubject?: string | null
  /**
   * Claim policy (docs/clients.md): patterns `sub` must match (`*` = any run of
   * characters), and claim names every token must carry. Null or absent: none.
   */
  subjects?: string[] | null
  requiredClaims?: string[] | null
  /**
   * The workload identity this client is bound to (docs/workload-identity.md): an
   * issuer's name and a subject pattern; null or absent: not bound.
   */
  identity?: WorkloadIdentity | null
  /** SHA-256 of the bearer token, hex. The token itself is never stored. */
  tokenHash: string
  createdAt: number
  revokedAt: number | null
}

/** A client's binding to workload tokens: issuer name, and a subject where `*` matches any run of characters. */
export interface WorkloadIdentity {
  issuer: string
  subject: string
}

/** A public JWK of an issuer's key set, as stored or fetched (never private members). */
export type IssuerJwk = Record<string, unknown> & { kty: string; kid?: string }

/**
 * An external workload-token issuer Signet trusts (docs/workload-identity.md):
 * Kubernetes, SPIRE, GitHub Actions or any OIDC provider.
 */
export interface Issuer {
  /** Identifier (keyset name rules). */
  name: string
  /** The exact `iss` of its tokens; unique. */
  issuer: string
  /** Where its JWK Set is fetched; null when `jwks` is given. */
  jwksUri: string | null
  /** A static JWK Set (public keys only); null when `jwksUri` is given. */
  jwks: { keys: IssuerJwk[] } | null
  /** Accepted `aud` values; a token must hold at least one. */
  audiences: string[]
  /** Accepted JWS algorithms, asymmetric only. */
  algorithms: Alg[]
  /** Longest accepted lifetime in seconds, from `iat` (or `nbf`) to `exp`. */
  maxTokenLifetime: number
  /** PEM of the CA that signs the JWKS endpoint's certificate, when it is private. */
  caCertificate: string | null
  createdAt: number
  updatedAt: number
}

/** One audit event before it is chained. */
export interface AuditInput {
  at: number
  actor: string
  action: string
  target: string
  details: Record<string, unknown>
}

/** An audit row as stored: chained to the previous row by hash. */
export interface AuditEvent extends AuditInput {
  id: number
  prevHash: string
  hash: string
}
