/**
 * JSON schemas of every request and answer. Fastify validates bodies with them
 * (ajv, with type coercion off so "600" is not a number) and serialises answers
 * with them; the OpenAPI document is generated from the same objects.
 */
import { ALGORITHMS, RSA_BITS } from '../crypto/algorithms.js'
import { KEY_STATES, SCOPES } from '../keys/model.js'
import { POLICY_LIMITS } from '../auth/claim-policy.js'
import { MAX_IDENTITY_SUBJECT } from '../auth/clients.js'
import { ISSUER_DEFAULTS, ISSUER_LIMITS } from '../identity/issuer-policy.js'
import { MAX_SUBJECT_LENGTH } from '../tls/subject.js'

const nullable = (schema: Record<string, unknown>) => ({ anyOf: [schema, { type: 'null' }] })
const isoTime = nullable({ type: 'string', format: 'date-time' })

export const problem = {
  $id: 'Problem',
  type: 'object',
  description: 'RFC 9457 problem details',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string' },
    index: { type: 'integer', description: 'the failing item of a batch' },
  },
  required: ['type', 'title', 'status', 'detail', 'code'],
  additionalProperties: true,
} as const

/** Error answers a route may give, each a problem body. */
export function errors(...statuses: number[]): Record<number, unknown> {
  return Object.fromEntries(statuses.map((status) => [status, { $ref: 'Problem#' }]))
}

const keysetName = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }

export const publicJwk = {
  type: 'object',
  properties: {
    kty: { type: 'string' },
    kid: { type: 'string' },
    use: { type: 'string' },
    alg: { type: 'string' },
    n: { type: 'string' },
    e: { type: 'string' },
    crv: { type: 'string' },
    x: { type: 'string' },
    y: { type: 'string' },
    x5c: { type: 'array', items: { type: 'string' } },
    'x5t#S256': { type: 'string' },
  },
  required: ['kty', 'kid', 'use', 'alg'],
  additionalProperties: false,
} as const

export const jwks = {
  type: 'object',
  properties: { keys: { type: 'array', items: publicJwk } },
  required: ['keys'],
} as const

// ---- internal: sign and verify

const signItemProperties = {
  claims: { type: 'object', description: 'claims to sign; iat and exp are set by Signet' },
  ttl: { type: 'integer', description: 'lifetime in seconds' },
  header: {
    type: 'object',
    description: 'protected header members a caller may set: typ and cty',
    properties: { typ: { type: 'string' }, cty: { type: 'string' } },
  },
}

export const signBody = {
  type: 'object',
  properties: { keyset: { type: 'string' }, ...signItemProperties },
  required: ['claims'],
  additionalProperties: false,
} as const

export const signedToken = {
  type: 'object',
  properties: {
    token: { type: 'string' },
    kid: { type: 'string' },
    alg: { type: 'string' },
    keyset: { type: 'string' },
    iat: { type: 'integer' },
    exp: { type: 'integer' },
    jti: { type: 'string' },
  },
  required: ['token', 'kid', 'alg', 'keyset', 'iat', 'exp', 'jti'],
} as const

export const signBatchBody = {
  type: 'object',
  properties: {
    keyset: { type: 'string' },
    // Items are checked one by one in the handler, so a refusal can name its index.
    items: { type: 'array', minItems: 1, maxItems: 1000, items: { type: 'object', properties: signItemProperties } },
  },
  required: ['items'],
  additionalProperties: false,
} as const

export const signBatchAnswer = {
  type: 'object',
  properties: { results: { type: 'array', items: signedToken } },
  required: ['results'],
} as const

export const verifyBody = {
  type: 'object',
  properties: {
    token: { type: 'string' },
    keyset: { type: 'string' },
    audience: { type: 'string' },
    issuer: { type: 'string' },
  },
  required: ['token'],
  additionalProperties: false,
} as const

export const verifyAnswer = {
  type: 'object',
  properties: {
    valid: { type: 'boolean' },
    header: { type: 'object', additionalProperties: true },
    payload: { type: 'object', additionalProperties: true },
    code: { type: 'string' },
    detail: { type: 'string' },
  },
  required: ['valid'],
} as const

// ---- admin

const keysetPolicyProperties = {
  alg: { type: 'string', enum: [...ALGORITHMS] },
  rsaBits: { type: 'integer', enum: [...RSA_BITS] },
  issuer: nullable({ type: 'string' }),
  defaultTtl: { type: 'integer' },
  maxTtl: { type: 'integer' },
  rotationPeriod: { type: 'integer' },
  prepublish: nullable({ type: 'integer' }),
  x5c: { type: 'boolean' },
  backend: { type: 'string', enum: ['software', 'pkcs11'] },
}

export const createKeysetBody = {
  type: 'object',
  properties: { name: keysetName, ...keysetPolicyProperties },
  required: ['name'],
  additionalProperties: false,
} as const

