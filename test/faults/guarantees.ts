import { createPrivateKey, createPublicKey } from 'node:crypto'
import { calculateJwkThumbprint, createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose'
import { expect } from 'vitest'
import { verifyChain } from '../../src/audit/chain.js'
import { IntegrityKeys } from '../../src/storage/row-integrity.js'
import { open as openEnvelope } from '../../src/crypto/envelope.js'
import type { MasterKey } from '../../src/crypto/master-key.js'
import type { AuditEvent } from '../../src/keys/model.js'
import type { Snapshot } from '../../src/storage/types.js'

/**
 * Checks of the guarantees (docs/guarantees.md) on what storage holds and what the service serves,
 * shared by the storage-fault and crash tests. Each takes plain data so it can run
 * on a database read directly as well as through a running service.
 */

/** A token as a client recorded it when it was answered. */
export interface IssuedToken {
  token: string
  kid: string
  keyset: string
  alg: string
  exp: number
  /** The keyset's active kid as the service reported it when the token was signed (guarantee 7). */
  activeKid?: string | null
}

const PUBLISHED = new Set(['pending', 'active', 'retired'])

/**
 * Guarantees 2 and 6 on a snapshot: exactly one active key per keyset; every
 * published key still holds its private key, encrypted, opening with the master
 * key only under its own kid, keyset and alg, and matching its public key; keys
 * revoked or destroyed hold no private material.
 */
export async function checkStoredKeys(snapshot: Snapshot, masterKey: MasterKey): Promise<void> {
  for (const keyset of snapshot.keysets) {
    const keys = snapshot.keys.filter((key) => key.keyset === keyset.name)
    expect(keys.filter((key) => key.state === 'active').length, `active keys of ${keyset.name}`).toBe(1)
  }
  const keysetNames = new Set(snapshot.keysets.map((keyset) => keyset.name))
  for (const key of snapshot.keys) {
    expect(keysetNames.has(key.keyset), `key ${key.kid} belongs to a keyset`).toBe(true)
    if (!PUBLISHED.has(key.state)) {
      expect(key.privateKey, `${key.state} key ${key.kid} holds no private material`).toBeNull()
      continue
    }
    if (key.hsmId !== null) continue
    expect(key.privateKey, `published key ${key.kid} has its private key`).not.toBeNull()
    const der = openEnvelope(masterKey, key.privateKey!, { kid: key.kid, keyset: key.keyset, alg: key.alg })
    // The ciphertext is not the plaintext, and does not open under another binding.
    expect(key.privateKey!.includes(der.subarray(-32))).toBe(false)
    expect(() => openEnvelope(masterKey, key.privateKey!, { kid: key.kid, keyset: `${key.keyset}-other`, alg: key.alg })).toThrow()
    const publicJwk = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' })
    expect(await calculateJwkThumbprint(publicJwk as never), `key ${key.kid} matches its kid`).toBe(key.kid)
  }
}

/** The audit log is one unbroken chain, keyed under the master key. */
export function checkAuditChain(events: AuditEvent[], masterKey: MasterKey): void {
  const check = verifyChain(events, null, new IntegrityKeys(masterKey).audit)
  expect(check, JSON.stringify(check)).toMatchObject({ ok: true })
}

/**
 * Guarantees 4 and 7 for tokens answered earlier: each was signed with its keyset's
 * algorithm (raw R||S for ECDSA) by the key that was active then; each whose key
 * is not revoked and which has not expired verifies against `jwks` at `nowMs`;
 * each whose key is revoked does not.
 */
export async function checkIssuedTokens(tokens: IssuedToken[], jwksByKeyset: Record<string, JSONWebKeySet>, revoked: Set<string>, nowMs: number): Promise<{ verified: number; revoked: number; expired: number }> {
  const counts = { verified: 0, revoked: 0, expired: 0 }
  const sets = Object.fromEntries(Object.entries(jwksByKeyset).map(([name, jwks]) => [name, createLocalJWKSet(jwks)]))
  const ecdsaLength: Record<string, number> = { ES256: 64, ES384: 96, ES512: 132 }
  for (const issued of tokens) {
    const [encodedHeader, , signature] = issued.token.split('.')
    const header = JSON.parse(Buffer.from(encodedHeader!, 'base64url').toString())
    expect(header.alg).toBe(issued.alg)
    expect(header.kid).toBe(issued.kid)
    if (issued.activeKid !== undefined) expect(issued.kid, 'signed by the active key').toBe(issued.activeKid)
    if (ecdsaLength[issued.alg]) expect(Buffer.from(signature!, 'base64url').length).toBe(ecdsaLength[issued.alg])
    const set = sets[issued.keyset]
    expect(set, `the JWK Set of ${issued.keyset}`).toBeDefined()
    if (revoked.has(issued.kid)) {
      await expect(jwtVerify(issued.token, set!, { currentDate: new Date(nowMs), algorithms: [issued.alg] }), `token of revoked ${issued.kid}`).rejects.toThrow()
      counts.revoked++
      continue
    }
    if (issued.exp * 1000 <= nowMs) {
      counts.expired++
      continue
    }
    const result = await jwtVerify(issued.token, set!, { currentDate: new Date(nowMs), algorithms: [issued.alg] }).then(() => 'ok', (error: { code?: string }) => error.code ?? String(error))
    expect(result, `token of ${issued.kid} (${issued.keyset}) still verifies`).toBe('ok')
    counts.verified++
  }
  return counts
}

/**
 * Guarantee 5: a key activated by the schedule was in the JWK Set at least
 * `prepublish` seconds before it signed. `firstSeen` holds when each kid was first
 * seen published; immediate rotations, imports activated at once, a keyset's first
 * key and keys promoted by a revocation are the exceptions docs/guarantees.md names.
 */
export function checkPrepublish(snapshot: Snapshot, audit: AuditEvent[], firstSeen: Map<string, number>, prepublishOf: (keyset: string) => number): number {
  const immediate = new Set<string>()
  for (const event of audit) {
    const details = event.details as Record<string, unknown>
    if ((event.action === 'key.rotate' || event.action === 'key.import') && (details.mode === 'immediate' || details.activate === 'immediate')) immediate.add(event.target)
    if (event.action === 'keyset.create' && typeof details.kid === 'string') immediate.add(details.kid)
    if (event.action === 'key.state' && details.to === 'active' && details.reason !== undefined) immediate.add(event.target)
  }
  let checked = 0
  for (const key of snapshot.keys) {
    if (key.activatedAt === null || immediate.has(key.kid)) continue
    const prepublishMs = prepublishOf(key.keyset) * 1000
    expect(key.activatedAt - key.createdAt, `${key.kid} was pending for prepublish`).toBeGreaterThanOrEqual(prepublishMs)
    const seen = firstSeen.get(key.kid)
    if (seen !== undefined) expect(key.activatedAt - seen, `${key.kid} was published for prepublish before it signed`).toBeGreaterThanOrEqual(prepublishMs)
    checked++
  }
  return checked
}
