/**
 * JSON schemas of every request and answer, written with TypeBox: they are the
 * only input contract. Fastify validates requests with them (schemas/validate.ts,
 * which the CLI uses too), the route handlers take their types from them (the
 * TypeBox type provider), answers are serialised with them, and the OpenAPI
 * document is generated from them. Every limit is here, with the message a
 * refusal gives (`errorMessage`, after the field's name); the code checks only
 * what compares fields with each other or with stored state (docs/api.md).
 */
import { Type, type Static, type TProperties, type TSchema, type TString, type TUnsafe } from 'typebox'
import { ALGORITHMS, RSA_BITS } from '../crypto/algorithms.js'
import { KEY_STATES, SCOPES } from '../keys/model.js'
import { MAX_SECONDS } from '../keys/policy.js'
import { POLICY_LIMITS } from '../auth/claim-policy.js'
import { ISSUER_DEFAULTS, ISSUER_LIMITS } from '../identity/issuer-policy.js'
import { VERIFICATION_CODE_MEANINGS, VERIFICATION_CODES } from '../signing/verification-codes.js'
import { MAX_SUBJECT_LENGTH } from '../tls/subject.js'
import { KEYSET_NAME_MESSAGE, KEYSET_NAME_PATTERN } from './keyset-name.js'

/** A keyset (or issuer) name in a request body; `options` may add a description. */
const KeysetName = (options: { description?: string; errorMessage?: string } = {}): TString =>
  Type.String({ pattern: KEYSET_NAME_PATTERN, errorMessage: KEYSET_NAME_MESSAGE, ...options })

const Optional = Type.Optional
const nullable = <T extends TSchema>(schema: T, options: { description?: string } = {}) => Type.Union([schema, Type.Null()], options)
const isoTime = nullable(Type.String({ format: 'date-time' }))
/**
 * An object whose every field is optional: what the discovery, status and admin
 * answers are (the OpenAPI document lists none of their fields as required).
 */
const optionalFields = <P extends TProperties>(properties: P) => Type.Partial(Type.Object(properties))

/** Longest client name. */
export const MAX_CLIENT_NAME = 128
/** Longest keyset issuer (iss). */
export const MAX_KEYSET_ISSUER = 2048
/** Longest typ or cty a caller may set in a token header. */
export const MAX_HEADER_VALUE = 128
/** Longest jti a caller may choose. */
export const MAX_JTI = 256
/** Most tokens signed by one batch request. */
export const MAX_BATCH_ITEMS = 1000
/** Longest revocation reason. */
export const MAX_REVOKE_REASON = 512
/** Most keysets a client may be limited to. */
export const MAX_CLIENT_KEYSETS = 100
/** Longest identity subject pattern. */
export const MAX_IDENTITY_SUBJECT = 1024
/** Most audit events on one page. */
export const MAX_AUDIT_PAGE = 1000

/** No control characters (U+0000 to U+001F, U+007F). */
const NO_CONTROL = '^[^\\u0000-\\u001f\\u007f]*$'

/** A whole number of seconds from `min` to MAX_SECONDS. */
const seconds = (min: number, description?: string) => Type.Integer({
  minimum: min, maximum: MAX_SECONDS, errorMessage: `must be a whole number of seconds from ${min} to ${MAX_SECONDS}`, ...(description ? { description } : {}),
})

export const problem = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.String(),
  code: Type.String(),
  index: Optional(Type.Integer({ description: 'the failing item of a batch' })),
}, { $id: 'Problem', description: 'RFC 9457 problem details', additionalProperties: true })

export type ProblemBody = Static<typeof problem>

/** Error answers a route may give, each a problem body. */
export function errors<const S extends number[]>(...statuses: S): { [K in S[number]]: TUnsafe<ProblemBody> } {
  return Object.fromEntries(statuses.map((status) => [status, Type.Unsafe<ProblemBody>({ $ref: 'Problem#' })])) as { [K in S[number]]: TUnsafe<ProblemBody> }
}

export const publicJwk = Type.Object({
  kty: Type.String(),
  kid: Type.String(),
  use: Type.String(),
  alg: Type.String(),
  n: Optional(Type.String()),
  e: Optional(Type.String()),
  crv: Optional(Type.String()),
  x: Optional(Type.String()),
  y: Optional(Type.String()),
  x5c: Optional(Type.Array(Type.String())),
  'x5t#S256': Optional(Type.String()),
}, { additionalProperties: false })

