import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { toPublicJwk } from '../../src/crypto/jwk.js'
import { MasterKey } from '../../src/crypto/master-key.js'
import { IntegrityKeys } from '../../src/storage/row-integrity.js'
import { newMasterKey } from '../helpers/temp.js'
import { clientRecord, keyRecord } from './contract.js'

/**
 * The row MAC itself (storage/row-integrity.ts): what it covers and what it must
 * leave alone so that columns added by later migrations keep existing rows valid.
 */
describe('row integrity', () => {
  const master = MasterKey.fromBase64(newMasterKey())
  const keys = new IntegrityKeys(master)

  it('derives independent keys per purpose, the same for the same master key', () => {
    const rows = master.deriveKey('signet row integrity v1')
    expect(rows).toHaveLength(32)
    expect(rows.equals(master.deriveKey('signet audit chain v1'))).toBe(false)
    expect(rows.equals(MasterKey.fromBytes(master.bytes).deriveKey('signet row integrity v1'))).toBe(true)
    expect(rows.equals(MasterKey.fromBase64(newMasterKey()).deriveKey('signet row integrity v1'))).toBe(false)
    expect(JSON.stringify(keys)).toBe('"[IntegrityKeys]"')
  })

  it('covers every field, the table and the primary key', async () => {
    const client = clientRecord('c1', { audiences: ['api'] })
    const sealed = keys.seal('clients', client)
    expect(await keys.check('clients', sealed)).toBeNull()
    for (const changed of [{ audiences: null }, { scopes: ['admin'] }, { maxTtl: 99 }, { revokedAt: null, name: 'x' }, { id: 'c2' }]) {
      expect(await keys.check('clients', { ...sealed, ...changed } as never), JSON.stringify(changed)).toMatch(/does not match/)
    }
    // The same fields under another table or another key do not pass.
    expect(keys.mac('keysets', 'c1', client)).not.toBe(sealed.mac)
    expect(await new IntegrityKeys(MasterKey.fromBase64(newMasterKey())).check('clients', sealed)).toMatch(/does not match/)
    expect(await keys.check('clients', client)).toMatch(/no integrity MAC/)
  })

  it('keeps a MAC valid when a field that is null or absent is added, and covers any value it takes', async () => {
    const sealed = keys.seal('clients', clientRecord('c1'))
    expect(await keys.check('clients', { ...sealed, subjects: null } as never)).toBeNull()
    expect(await keys.check('clients', { ...sealed, subjects: ['user-*'] } as never)).toMatch(/does not match/)
  })

  it('checks that a key\'s kid is the thumbprint of its public JWK', async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const publicJwk = await toPublicJwk(publicKey, 'ES256')
    const genuine = keyRecord('default', 'active', { kid: publicJwk.kid, publicJwk })
    expect(await keys.check('keys', keys.seal('keys', genuine))).toBeNull()
    // Sealed (as if by Signet) yet inconsistent: still refused.
    expect(await keys.check('keys', keys.seal('keys', { ...genuine, kid: 'other' }))).toMatch(/another kid/)
    expect(await keys.check('keys', keys.seal('keys', { ...genuine, kid: 'other', publicJwk: { ...publicJwk, kid: 'other' } }))).toMatch(/not the RFC 7638 thumbprint/)
  })
})
