/** The admin API's answers as the console reads them (docs/console.md; times are ISO 8601 UTC). */

export type KeyState = 'pending' | 'active' | 'retired' | 'destroyed' | 'revoked'

export interface Keyset {
  name: string
  alg: string
  rsaBits: number | null
  issuer: string | null
  defaultTtl: number
  maxTtl: number
  rotationPeriod: number
  /** The effective prepublish, in seconds (the default resolved). */
  prepublish: number
  x5c: boolean
  backend: string
  activeKid: string | null
}

export interface Key {
  kid: string
  keyset: string
  alg: string
  state: KeyState
  createdAt: string
  activatesAt: string | null
  activatedAt: string | null
  retiredAt: string | null
  publishedUntil: string | null
  destroyedAt: string | null
  revokedAt: string | null
  revokeReason: string | null
}

export interface Client {
  id: string
  name: string
  keysets: string[] | '*'
  scopes: string[]
  audiences: string[] | null
  maxTtl: number | null
  createdAt: string
  revokedAt: string | null
}

export interface AuditEvent {
  id: number
  at: string
  actor: string
  action: string
  target: string
  details: Record<string, unknown>
}

export interface Issuer {
  name: string
  issuer: string
  jwksUri?: string | null
  audiences: string[]
  algorithms?: string[]
  maxTokenLifetime?: number
}

/** Algorithms a keyset may use (src/crypto/algorithms.ts). */
export const ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA'] as const
export const SCOPES = ['sign', 'verify', 'admin'] as const
