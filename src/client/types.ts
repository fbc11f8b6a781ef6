/** Shapes shared by SignetClient and its callers (docs/api.md, the sign routes; docs/client.md). */

/** The claims of a token to sign. Signet sets `iat`, `exp`, `jti` (and `iss` when the keyset has an issuer). */
export type Claims = Record<string, unknown>

/** Protected header members a caller may set; Signet defaults `typ` to `JWT`. */
export interface TokenHeaderInput {
  typ?: string
  cty?: string
}

/** Options of {@link SignetClient.sign}. */
export interface SignOptions {
  /** Lifetime in seconds; defaults to the keyset's `defaultTtl`. */
  ttl?: number
  header?: TokenHeaderInput
  /** Keyset to sign with; defaults to the client's `keyset`, then to Signet's default keyset. */
  keyset?: string
}

/** One token of {@link SignetClient.signBatch}. */
export interface SignBatchItem {
  claims: Claims
  ttl?: number
  header?: TokenHeaderInput
}

/** What Signet answers for every signed token (`POST /v1/sign`). */
export interface SignedToken {
  /** The compact JWS. */
  token: string
  kid: string
  alg: string
  keyset: string
  /** Issued-at and expiry, in seconds since the Unix epoch. */
  iat: number
  exp: number
  jti: string
}
