import { Type, type TString } from 'typebox'

/**
 * The one rule for names of keysets and workload-token issuers: a lower-case
 * letter or digit, then up to 62 of lower-case letters, digits, _ and -.
 * The admin routes, the CLI and SIGNET_DEFAULT_KEYSET all check it from here.
 */
export const KEYSET_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,62}$'

export const KEYSET_NAME_MESSAGE = `must match ${KEYSET_NAME_PATTERN}: a lower-case letter or digit, then up to 62 lower-case letters, digits, _ or -`

/** A keyset (or issuer) name in a request body; `options` may add a description. */
export const KeysetName = (options: { description?: string; errorMessage?: string } = {}): TString =>
  Type.String({ pattern: KEYSET_NAME_PATTERN, errorMessage: KEYSET_NAME_MESSAGE, ...options })
