import type { Alg, RsaBits } from '../crypto/algorithms.js'
import type { AuditEvent, Backend, Client, Issuer, KeyRecord, KeyState, Keyset, Scope } from '../keys/model.js'
import type { Stored } from './types.js'

/**
 * Mapping between the domain objects and the column layout that every SQL storage
 * shares (snake_case columns, JSON in text columns, times as epoch milliseconds).
 * Drivers may hand back numbers as bigint or string; `num` folds them.
 */
type Row = Record<string, unknown>

const num = (value: unknown): number => (typeof value === 'number' ? value : Number(value))
const numOrNull = (value: unknown): number | null => (value === null || value === undefined ? null : num(value))
const strOrNull = (value: unknown): string | null => (value === null || value === undefined ? null : String(value))
/** The MAC, present only when the row has one, so rows written before it look as they did. */
const macOf = (row: Row): { mac?: string } => (row.mac === null || row.mac === undefined ? {} : { mac: String(row.mac) })
const bufOrNull = (value: unknown): Buffer | null => (value === null || value === undefined ? null : Buffer.from(value as Uint8Array))

export function keysetFromRow(row: Row): Stored<Keyset> {
  return {
    name: String(row.name),
    alg: row.alg as Alg,
    rsaBits: num(row.rsa_bits) as RsaBits,
    issuer: strOrNull(row.issuer),
    defaultTtl: num(row.default_ttl),
    maxTtl: num(row.max_ttl),
    rotationPeriod: num(row.rotation_period),
    prepublish: numOrNull(row.prepublish),
    x5c: Boolean(num(row.x5c)),
    backend: row.backend as Backend,
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
    ...macOf(row),
  }
}

export function keysetToRow(keyset: Stored<Keyset>): Row {
  return {
    mac: keyset.mac ?? null,
    name: keyset.name,
    alg: keyset.alg,
    rsa_bits: keyset.rsaBits,
    issuer: keyset.issuer,
    default_ttl: keyset.defaultTtl,
    max_ttl: keyset.maxTtl,
    rotation_period: keyset.rotationPeriod,
    prepublish: keyset.prepublish,
    x5c: keyset.x5c ? 1 : 0,
    backend: keyset.backend,
    created_at: keyset.createdAt,
    updated_at: keyset.updatedAt,
  }
}

export const KEYSET_COLUMNS = Object.keys(keysetToRow({} as Keyset))

export function keyFromRow(row: Row): Stored<KeyRecord> {
  return {
    kid: String(row.kid),
    keyset: String(row.keyset),
    alg: row.alg as Alg,
    state: row.state as KeyState,
    publicJwk: JSON.parse(String(row.public_jwk)),
    certificate: bufOrNull(row.certificate),
    privateKey: bufOrNull(row.private_key),
    hsmId: strOrNull(row.hsm_id),
    createdAt: num(row.created_at),
    activatesAt: numOrNull(row.activates_at),
    activatedAt: numOrNull(row.activated_at),
    retiredAt: numOrNull(row.retired_at),
    publishedUntil: numOrNull(row.published_until),
    destroyedAt: numOrNull(row.destroyed_at),
    revokedAt: numOrNull(row.revoked_at),
    revokeReason: strOrNull(row.revoke_reason),
    maxTtlSeen: num(row.max_ttl_seen),
    ...macOf(row),
  }
}

export function keyToRow(key: Stored<KeyRecord>): Row {
  return {
    mac: key.mac ?? null,
    kid: key.kid,
    keyset: key.keyset,
    alg: key.alg,
    state: key.state,
    public_jwk: JSON.stringify(key.publicJwk),
    certificate: key.certificate,
    private_key: key.privateKey,
    hsm_id: key.hsmId,
    created_at: key.createdAt,
    activates_at: key.activatesAt,
    activated_at: key.activatedAt,
    retired_at: key.retiredAt,
    published_until: key.publishedUntil,
    destroyed_at: key.destroyedAt,
    revoked_at: key.revokedAt,
    revoke_reason: key.revokeReason,
    max_ttl_seen: key.maxTtlSeen,
  }
}

export const KEY_COLUMNS = Object.keys(keyToRow({ publicJwk: {} } as KeyRecord))