export const jwks = Type.Object({ keys: Type.Array(publicJwk) })

/** An OpenID discovery document of a keyset with an issuer. */
export const discoveryAnswer = optionalFields({
  issuer: Type.String(),
  jwks_uri: Type.String(),
  id_token_signing_alg_values_supported: Type.Array(Type.String()),
})

/** /healthz and /readyz. */
export const statusAnswer = optionalFields({ status: Type.String() })

// ---- internal: sign and verify

/** The registered claims whose type Signet checks; iat and exp are refused in code (reserved_claim). */
const claims = Type.Object({
  sub: Optional(Type.String({ errorMessage: 'must be a string' })),
  iss: Optional(Type.String({ errorMessage: 'must be a string' })),
  jti: Optional(Type.String({ minLength: 1, maxLength: MAX_JTI, errorMessage: `must be a string of 1 to ${MAX_JTI} characters` })),
  nbf: Optional(Type.Number({ errorMessage: 'must be a number' })),
  aud: Optional(Type.Union([
    Type.String({ errorMessage: 'must be a string or a non-empty list of strings' }),
    Type.Array(Type.String({ errorMessage: 'must be a string or a non-empty list of strings' }), { minItems: 1, errorMessage: 'must be a string or a non-empty list of strings' }),
  ], { errorMessage: 'must be a string or a non-empty list of strings' })),
}, {
  additionalProperties: true,
  description: 'claims to sign; iat and exp are set by Signet, at most 16 KiB serialised',
  errorMessage: 'must be a JSON object',
})

const headerValue = Type.String({ minLength: 1, maxLength: MAX_HEADER_VALUE, errorMessage: `must be a string of 1 to ${MAX_HEADER_VALUE} characters` })

const signItemProperties = {
  claims,
  ttl: Optional(Type.Integer({ minimum: 1, description: 'lifetime in seconds; at most the maxTtl of the keyset and of the client', errorMessage: 'must be a whole number of seconds, at least 1' })),
  header: Optional(Type.Object({ typ: Optional(headerValue), cty: Optional(headerValue) }, {
    additionalProperties: false,
    description: 'protected header members a caller may set: typ and cty',
    errorMessage: 'must be an object',
  })),
}

export const signBody = Type.Object({ keyset: Optional(Type.String()), ...signItemProperties }, {
  additionalProperties: false,
  examples: [{ keyset: 'default', claims: { sub: 'user-42', aud: 'api' }, ttl: 600 }],
})

export type SignItem = Static<typeof signItem>
// errorMessage speaks only for the object's own type (required and unknown members have messages of their own).
const signItem = Type.Object(signItemProperties, { additionalProperties: false, errorMessage: 'must be an object { "claims", "ttl"?, "header"? }' })

export const signedToken = Type.Object({
  token: Type.String(),
  kid: Type.String(),
  alg: Type.String(),
  keyset: Type.String(),
  iat: Type.Integer(),
  exp: Type.Integer(),
  jti: Type.String(),
})

export const signBatchBody = Type.Object({
  keyset: Optional(Type.String()),
  items: Type.Array(signItem, { minItems: 1, maxItems: MAX_BATCH_ITEMS, errorMessage: `must be a list of 1 to ${MAX_BATCH_ITEMS} sign requests` }),
}, {
  additionalProperties: false,
  examples: [{ keyset: 'default', items: [{ claims: { sub: 'user-1' } }, { claims: { sub: 'user-2' }, ttl: 300 }] }],
})

export const signBatchAnswer = Type.Object({ results: Type.Array(signedToken) })

export const verifyBody = Type.Object({
  token: Type.String(),
  keyset: Optional(Type.String()),
  audience: Optional(Type.String()),
  issuer: Optional(Type.String()),
}, { additionalProperties: false, examples: [{ token: 'eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2ln', audience: 'api' }] })

export const verifyAnswer = Type.Object({
  valid: Type.Boolean(),
  header: Optional(Type.Object({}, { additionalProperties: true })),
  payload: Optional(Type.Object({}, { additionalProperties: true })),
  code: Optional(Type.Enum([...VERIFICATION_CODES], {
    description: `when valid is false: ${VERIFICATION_CODES.map((code) => `${code} (${VERIFICATION_CODE_MEANINGS[code]})`).join('; ')}`,
  })),
  detail: Optional(Type.String()),
})

// ---- admin

