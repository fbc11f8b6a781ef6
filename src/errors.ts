/**
 * Every error Signet answers with, each with its stable `code` (docs/api.md, problem codes) and
 * HTTP status. Routes throw these; the error handler (`handleError` in http/problem.ts) turns them into
 * RFC 9457 problem+json bodies. Messages are written for the caller: they never
 * include key material, tokens or claim values.
 */
export class SignetError extends Error {
  readonly code: string
  readonly status: number
  readonly title: string
  /** Extra members for the problem body (for example the failing batch `index`). */
  readonly extra: Record<string, unknown> | undefined

  constructor(code: string, status: number, title: string, detail: string, extra?: Record<string, unknown>) {
    super(detail)
    this.name = 'SignetError'
    this.code = code
    this.status = status
    this.title = title
    this.extra = extra
  }
}

/**
 * `error` as the refusal of a whole batch for its item `index` (docs/api.md, POST
 * /v1/sign/batch): the same problem (code, status, title), its detail led by
 * `item N:`, with `index`. It is a plain SignetError: `instanceof` the item's own
 * class (InvalidRequest, say) no longer holds.
 */
export function batchItemError(error: SignetError, index: number): SignetError {
  return new SignetError(error.code, error.status, error.title, `item ${index}: ${error.message}`, { ...error.extra, index })
}

function kind(code: string, status: number, title: string) {
  return class extends SignetError {
    static readonly code = code
    constructor(detail: string = title, extra?: Record<string, unknown>) {
      super(code, status, title, detail, extra)
    }
  }
}

export const InvalidRequest = kind('invalid_request', 400, 'Invalid request')
export const ReservedClaim = kind('reserved_claim', 400, 'Reserved claim')
export const IssuerMismatch = kind('issuer_mismatch', 400, 'Issuer mismatch')
export const TtlTooLong = kind('ttl_too_long', 400, 'TTL too long')
export const Unauthorized = kind('unauthorized', 401, 'Unauthorized')
export const Forbidden = kind('forbidden', 403, 'Forbidden')
export const AudienceNotAllowed = kind('audience_not_allowed', 403, 'Audience not allowed')
export const SubjectNotAllowed = kind('subject_not_allowed', 403, 'Subject not allowed')
/** A claim the client's policy requires (aud with audiences, sub with subjects, requiredClaims) is absent. */
export const MissingClaim = kind('missing_claim', 400, 'Missing claim')
export const NotFound = kind('not_found', 404, 'Not found')
export const KeysetNotFound = kind('keyset_not_found', 404, 'Keyset not found')
export const KeyNotFound = kind('key_not_found', 404, 'Key not found')
export const ClientNotFound = kind('client_not_found', 404, 'Client not found')
export const IssuerNotFound = kind('issuer_not_found', 404, 'Issuer not found')
export const MethodNotAllowed = kind('method_not_allowed', 405, 'Method not allowed')
export const Conflict = kind('conflict', 409, 'Conflict')
export const PayloadTooLarge = kind('payload_too_large', 413, 'Payload too large')
export const UnsupportedMediaType = kind('unsupported_media_type', 415, 'Unsupported media type')
export const RateLimited = kind('rate_limited', 429, 'Too many requests')
export const Internal = kind('internal_error', 500, 'Internal error')
export const Overloaded = kind('overloaded', 503, 'Overloaded')
export const ShuttingDown = kind('shutting_down', 503, 'Shutting down')
export const Sealed = kind('sealed', 503, 'Sealed')
export const StorageUnavailable = kind('storage_unavailable', 503, 'Storage unavailable')
export const HsmUnavailable = kind('hsm_unavailable', 503, 'HSM unavailable')

/** A bad start-up setting: the process prints the message and exits non-zero. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

/**
 * Authenticated decryption failed: wrong master key, a ciphertext moved to another
 * row, or a flipped bit. One fixed message so the error is never an oracle.
 */
export class DecryptionError extends Error {
  constructor(what: string) {
    super(`cannot decrypt ${what}: wrong master key or tampered ciphertext`)
    this.name = 'DecryptionError'
  }
}