export function clientFromRow(row: Row): Stored<Client> {
  const keysets = JSON.parse(String(row.keysets)) as string[] | '*'
  return {
    id: String(row.id),
    name: String(row.name),
    keysets,
    scopes: JSON.parse(String(row.scopes)) as Scope[],
    audiences: row.audiences === null || row.audiences === undefined ? null : (JSON.parse(String(row.audiences)) as string[]),
    maxTtl: numOrNull(row.max_ttl),
    tokenHash: String(row.token_hash),
    createdAt: num(row.created_at),
    revokedAt: numOrNull(row.revoked_at),
    ...macOf(row),
    // Present only when bound, so unbound clients look as they did before the column.
    ...(row.certificate_subject === null || row.certificate_subject === undefined ? {} : { certificateSubject: String(row.certificate_subject) }),
    // Likewise the claim policy: present only when set.
    ...(row.subjects === null || row.subjects === undefined ? {} : { subjects: JSON.parse(String(row.subjects)) as string[] }),
    ...(row.required_claims === null || row.required_claims === undefined ? {} : { requiredClaims: JSON.parse(String(row.required_claims)) as string[] }),
    ...(row.identity_issuer === null || row.identity_issuer === undefined ? {} : { identity: { issuer: String(row.identity_issuer), subject: String(row.identity_subject) } }),
  }
}

export function clientToRow(client: Stored<Client>): Row {
  return {
    mac: client.mac ?? null,
    id: client.id,
    name: client.name,
    keysets: JSON.stringify(client.keysets),
    scopes: JSON.stringify(client.scopes),
    audiences: client.audiences === null ? null : JSON.stringify(client.audiences),
    max_ttl: client.maxTtl,
    certificate_subject: client.certificateSubject ?? null,
    subjects: client.subjects ? JSON.stringify(client.subjects) : null,
    required_claims: client.requiredClaims ? JSON.stringify(client.requiredClaims) : null,
    identity_issuer: client.identity?.issuer ?? null,
    identity_subject: client.identity?.subject ?? null,
    token_hash: client.tokenHash,
    created_at: client.createdAt,
    revoked_at: client.revokedAt,
  }
}

export const CLIENT_COLUMNS = Object.keys(clientToRow({ audiences: null } as Client))

export function issuerFromRow(row: Row): Stored<Issuer> {
  return {
    name: String(row.name),
    issuer: String(row.issuer),
    jwksUri: strOrNull(row.jwks_uri),
    jwks: row.jwks === null || row.jwks === undefined ? null : JSON.parse(String(row.jwks)),
    audiences: JSON.parse(String(row.audiences)) as string[],
    algorithms: JSON.parse(String(row.algorithms)) as Alg[],
    maxTokenLifetime: num(row.max_token_lifetime),
    caCertificate: strOrNull(row.ca_certificate),
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
    ...macOf(row),
  }
}

export function issuerToRow(issuer: Stored<Issuer>): Row {
  return {
    mac: issuer.mac ?? null,
    name: issuer.name,
    issuer: issuer.issuer,
    jwks_uri: issuer.jwksUri,
    jwks: issuer.jwks === null ? null : JSON.stringify(issuer.jwks),
    audiences: JSON.stringify(issuer.audiences),
    algorithms: JSON.stringify(issuer.algorithms),
    max_token_lifetime: issuer.maxTokenLifetime,
    ca_certificate: issuer.caCertificate,
    created_at: issuer.createdAt,
    updated_at: issuer.updatedAt,
  }
}

export const ISSUER_COLUMNS = Object.keys(issuerToRow({ jwks: null } as Issuer))

export function auditFromRow(row: Row): AuditEvent {
  return {
    id: num(row.id),
    at: num(row.at),
    actor: String(row.actor),
    action: String(row.action),
    target: String(row.target),
    details: JSON.parse(String(row.details)),
    prevHash: String(row.prev_hash),
    hash: String(row.hash),
  }
}

export function auditToRow(event: AuditEvent): Row {
  return {
    id: event.id,
    at: event.at,
    actor: event.actor,
    action: event.action,
    target: event.target,
    details: JSON.stringify(event.details),
    prev_hash: event.prevHash,
    hash: event.hash,
  }
}

export const AUDIT_COLUMNS = Object.keys(auditToRow({} as AuditEvent))