const keysetPolicyProperties = {
  alg: Optional(Type.Enum([...ALGORITHMS], { errorMessage: `must be one of ${ALGORITHMS.join(', ')}` })),
  rsaBits: Optional(Type.Enum([...RSA_BITS], { description: 'RSA algorithms only', errorMessage: `must be ${RSA_BITS.slice(0, -1).join(', ')} or ${RSA_BITS.at(-1)}` })),
  issuer: Optional(nullable(Type.String({ minLength: 1, maxLength: MAX_KEYSET_ISSUER, errorMessage: `must be a non-empty string of at most ${MAX_KEYSET_ISSUER} characters, or null` }), { description: 'stamped as iss into every token' })),
  defaultTtl: Optional(seconds(1, 'at most maxTtl')),
  maxTtl: Optional(seconds(1)),
  rotationPeriod: Optional(seconds(0, '0: manual rotation only')),
  prepublish: Optional(nullable(seconds(0), { description: 'null: max(3600, 2 x SIGNET_JWKS_MAX_AGE)' })),
  x5c: Optional(Type.Boolean({ errorMessage: 'must be true or false' })),
  backend: Optional(Type.Enum(['software', 'pkcs11'], { errorMessage: 'must be software or pkcs11' })),
}

export const createKeysetBody = Type.Object({ name: KeysetName(), ...keysetPolicyProperties }, {
  additionalProperties: false,
  examples: [{ name: 'sessions', alg: 'ES256', issuer: 'https://auth.example.com', defaultTtl: 900, maxTtl: 3600, rotationPeriod: 2592000 }],
})
export type KeysetInput = Static<typeof createKeysetBody>

/**
 * A PATCH body's rule: at least one of `fields`. A body with none of them has
 * nothing to change: an empty one, or one with only the name (which a keyset's or
 * an issuer's PATCH may give, as it is, and which cannot change).
 */
function atLeastOneOf(fields: object) {
  return {
    minProperties: 1,
    not: { required: ['name'], maxProperties: 1 },
    errorMessage: `must give at least one of ${Object.keys(fields).join(', ')}: nothing to change`,
  }
}

/** PATCH /v1/admin/keysets/{name}: any of the policy fields create takes, at least one; the name only as it is. */
export const patchKeysetBody = Type.Object({ name: Optional(Type.String({ description: 'a keyset cannot be renamed: the current name only' })), ...keysetPolicyProperties }, {
  additionalProperties: false,
  ...atLeastOneOf(keysetPolicyProperties),
  examples: [{ maxTtl: 7200, rotationPeriod: 604800 }],
})
export type KeysetPatch = Static<typeof patchKeysetBody>

