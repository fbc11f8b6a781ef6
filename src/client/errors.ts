import type { VerificationCode } from '../signing/verification-codes.js'

/**
 * The two errors the client library throws. Both carry a stable `code` so callers
 * branch on it, never on the message. Neither ever holds the bearer token, a
 * token being verified, or a request body.
 */

/** What a {@link SignetClientError} holds besides its message. */
export interface SignetClientErrorFields {
  /** Signet's stable problem `code` (`ttl_too_long`, `sealed`...), or the client's own: `connection_error`, `timeout`, `http_error`, `invalid_response`, `request_failed`, `token_unavailable`. */
  code: string
  /** HTTP status of Signet's answer; null when no answer came (connection error, timeout). */
  status: number | null
  /** The problem's `detail` (or the client's description of what went wrong). */
  detail: string
  /** The problem's `title` and `type`, when Signet answered with a problem body. */
  title?: string
  type?: string
  /** The failing item of a batch (`/v1/sign/batch` problems). */
  index?: number
  /** The X-Request-Id sent with every attempt of this call, to find it in Signet's logs. */
  requestId: string
  /** How many requests were sent (1 + retries; 0 when no token could be had). */
  attempts: number
}

/**
 * A call to Signet failed: Signet refused it (a problem+json answer) or could not be
 * reached in time.
 *
 * @example
 * try {
 *   await client.sign({ sub: 'user-42' }, { ttl: 99999 })
 * } catch (error) {
 *   if (error instanceof SignetClientError && error.code === 'ttl_too_long') { ... }
 * }
 */
export class SignetClientError extends Error {
  readonly code: string
  readonly status: number | null
  readonly detail: string
  readonly title: string | undefined
  readonly type: string | undefined
  readonly index: number | undefined
  readonly requestId: string
  readonly attempts: number

  constructor(fields: SignetClientErrorFields, options?: { cause?: unknown }) {
    super(fields.status === null ? `${fields.code}: ${fields.detail}` : `${fields.status} ${fields.code}: ${fields.detail}`, options)
    this.name = 'SignetClientError'
    this.code = fields.code
    this.status = fields.status
    this.detail = fields.detail
    this.title = fields.title
    this.type = fields.type
    this.index = fields.index
    this.requestId = fields.requestId
    this.attempts = fields.attempts
  }
}

/**
 * Why a token was refused by {@link Verifier.verify}: a code of /v1/verify (the same
 * code for the same bad token; src/signing/verification-codes.ts says what each
 * means), or `jwks_unavailable` when the JWK Set could not be fetched.
 */
export type VerificationErrorCode = VerificationCode | 'jwks_unavailable'

/**
 * A token did not verify. `code` says why; `claim` names the claim a claim check
 * failed on (`exp` for `expired`, `aud` for `audience_mismatch`...). Messages are
 * fixed per reason, so they never echo the token.
 *
 * @example
 * try {
 *   const { payload } = await verifier.verify(token)
 * } catch (error) {
 *   if (error instanceof VerificationError) reply.code(401).send({ code: error.code })
 * }
 */
export class VerificationError extends Error {
  readonly code: VerificationErrorCode
  readonly claim: string | undefined

  constructor(code: VerificationErrorCode, message: string, options?: { cause?: unknown; claim?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'VerificationError'
    this.code = code
    this.claim = options?.claim
  }
}