export const patchKeysetBody = {
  type: 'object',
  properties: { name: { type: 'string' }, ...keysetPolicyProperties },
  additionalProperties: false,
} as const

export const keysetAnswer = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    alg: { type: 'string' },
    rsaBits: nullable({ type: 'integer' }),
    issuer: nullable({ type: 'string' }),
    defaultTtl: { type: 'integer' },
    maxTtl: { type: 'integer' },
    rotationPeriod: { type: 'integer' },
    prepublish: { type: 'integer' },
    x5c: { type: 'boolean' },
    backend: { type: 'string' },
    activeKid: nullable({ type: 'string' }),
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
  },
} as const

export const keysetListAnswer = {
  type: 'object',
  properties: { keysets: { type: 'array', items: keysetAnswer } },
} as const

export const keyAnswer = {
  type: 'object',
  properties: {
    kid: { type: 'string' },
    keyset: { type: 'string' },
    alg: { type: 'string' },
    state: { type: 'string', enum: [...KEY_STATES] },
    createdAt: isoTime,
    activatesAt: isoTime,
    activatedAt: isoTime,
    retiredAt: isoTime,
    publishedUntil: isoTime,
    destroyedAt: isoTime,
    revokedAt: isoTime,
    revokeReason: nullable({ type: 'string' }),
    jwk: publicJwk,
  },
} as const

export const keyListAnswer = {
  type: 'object',
  properties: { keys: { type: 'array', items: keyAnswer } },
} as const

export const rotateBody = {
  type: 'object',
  properties: { mode: { type: 'string', enum: ['scheduled', 'immediate'] } },
  additionalProperties: false,
} as const

/** SPEC section 3: `{ "reason" }`, required: a revocation through the API says why, for the audit log. */
export const revokeBody = {
  type: 'object',
  required: ['reason'],
  properties: { reason: { type: 'string', minLength: 1, maxLength: 512 } },
  additionalProperties: false,
} as const

/** Bring your own key: exactly one of pem, pkcs12 or jwk (checked in keys/import.ts). */
export const importKeyBody = {
  type: 'object',
  properties: {
    pem: { type: 'string', description: 'PKCS#8, PKCS#1 or SEC1 PEM private key, possibly encrypted' },
    passphrase: { type: 'string', description: 'passphrase of an encrypted PEM' },
    pkcs12: { type: 'string', description: 'a PKCS#12 (.p12/.pfx) file in base64' },
    password: { type: 'string', description: 'password of the PKCS#12 file (empty if none)' },
    jwk: { type: 'object', description: 'a private JWK' },
    activate: { type: 'string', enum: ['scheduled', 'immediate'], default: 'scheduled' },
  },
  additionalProperties: false,
} as const

const workloadIdentity = {
  type: 'object',
  description: 'authenticate this client by a workload token of `issuer` whose sub matches `subject` (* matches any run of characters)',
  properties: {
    issuer: { ...keysetName, description: 'name of a registered issuer' },
    subject: { type: 'string', minLength: 1, maxLength: MAX_IDENTITY_SUBJECT, description: 'e.g. system:serviceaccount:billing:api or spiffe://example.org/ns/billing/*' },
  },
  required: ['issuer', 'subject'],
  additionalProperties: false,
} as const

/** A client's optional policy list with its limits (auth/claim-policy.ts); null: none. */
const policyList = (field: keyof typeof POLICY_LIMITS, description: string) => ({
  description,
  anyOf: [{
    type: 'array',
    minItems: 1,
    maxItems: POLICY_LIMITS[field].items,
    items: { type: 'string', minLength: 1, maxLength: POLICY_LIMITS[field].length },
  }, { type: 'null' }],
})

/** The client fields PATCH may change, as create takes them. */
const clientPolicyProperties = {
  // Keyset names and their count are checked in auth/clients.ts, whose message says both.
  // The list comes first so that a wrong type is answered "must be array".
  keysets: { anyOf: [{ type: 'array', items: { type: 'string' } }, { type: 'string', const: '*' }] },
  scopes: { type: 'array', items: { type: 'string', enum: [...SCOPES] } },
  audiences: policyList('audiences', 'allowed aud values; with them every token needs an aud'),
  maxTtl: nullable({ type: 'integer' }),
  subjects: policyList('subjects', 'patterns sub must match (* matches any run of characters, all else is literal); with them every token needs a sub'),
  requiredClaims: policyList('requiredClaims', 'claim names every token must carry'),
  identity: nullable(workloadIdentity),
}

export const createClientBody = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    ...clientPolicyProperties,
    certificateSubject: nullable({ type: 'string', maxLength: MAX_SUBJECT_LENGTH, description: 'bind the client to the subject of its mutual-TLS client certificate, e.g. CN=billing-api,O=Acme' }),
    token: { type: 'boolean', description: 'with an identity: also issue a bearer token (default false)' },
  },
  required: ['name', 'keysets', 'scopes'],
  additionalProperties: false,
} as const

