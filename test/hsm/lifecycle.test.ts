import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MasterKey } from '../../src/crypto/master-key.js'
import { MASTER_KEY_CHECK } from '../../src/keys/master-key-check.js'
import { unsealed } from '../../src/storage/sealed-storage.js'
import { createHarness, type Harness } from '../helpers/harness.js'
import { verifiesWith } from '../helpers/tokens.js'
import { HSM_SKIP, inspectToken, setupSoftHsm, type SoftHsm } from './softhsm.js'

interface Key { kid: string; state: string; activatesAt: string | null; publishedUntil: string | null }

if (HSM_SKIP) {
  describe('pkcs11 backend on SoftHSM2: rotation, revocation, destruction', () => {
    it.skip(HSM_SKIP, () => {})
  })
} else {
  describe('pkcs11 backend on SoftHSM2: rotation, revocation, destruction', () => {
    let softhsm: SoftHsm
    let token: ReturnType<SoftHsm['initToken']>
    let h: Harness
    let client: string

    const keys = async (keyset: string) => (await h.admin('GET', `/v1/admin/keysets/${keyset}/keys`)).json().keys as Key[]
    const jwks = async (keyset: string) => (await h.request('GET', `/keysets/${keyset}/jwks.json`)).json()
    const sign = async (keyset: string) => {
      const response = await h.request('POST', '/v1/sign', { token: client, body: { keyset, claims: { sub: 'u' } } })
      expect(response.statusCode, response.body).toBe(200)
      return response.json() as { token: string; kid: string }
    }
    /** The CKA_IDs of the token's objects, by class. */
    const tokenIds = () => {
      const objects = inspectToken(softhsm.module, token.label, token.pin)
      return {
        private: new Set(objects.filter((o) => o.class === 'private').map((o) => o.id)),
        public: new Set(objects.filter((o) => o.class === 'public').map((o) => o.id)),
      }
    }
    const idOf = (kid: string) => Buffer.from(kid, 'base64url').toString('hex')

    beforeAll(async () => {
      softhsm = setupSoftHsm()
      token = softhsm.initToken('signet-life')
      h = await createHarness({ env: token.env })
      client = (await h.createClient({ scopes: ['sign'] })).token
    })

    afterAll(async () => {
      await h?.close()
      softhsm?.remove()
    })

    it('scheduled rotation: pending in the JWKS first, signs after prepublish; the retired key is destroyed in the token when its time is up', async () => {
      await h.createKeyset({ name: 'sched', alg: 'ES256', backend: 'pkcs11', maxTtl: 600, defaultTtl: 600, rotationPeriod: 0 })
      const first = await sign('sched')
      const rotated = await h.admin('POST', '/v1/admin/keysets/sched/rotate', { mode: 'scheduled' })
      expect(rotated.statusCode, rotated.body).toBe(201)
      const next = rotated.json() as Key
      expect(next.state).toBe('pending')
      expect((await jwks('sched')).keys.map((k: { kid: string }) => k.kid)).toEqual([first.kid, next.kid])
      expect(tokenIds().private.has(idOf(next.kid))).toBe(true)
      // Before prepublish the old key signs.
      expect((await sign('sched')).kid).toBe(first.kid)

      h.clock.advance(3600 * 1000 - 1000)
      const lastOfFirst = await sign('sched')
      expect(lastOfFirst.kid).toBe(first.kid)
      h.clock.advance(1000)
      await h.signet.tick()
      const second = await sign('sched')
      expect(second.kid).toBe(next.kid)
      // A token of the old key still verifies against the JWKS now served.
      expect(await verifiesWith(lastOfFirst.token, await jwks('sched'), h.clock.now())).toBe(true)
      const retired = (await keys('sched')).find((k) => k.kid === first.kid)!
      expect(retired.state).toBe('retired')

      h.clock.advance(Date.parse(retired.publishedUntil!) - h.clock.now())
      await h.signet.tick()
      expect((await keys('sched')).find((k) => k.kid === first.kid)!.state).toBe('destroyed')
      expect((await jwks('sched')).keys.map((k: { kid: string }) => k.kid)).toEqual([next.kid])
      const ids = tokenIds()
      expect(ids.private.has(idOf(first.kid))).toBe(false)
      expect(ids.public.has(idOf(first.kid))).toBe(false)
      expect(ids.private.has(idOf(next.kid))).toBe(true)
    })

    it('immediate rotation: the new key signs at once, the old one stays published and in the token until destroyed', async () => {
      await h.createKeyset({ name: 'now', alg: 'RS256', backend: 'pkcs11', rotationPeriod: 0 })
      const first = await sign('now')
      const rotated = await h.admin('POST', '/v1/admin/keysets/now/rotate', { mode: 'immediate' })
      expect(rotated.statusCode, rotated.body).toBe(201)
      expect(rotated.json().state).toBe('active')
      const second = await sign('now')
      expect(second.kid).toBe(rotated.json().kid)
      expect(await verifiesWith(first.token, await jwks('now'), h.clock.now())).toBe(true)
      expect(await verifiesWith(second.token, await jwks('now'), h.clock.now())).toBe(true)
      expect(tokenIds().private.has(idOf(first.kid))).toBe(true)
    })

    it('revocation: the revoked key leaves the JWKS and the token at once, a replacement made in the token signs', async () => {
      await h.createKeyset({ name: 'rev', alg: 'ES384', backend: 'pkcs11', rotationPeriod: 0 })
      const first = await sign('rev')
      const revoked = await h.admin('POST', `/v1/admin/keys/${first.kid}/revoke`, { reason: 'compromised' })
      expect(revoked.statusCode, revoked.body).toBe(200)
      expect(revoked.json()).toMatchObject({ state: 'revoked', revokeReason: 'compromised' })
      const after = await sign('rev')
      expect(after.kid).not.toBe(first.kid)
      const published = (await jwks('rev')).keys.map((k: { kid: string }) => k.kid)
      expect(published).toEqual([after.kid])
      expect(await verifiesWith(first.token, await jwks('rev'), h.clock.now())).not.toBe(true)
      const ids = tokenIds()
      expect(ids.private.has(idOf(first.kid))).toBe(false)
      expect(ids.public.has(idOf(first.kid))).toBe(false)
      expect(ids.private.has(idOf(after.kid))).toBe(true)
      const rows = (await h.signet.storage.snapshot()).keys.filter((k) => k.keyset === 'rev')
      for (const row of rows) expect(row.privateKey).toBeNull()
    })

    it('revoking a pending key removes it from the token; the active key keeps signing', async () => {
      const pending = (await h.admin('POST', '/v1/admin/keysets/rev/rotate', { mode: 'scheduled' })).json() as Key
      const active = await sign('rev')
      expect(tokenIds().private.has(idOf(pending.kid))).toBe(true)
      expect((await h.admin('POST', `/v1/admin/keys/${pending.kid}/revoke`, { reason: 'not needed' })).statusCode).toBe(200)
      expect(tokenIds().private.has(idOf(pending.kid))).toBe(false)
      expect((await sign('rev')).kid).toBe(active.kid)
    })

    it('automatic rotation on the rotation period makes the next key inside the token', async () => {
      await h.createKeyset({ name: 'auto', alg: 'EdDSA', backend: 'pkcs11', rotationPeriod: 7200, prepublish: 3600 })
      const first = await sign('auto')
      h.clock.advance(3600 * 1000)
      await h.signet.tick()
      const pending = (await keys('auto')).find((k) => k.state === 'pending')
      expect(pending).toBeDefined()
      expect(tokenIds().private.has(idOf(pending!.kid))).toBe(true)
      h.clock.advance(3600 * 1000 - 1000)
      const lastOfFirst = await sign('auto')
      expect(lastOfFirst.kid).toBe(first.kid)
      h.clock.advance(1000)
      await h.signet.tick()
      const second = await sign('auto')
      expect(second.kid).toBe(pending!.kid)
      expect(await verifiesWith(lastOfFirst.token, await jwks('auto'), h.clock.now())).toBe(true)
      expect(await verifiesWith(second.token, await jwks('auto'), h.clock.now())).toBe(true)
    })

    it('every object left in the token belongs to a key Signet still publishes', async () => {
      const snapshot = await h.signet.storage.snapshot()
      const live = new Set(snapshot.keys.filter((k) => k.hsmId && ['pending', 'active', 'retired'].includes(k.state)).map((k) => k.hsmId))
      const ids = tokenIds()
      expect([...ids.private].sort()).toEqual([...live].sort())
      expect([...ids.public].sort()).toEqual([...live].sort())
    })

    it('signs nothing once the database is under another master key (a rewrap), HSM keys included, and signs again when it is back', async () => {
      await h.createKeyset({ name: 'rekeyed', alg: 'ES256', backend: 'pkcs11', rotationPeriod: 0 })
      await sign('rekeyed')
      const raw = unsealed(h.signet.storage)
      const original = (await raw.getMeta(MASTER_KEY_CHECK))!
      await raw.transaction((tx) => tx.setMeta(MASTER_KEY_CHECK, MasterKey.fromBytes(randomBytes(32)).checkValue()))
      await h.signet.keystore.refresh()
      const refused = await h.request('POST', '/v1/sign', { token: client, body: { keyset: 'rekeyed', claims: {} } })
      expect(refused.statusCode).toBe(503)
      expect(refused.json().code).toBe('sealed')
      await raw.transaction((tx) => tx.setMeta(MASTER_KEY_CHECK, original))
      await h.signet.keystore.refresh()
      await sign('rekeyed')
    })
  })
}
