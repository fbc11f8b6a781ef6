import { describe, expect, it } from 'vitest'
import { AUDIT_LAYOUT, CLIENT_LAYOUT, ISSUER_LAYOUT, KEY_LAYOUT, KEYSET_LAYOUT } from '../../src/storage/rows.js'

/**
 * The column layout (src/storage/rows.ts) pinned against rows as Signet stores
 * them: each row below is written out column by column as a driver hands it back
 * (numbers as bigint or string, JSON as text, 0/1 booleans, NULL for what is not
 * set), with the domain object it must read as, fields in order. A row's integrity
 * MAC covers that object, so a value read back differently (a 1 for true, a number
 * as a string) would change the MAC it is checked against: the exact object read is
 * what this pins.
 */

const cases = [
  {
    name: 'keyset',
    layout: KEYSET_LAYOUT,
    row: { mac: null, name: 'default', alg: 'RS256', rsa_bits: 3072n, issuer: null, default_ttl: '600', max_ttl: 3600, rotation_period: 7776000, prepublish: null, x5c: 1, backend: 'software', created_at: '1700000000000', updated_at: 1700000000001 },
    object: { name: 'default', alg: 'RS256', rsaBits: 3072, issuer: null, defaultTtl: 600, maxTtl: 3600, rotationPeriod: 7776000, prepublish: null, x5c: true, backend: 'software', createdAt: 1700000000000, updatedAt: 1700000000001 },
  },
  {
    name: 'key, with a MAC and binary columns',
    layout: KEY_LAYOUT,
    row: {
      mac: 'ab'.repeat(32), kid: 'kid-1', keyset: 'default', alg: 'ES256', state: 'active', public_jwk: '{"kty":"EC","crv":"P-256","x":"x","y":"y","kid":"kid-1"}',
      certificate: null, private_key: new Uint8Array([1, 2, 3]), hsm_id: null, created_at: 1, activates_at: null, activated_at: '2', retired_at: null,
      published_until: null, destroyed_at: null, revoked_at: null, revoke_reason: null, max_ttl_seen: 600,
    },
    object: {
      kid: 'kid-1', keyset: 'default', alg: 'ES256', state: 'active', publicJwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'kid-1' }, certificate: null,
      privateKey: Buffer.from([1, 2, 3]), hsmId: null, createdAt: 1, activatesAt: null, activatedAt: 2, retiredAt: null, publishedUntil: null, destroyedAt: null,
      revokedAt: null, revokeReason: null, maxTtlSeen: 600, mac: 'ab'.repeat(32),
    },
  },
  {
    name: 'client written before its optional columns: they stay absent',
    layout: CLIENT_LAYOUT,
    row: {
      mac: null, id: 'c1', name: 'billing', keysets: '"*"', scopes: '["sign"]', audiences: null, max_ttl: null, certificate_subject: null, subjects: null,
      required_claims: null, identity_issuer: null, identity_subject: null, token_hash: 'ff'.repeat(32), created_at: 5, revoked_at: null,
    },
    object: { id: 'c1', name: 'billing', keysets: '*', scopes: ['sign'], audiences: null, maxTtl: null, tokenHash: 'ff'.repeat(32), createdAt: 5, revokedAt: null },
  },
  {
    name: 'client with every optional column set',
    layout: CLIENT_LAYOUT,
    row: {
      mac: null, id: 'c2', name: 'api', keysets: '["default"]', scopes: '["sign","verify"]', audiences: '["api"]', max_ttl: 300, certificate_subject: 'CN=api',
      subjects: '["user-*"]', required_claims: '[]', identity_issuer: 'cluster', identity_subject: 'system:serviceaccount:*', token_hash: 'ee'.repeat(32), created_at: 6, revoked_at: 7,
    },
    object: {
      id: 'c2', name: 'api', keysets: ['default'], scopes: ['sign', 'verify'], audiences: ['api'], maxTtl: 300, tokenHash: 'ee'.repeat(32), createdAt: 6, revokedAt: 7,
      certificateSubject: 'CN=api', subjects: ['user-*'], requiredClaims: [], identity: { issuer: 'cluster', subject: 'system:serviceaccount:*' },
    },
  },
  {
    name: 'issuer',
    layout: ISSUER_LAYOUT,
    row: {
      mac: null, name: 'cluster', issuer: 'https://k8s', jwks_uri: null, jwks: '{"keys":[{"kty":"EC","kid":"k"}]}', audiences: '["signet"]', algorithms: '["ES256"]',
      max_token_lifetime: 3600, ca_certificate: null, created_at: 8, updated_at: 9,
    },
    object: { name: 'cluster', issuer: 'https://k8s', jwksUri: null, jwks: { keys: [{ kty: 'EC', kid: 'k' }] }, audiences: ['signet'], algorithms: ['ES256'], maxTokenLifetime: 3600, caCertificate: null, createdAt: 8, updatedAt: 9 },
  },
]

describe('the column layout of each table', () => {
  for (const { name, layout, row, object } of cases) {
    it(`reads a stored ${name} as its domain object, fields in order, and writes it back`, () => {
      const read = (layout.fromRow as (row: Record<string, unknown>) => Record<string, unknown>)(row)
      expect(read).toStrictEqual(object)
      expect(Object.keys(read)).toEqual(Object.keys(object))
      const written = (layout.toRow as (value: unknown) => Record<string, unknown>)(read)
      expect(Object.keys(written).sort()).toEqual([...layout.columns].sort())
      expect((layout.fromRow as (row: Record<string, unknown>) => unknown)(written)).toStrictEqual(object)
    })
  }

  it('reads an audit event (no MAC column) and names its columns, and a client\'s identity columns', () => {
    const row = { id: '3', at: 10n, actor: 'admin', action: 'keys.rotate', target: 'default', details: '{"mode":"scheduled"}', prev_hash: 'aa', hash: 'bb' }
    expect(AUDIT_LAYOUT.fromRow(row)).toStrictEqual({ id: 3, at: 10, actor: 'admin', action: 'keys.rotate', target: 'default', details: { mode: 'scheduled' }, prevHash: 'aa', hash: 'bb' })
    expect(AUDIT_LAYOUT.columns).toEqual(['id', 'at', 'actor', 'action', 'target', 'details', 'prev_hash', 'hash'])
    expect(CLIENT_LAYOUT.columns).toContain('identity_issuer')
    expect(CLIENT_LAYOUT.columns).toContain('identity_subject')
    expect(CLIENT_LAYOUT.columns).not.toContain('identity')
  })
})
