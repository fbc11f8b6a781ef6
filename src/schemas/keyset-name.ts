/**
 * The one rule for names of keysets and workload-token issuers: a lower-case
 * letter or digit, then up to 62 of lower-case letters, digits, _ and -.
 * The admin routes, the CLI and SIGNET_DEFAULT_KEYSET all check it from here
 * (the schema is KeysetName in schemas/index.ts). Plain strings, so that reading
 * the configuration does not load TypeBox.
 */
export const KEYSET_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,62}$'

export const KEYSET_NAME_MESSAGE = `must match ${KEYSET_NAME_PATTERN}: a lower-case letter or digit, then up to 62 lower-case letters, digits, _ or -`