export const keysetAnswer = optionalFields({
  name: Type.String(),
  alg: Type.String(),
  rsaBits: nullable(Type.Integer()),
  issuer: nullable(Type.String()),
  defaultTtl: Type.Integer(),
  maxTtl: Type.Integer(),
  rotationPeriod: Type.Integer(),
  prepublish: Type.Integer(),
  x5c: Type.Boolean(),
  backend: Type.String(),
  activeKid: nullable(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
})

export const keysetListAnswer = optionalFields({ keysets: Type.Array(keysetAnswer) })

export const keyAnswer = optionalFields({
  kid: Type.String(),
  keyset: Type.String(),
  alg: Type.String(),
  state: Type.Enum([...KEY_STATES]),
  createdAt: isoTime,
  activatesAt: isoTime,
  activatedAt: isoTime,
  retiredAt: isoTime,
  publishedUntil: isoTime,
  destroyedAt: isoTime,
  revokedAt: isoTime,
  revokeReason: nullable(Type.String()),
  jwk: publicJwk,
})

export const keyListAnswer = optionalFields({ keys: Type.Array(keyAnswer) })

const activation = Type.Enum(['scheduled', 'immediate'], { errorMessage: 'must be scheduled or immediate' })

export const rotateBody = Type.Object({ mode: Optional(activation) }, { additionalProperties: false, examples: [{ mode: 'immediate' }] })

/** A revocation through the API says why, for the audit log. */
export const revokeBody = Type.Object({
  reason: Type.String({ minLength: 1, maxLength: MAX_REVOKE_REASON, errorMessage: `must be a non-empty string of at most ${MAX_REVOKE_REASON} characters` }),
}, { additionalProperties: false, examples: [{ reason: 'key material exposed in a log' }] })

/** Bring your own key: exactly one of pem, pkcs12 or jwk (checked in keys/import.ts). */
export const importKeyBody = Type.Object({
  pem: Optional(Type.String({ minLength: 1, description: 'PKCS#8, PKCS#1 or SEC1 PEM private key, possibly encrypted', errorMessage: 'must be a non-empty string' })),
  passphrase: Optional(Type.String({ description: 'passphrase of an encrypted PEM', errorMessage: 'must be a string' })),
  pkcs12: Optional(Type.String({ minLength: 1, description: 'a PKCS#12 (.p12/.pfx) file in base64', errorMessage: 'must be the file in base64' })),
  password: Optional(Type.String({ description: 'password of the PKCS#12 file (empty if none); required with pkcs12', errorMessage: 'must be a string: the password of the PKCS#12 file (empty if it has none)' })),
  jwk: Optional(Type.Unsafe<Record<string, unknown>>({ type: 'object', description: 'a private JWK', errorMessage: 'must be a JSON Web Key object' })),
  activate: Optional(Type.Enum(['scheduled', 'immediate'], { default: 'scheduled', errorMessage: 'must be scheduled or immediate' })),
}, { additionalProperties: false, examples: [{ pkcs12: 'MIIJ...base64 of the .p12 file...', password: 'the file password', activate: 'scheduled' }] })
export type ImportInput = Static<typeof importKeyBody>

const identitySubjectMessage = `must be a subject of 1 to ${MAX_IDENTITY_SUBJECT} characters without control characters, with at least one literal character (* matches any run of characters)`

const workloadIdentity = Type.Object({
  issuer: KeysetName({ description: 'name of a registered issuer' }),
  subject: Type.String({
    minLength: 1,
    maxLength: MAX_IDENTITY_SUBJECT,
    // A bare * would accept every workload of the issuer (on a shared issuer such as GitHub's, anyone's).
    pattern: '^[^\\u0000-\\u001f\\u007f]*[^*\\u0000-\\u001f\\u007f][^\\u0000-\\u001f\\u007f]*$',
    description: 'e.g. system:serviceaccount:billing:api or spiffe://example.org/ns/billing/*',
    errorMessage: identitySubjectMessage,
  }),
}, {
  additionalProperties: false,
  description: 'authenticate this client by a workload token of `issuer` whose sub matches `subject` (* matches any run of characters)',
  errorMessage: 'must be { "issuer": "<issuer name>", "subject": "<subject or pattern>" }',
})

/** A client's optional policy list with its limits (auth/claim-policy.ts); null: none. */
const policyList = (field: keyof typeof POLICY_LIMITS, what: string, description: string) => {
  const { items, length } = POLICY_LIMITS[field]
  const errorMessage = `must be a list of 1 to ${items} ${what} of 1 to ${length} characters, or null for none`
  return Optional(nullable(Type.Array(Type.String({ minLength: 1, maxLength: length, errorMessage }), { minItems: 1, maxItems: items, errorMessage }), { description }))
}

const clientKeysetsMessage = `must be "*" or a list of 1 to ${MAX_CLIENT_KEYSETS} keyset names`

/** The client fields PATCH may change, as create takes them. */
const clientPolicyProperties = {
  // Every branch carries the message: a refusal quotes the schema of the first error ajv reports (schemas/validate.ts).
  keysets: Type.Union([
    Type.Array(KeysetName({ errorMessage: clientKeysetsMessage }), { minItems: 1, maxItems: MAX_CLIENT_KEYSETS, errorMessage: clientKeysetsMessage }),
    Type.Literal('*', { errorMessage: clientKeysetsMessage }),
    Type.Array(Type.Literal('*', { errorMessage: clientKeysetsMessage }), { minItems: 1, maxItems: 1, errorMessage: clientKeysetsMessage }),
  ], { description: 'keysets it may use, or "*" for all' }),
  scopes: Type.Array(Type.Enum([...SCOPES], { errorMessage: `must be a non-empty list of ${SCOPES.join(', ')}` }), { minItems: 1, errorMessage: `must be a non-empty list of ${SCOPES.join(', ')}` }),
  audiences: policyList('audiences', 'strings', 'allowed aud values; with them every token needs an aud'),
  maxTtl: Optional(nullable(seconds(1), { description: 'longest token lifetime for this client; null: the keyset maxTtl only' })),
  subjects: policyList('subjects', 'patterns', 'patterns sub must match (* matches any run of characters, all else is literal); with them every token needs a sub'),
  requiredClaims: policyList('requiredClaims', 'claim names', 'claim names every token must carry'),
  identity: Optional(nullable(workloadIdentity)),
}

export const createClientBody = Type.Object({
  name: Type.String({
    minLength: 1,
    maxLength: MAX_CLIENT_NAME,
    pattern: '\\S',
    description: 'what the client is, e.g. billing api; spaces around it are dropped',
    errorMessage: `must be a non-empty string of at most ${MAX_CLIENT_NAME} characters`,
  }),
  ...clientPolicyProperties,
  certificateSubject: Optional(nullable(Type.String({ maxLength: MAX_SUBJECT_LENGTH, errorMessage: `must be a distinguished name of at most ${MAX_SUBJECT_LENGTH} characters, such as CN=billing-api,O=Acme` }), { description: 'bind the client to the subject of its mutual-TLS client certificate, e.g. CN=billing-api,O=Acme' })),
  token: Optional(Type.Boolean({ description: 'with an identity: also issue a bearer token (default false)', errorMessage: 'must be true or false' })),
}, {
  additionalProperties: false,
  examples: [{ name: 'billing api', keysets: ['default'], scopes: ['sign'], audiences: ['billing'], maxTtl: 900 }],
})
export type ClientInput = Static<typeof createClientBody>

/**
 * PATCH /v1/admin/clients/{id} (and `signet clients update`): any of the policy
 * fields create takes, at least one; null clears an optional one.
 */
export const patchClientBody = Type.Object({
  ...clientPolicyProperties,
  keysets: Optional(clientPolicyProperties.keysets),
  scopes: Optional(clientPolicyProperties.scopes),
}, {
  additionalProperties: false,
  ...atLeastOneOf(clientPolicyProperties),
  examples: [{ audiences: ['billing', 'reports'], maxTtl: null }],
})
export type ClientPatch = Static<typeof patchClientBody>

export const clientAnswer = optionalFields({
  id: Type.String(),
  name: Type.String(),
  keysets: Type.Union([Type.String(), Type.Array(Type.String())]),
  scopes: Type.Array(Type.String()),
  audiences: nullable(Type.Array(Type.String())),
  maxTtl: nullable(Type.Integer()),
  subjects: nullable(Type.Array(Type.String())),
  requiredClaims: nullable(Type.Array(Type.String())),
  certificateSubject: Type.String({ description: 'present when the client is bound to a client certificate subject' }),
  identity: Type.Object(workloadIdentity.properties, { additionalProperties: false, description: 'present when the client is bound to a workload identity' }),
  createdAt: Type.String(),
  revokedAt: isoTime,
  token: Type.String({ description: 'shown once, at creation' }),
})

export const clientListAnswer = optionalFields({ clients: Type.Array(clientAnswer) })

// ---- admin: workload-identity issuers (docs/workload-identity.md)

const issuerTextMessage = `must be a non-empty string of at most ${ISSUER_LIMITS.text} characters without control characters`
const issuerText = (options: { description?: string; format?: string; errorMessage?: string } = {}) =>
  Type.String({ minLength: 1, maxLength: ISSUER_LIMITS.text, pattern: NO_CONTROL, errorMessage: issuerTextMessage, ...options })
const jwksMessage = `must be a JWK Set: { "keys": [ 1 to ${ISSUER_LIMITS.keys} public keys ] }`
const issuerJwks = Type.Object({
  keys: Type.Array(Type.Object({ kty: Type.String() }, { additionalProperties: true, errorMessage: jwksMessage }), { minItems: 1, maxItems: ISSUER_LIMITS.keys, errorMessage: jwksMessage }),
}, { description: 'a static JWK Set: public RSA, EC or OKP keys only', errorMessage: jwksMessage })
const issuerAudiencesMessage = `must be a list of 1 to ${ISSUER_LIMITS.audiences} accepted aud values of 1 to ${ISSUER_LIMITS.text} characters, e.g. ["signet"]`
const issuerAlgorithmsMessage = `must be a non-empty list of ${ALGORITHMS.join(', ')} (never none or HMAC)`

const issuerPolicyProperties = {
  issuer: issuerText({ description: 'the exact iss of its tokens; unique' }),
  jwksUri: Optional(nullable(issuerText({
    format: 'uri',
    description: 'https, or http to a loopback address only',
    errorMessage: `must be an absolute URL of at most ${ISSUER_LIMITS.text} characters without control characters`,
  }))),
  jwks: Optional(nullable(issuerJwks)),
  audiences: Type.Array(Type.String({ minLength: 1, maxLength: ISSUER_LIMITS.text, pattern: NO_CONTROL, errorMessage: issuerAudiencesMessage }), {
    minItems: 1, maxItems: ISSUER_LIMITS.audiences, description: 'accepted aud values, e.g. ["signet"]', errorMessage: issuerAudiencesMessage,
  }),
  algorithms: Optional(Type.Array(Type.Enum([...ALGORITHMS], { errorMessage: issuerAlgorithmsMessage }), {
    minItems: 1, maxItems: ALGORITHMS.length, description: `asymmetric only; default ${ISSUER_DEFAULTS.algorithms.join(', ')}`, errorMessage: issuerAlgorithmsMessage,
  })),
  maxTokenLifetime: Optional(Type.Integer({
    minimum: 1, maximum: ISSUER_LIMITS.maxTokenLifetime, description: `seconds from iat (or nbf) to exp; default ${ISSUER_DEFAULTS.maxTokenLifetime}`,
    errorMessage: `must be a whole number of seconds from 1 to ${ISSUER_LIMITS.maxTokenLifetime}`,
  })),
  caCertificate: Optional(nullable(Type.String({
    maxLength: ISSUER_LIMITS.caCertificateBytes, description: 'PEM of the CA of an https jwksUri',
    errorMessage: `must be a PEM certificate of at most ${ISSUER_LIMITS.caCertificateBytes} characters`,
  }))),
}

export const createIssuerBody = Type.Object({ name: KeysetName(), ...issuerPolicyProperties }, {
  additionalProperties: false,
  examples: [{ name: 'prod-cluster', issuer: 'https://kubernetes.default.svc.cluster.local', jwksUri: 'https://kubernetes.default.svc.cluster.local/openid/v1/jwks', audiences: ['signet'] }],
})
export type IssuerInput = Static<typeof createIssuerBody>

/** PATCH /v1/admin/issuers/{name}: any of the fields create takes, at least one; the name only as it is. */
export const patchIssuerBody = Type.Object({
  name: Optional(Type.String({ description: 'an issuer cannot be renamed: the current name only' })),
  ...issuerPolicyProperties,
  issuer: Optional(issuerPolicyProperties.issuer),
  audiences: Optional(issuerPolicyProperties.audiences),
}, {
  additionalProperties: false,
  ...atLeastOneOf(issuerPolicyProperties),
  examples: [{ audiences: ['signet', 'signet-staging'] }],
})
export type IssuerPatch = Static<typeof patchIssuerBody>

export const issuerAnswer = optionalFields({
  name: Type.String(),
  issuer: Type.String(),
  jwksUri: nullable(Type.String()),
  jwks: nullable(optionalFields({ keys: Type.Array(Type.Object({}, { additionalProperties: true })) })),
  audiences: Type.Array(Type.String()),
  algorithms: Type.Array(Type.String()),
  maxTokenLifetime: Type.Integer(),
  caCertificate: nullable(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
})

export const issuerListAnswer = optionalFields({ issuers: Type.Array(issuerAnswer) })

export const auditQuery = Type.Object({
  after: Type.Integer({ minimum: 0, default: 0, description: 'the id of the last event already seen', errorMessage: 'must be a whole number, at least 0' }),
  limit: Type.Integer({ minimum: 1, maximum: MAX_AUDIT_PAGE, default: 100, errorMessage: `must be a whole number from 1 to ${MAX_AUDIT_PAGE}` }),
}, { additionalProperties: false })

/** GET /v1/admin/audit/verify: the hash chain's state, as `signet audit verify` checks it. */
export const auditVerifyAnswer = Type.Object({
  intact: Type.Boolean(),
  events: Type.Integer(),
  problems: Type.Array(Type.Object({ id: Type.Integer(), reason: Type.String() })),
})

export const auditAnswer = optionalFields({
  events: Type.Array(optionalFields({
    id: Type.Integer(),
    at: Type.String(),
    actor: Type.String(),
    action: Type.String(),
    target: Type.String(),
    details: Type.Object({}, { additionalProperties: true }),
    prevHash: Type.String(),
    hash: Type.String(),
  })),
  next: nullable(Type.Integer()),
})

export const nameParams = Type.Object({ name: Type.String() })
export const kidParams = Type.Object({ kid: Type.String() })
export const idParams = Type.Object({ id: Type.String() })
