import { clientPolicy } from './auth/clients.js'
import { iso, isoOrNull } from './clock.js'
import { isRsa } from './crypto/algorithms.js'
import { publishedJwk } from './keys/jwks.js'
import type { AuditEvent, Client, Issuer, KeyRecord, Keyset } from './keys/model.js'

/** How keysets, keys, clients and audit events look in API answers (ISO 8601 UTC times). */

export function presentKeyset(keyset: Keyset, activeKid: string | null, prepublish: number) {
  return {
    name: keyset.name,
    alg: keyset.alg,
    rsaBits: isRsa(keyset.alg) ? keyset.rsaBits : null,
    issuer: keyset.issuer,
    defaultTtl: keyset.defaultTtl,
    maxTtl: keyset.maxTtl,
    rotationPeriod: keyset.rotationPeriod,
    prepublish,
    x5c: keyset.x5c,
    backend: keyset.backend,
    activeKid,
    createdAt: iso(keyset.createdAt),
    updatedAt: iso(keyset.updatedAt),
  }
}

/**
 * A key as the admin API shows it. `jwk` is its JWK Set entry when the caller says
 * whether the keyset publishes certificates (x5c); left out, the JWK has no x5c, as
 * the CLI's rotate, revoke and import show it.
 */
export function presentKey(key: KeyRecord, publishesCertificates = false) {
  return {
    kid: key.kid,
    keyset: key.keyset,
    alg: key.alg,
    state: key.state,
    createdAt: isoOrNull(key.createdAt),
    activatesAt: isoOrNull(key.activatesAt),
    activatedAt: isoOrNull(key.activatedAt),
    retiredAt: isoOrNull(key.retiredAt),
    publishedUntil: isoOrNull(key.publishedUntil),
    destroyedAt: isoOrNull(key.destroyedAt),
    revokedAt: isoOrNull(key.revokedAt),
    revokeReason: key.revokeReason,
    jwk: publishedJwk(key, publishesCertificates),
  }
}

export function presentClient(client: Client) {
  return {
    id: client.id,
    name: client.name,
    ...clientPolicy(client),
    // Only on bound clients, so an unbound client's answer keeps the fields docs/api.md lists (the client object).
    ...(client.certificateSubject ? { certificateSubject: client.certificateSubject } : {}),
    ...(client.identity ? { identity: client.identity } : {}),
    createdAt: iso(client.createdAt),
    revokedAt: isoOrNull(client.revokedAt),
  }
}

export function presentIssuer(issuer: Issuer) {
  return {
    name: issuer.name,
    issuer: issuer.issuer,
    jwksUri: issuer.jwksUri,
    jwks: issuer.jwks,
    audiences: issuer.audiences,
    algorithms: issuer.algorithms,
    maxTokenLifetime: issuer.maxTokenLifetime,
    caCertificate: issuer.caCertificate,
    createdAt: iso(issuer.createdAt),
    updatedAt: iso(issuer.updatedAt),
  }
}

export function presentAuditEvent(event: AuditEvent) {
  return { ...event, at: iso(event.at) }
}

/** One page of the audit log; `next` is the `after` of the next page, null on the last one. */
export function presentAuditPage(events: AuditEvent[], limit: number) {
  return { events: events.map(presentAuditEvent), next: events.length === limit ? events[events.length - 1]!.id : null }
}