/**
 * PATCH /v1/admin/clients/{id}: the fields to change (at least one, checked by
 * ClientService.update with a message naming them); null clears an optional one.
 */
export const patchClientBody = {
  type: 'object',
  properties: clientPolicyProperties,
  additionalProperties: false,
} as const

export const clientAnswer = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    keysets: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
    scopes: { type: 'array', items: { type: 'string' } },
    audiences: nullable({ type: 'array', items: { type: 'string' } }),
    maxTtl: nullable({ type: 'integer' }),
    subjects: nullable({ type: 'array', items: { type: 'string' } }),
    requiredClaims: nullable({ type: 'array', items: { type: 'string' } }),
    certificateSubject: { type: 'string', description: 'present when the client is bound to a client certificate subject' },
    identity: { ...workloadIdentity, description: 'present when the client is bound to a workload identity' },
    createdAt: { type: 'string' },
    revokedAt: isoTime,
    token: { type: 'string', description: 'shown once, at creation' },
  },
} as const

export const clientListAnswer = {
  type: 'object',
  properties: { clients: { type: 'array', items: clientAnswer } },
} as const

// ---- admin: workload-identity issuers (docs/workload-identity.md)

const issuerText = { type: 'string', minLength: 1, maxLength: ISSUER_LIMITS.text }
const issuerJwks = {
  type: 'object',
  description: 'a static JWK Set: public RSA, EC or OKP keys only',
  properties: { keys: { type: 'array', minItems: 1, maxItems: ISSUER_LIMITS.keys, items: { type: 'object', required: ['kty'] } } },
  required: ['keys'],
}

const issuerPolicyProperties = {
  issuer: { ...issuerText, description: 'the exact iss of its tokens; unique' },
  jwksUri: nullable({ ...issuerText, format: 'uri', description: 'https, or http to a loopback address only' }),
  jwks: nullable(issuerJwks),
  audiences: { type: 'array', minItems: 1, maxItems: ISSUER_LIMITS.audiences, items: issuerText, description: 'accepted aud values, e.g. ["signet"]' },
  algorithms: { type: 'array', minItems: 1, maxItems: ALGORITHMS.length, items: { type: 'string', enum: [...ALGORITHMS] }, description: `asymmetric only; default ${ISSUER_DEFAULTS.algorithms.join(', ')}` },
  maxTokenLifetime: { type: 'integer', minimum: 1, maximum: ISSUER_LIMITS.maxTokenLifetime, description: `seconds from iat (or nbf) to exp; default ${ISSUER_DEFAULTS.maxTokenLifetime}` },
  caCertificate: nullable({ type: 'string', maxLength: ISSUER_LIMITS.caCertificateBytes, description: 'PEM of the CA of an https jwksUri' }),
}

export const createIssuerBody = {
  type: 'object',
  properties: { name: keysetName, ...issuerPolicyProperties },
  required: ['name', 'issuer', 'audiences'],
  additionalProperties: false,
} as const

export const patchIssuerBody = {
  type: 'object',
  properties: { name: { type: 'string' }, ...issuerPolicyProperties },
  additionalProperties: false,
} as const

export const issuerAnswer = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    issuer: { type: 'string' },
    jwksUri: nullable({ type: 'string' }),
    jwks: nullable({ type: 'object', properties: { keys: { type: 'array', items: { type: 'object', additionalProperties: true } } } }),
    audiences: { type: 'array', items: { type: 'string' } },
    algorithms: { type: 'array', items: { type: 'string' } },
    maxTokenLifetime: { type: 'integer' },
    caCertificate: nullable({ type: 'string' }),
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
  },
} as const

export const issuerListAnswer = {
  type: 'object',
  properties: { issuers: { type: 'array', items: issuerAnswer } },
} as const

export const auditQuery = {
  type: 'object',
  properties: {
    after: { type: 'integer', minimum: 0, default: 0 },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  },
  additionalProperties: false,
} as const

/** GET /v1/admin/audit/verify: the hash chain's state, as `signet audit verify` checks it. */
export const auditVerifyAnswer = {
  type: 'object',
  properties: {
    intact: { type: 'boolean' },
    events: { type: 'integer' },
    problems: {
      type: 'array',
      items: { type: 'object', properties: { id: { type: 'integer' }, reason: { type: 'string' } }, required: ['id', 'reason'] },
    },
  },
  required: ['intact', 'events', 'problems'],
} as const

export const auditAnswer = {
  type: 'object',
  properties: {
    events: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: { type: 'integer' },
          at: { type: 'string' },
          actor: { type: 'string' },
          action: { type: 'string' },
          target: { type: 'string' },
          details: { type: 'object', additionalProperties: true },
          prevHash: { type: 'string' },
          hash: { type: 'string' },
        },
      },
    },
    next: nullable({ type: 'integer' }),
  },
} as const

export const nameParams = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } as const
export const kidParams = { type: 'object', properties: { kid: { type: 'string' } }, required: ['kid'] } as const
export const idParams = { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } as const
