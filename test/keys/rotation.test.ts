import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JSONWebKeySet } from 'jose'
import { createHarness, type Harness } from '../helpers/harness.js'
import { decodeToken, verifiesWith } from '../helpers/tokens.js'

const HOUR = 3600_000
const DAY = 24 * HOUR

/**
 * Acceptance 2 of the core issue: with a moved clock, scheduled rotation, immediate
 * rotation, revocation, retirement and destruction follow docs/key-lifecycle.md and
 * guarantees 4 and 5; a token signed just before each transition verifies against
 * the JWK Set served after it until its exp; a pending key never signs; exactly one
 * key is active at every step.
 */
describe('key lifecycle with a moved clock', () => {
  let h: Harness
  let token: string
  const keyset = 'rot'

  beforeAll(async () => {
    h = await createHarness()
    await h.createKeyset({ name: keyset, alg: 'ES256', rotationPeriod: 86_400, prepublish: 3600, maxTtl: 3600, defaultTtl: 600 })
    token = (await h.createClient({ keysets: [keyset] })).token
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  const keys = async () => (await h.admin('GET', `/v1/admin/keysets/${keyset}/keys`)).json().keys as { kid: string; state: string; createdAt: string; activatedAt: string | null; publishedUntil: string | null }[]
  const jwks = async (): Promise<JSONWebKeySet> => (await h.request('GET', `/keysets/${keyset}/jwks.json`)).json()
  const sign = async (ttl = 3600) => {
    const response = await h.request('POST', '/v1/sign', { token, body: { keyset, claims: { sub: 'user-1' }, ttl } })
    expect(response.statusCode).toBe(200)
    return response.json() as { token: string; kid: string; exp: number }
  }
  /** Invariants that hold at every step. */
  const checkInvariants = async () => {
    const list = await keys()
    const active = list.filter((k) => k.state === 'active')
    expect(active).toHaveLength(1)
    const signed = await sign(60)
    expect(signed.kid).toBe(active[0]!.kid)
    const published = (await jwks()).keys.map((k) => k.kid)
    for (const key of list) {
      expect(published.includes(key.kid), `${key.kid} (${key.state}) published`).toBe(['pending', 'active', 'retired'].includes(key.state))
    }
    return { list, active: active[0]! }
  }
  /** Signs just before `transition`, then checks the token against the JWKS served after it, until its exp. */
  const acrossTransition = async (transition: () => Promise<void>) => {
    const before = await sign(3600)
    await transition()
    const after = await jwks()
    expect(await verifiesWith(before.token, after, h.clock.now())).toBe(true)
    expect(await verifiesWith(before.token, after, before.exp * 1000 - 1000)).toBe(true)
    await checkInvariants()
    return before
  }

  it('walks a key through pending, active, retired and destroyed on schedule', async () => {
    const start = h.clock.now()
    const first = (await checkInvariants()).active

    // Not yet prepublish before the rotation is due: nothing happens.
    h.clock.set(start + DAY - HOUR - 1000)
    await h.signet.tick()
    expect((await keys()).length).toBe(1)

    // prepublish (1 h) before the rotation is due, a pending key is published.
    await acrossTransition(async () => {
      h.clock.set(start + DAY - HOUR)
      expect(await h.signet.tick()).toBeGreaterThan(0)
    })
    const pending = (await keys()).find((k) => k.state === 'pending')!
    expect(pending).toBeDefined()
    expect((await jwks()).keys.map((k) => k.kid)).toContain(pending.kid)

    // A pending key never signs, right up to its activation time.
    h.clock.set(start + DAY - 1000)
    await h.signet.tick()
    expect((await sign()).kid).toBe(first.kid)

    // At activatesAt the pending key signs and the old one retires, still published.
    const lastOfFirst = await acrossTransition(async () => {
      h.clock.set(start + DAY)
      await h.signet.tick()
    })
    const afterActivation = await keys()
    const retired = afterActivation.find((k) => k.kid === first.kid)!
    expect(retired.state).toBe('retired')
    expect(afterActivation.find((k) => k.kid === pending.kid)!.state).toBe('active')
    // Guarantee 5: the new key was published for at least prepublish before it signed.
    const next = afterActivation.find((k) => k.kid === pending.kid)!
    expect(Date.parse(next.activatedAt!) - Date.parse(next.createdAt)).toBeGreaterThanOrEqual(HOUR)
    // publishedUntil = retiredAt + maxTtl + 60 s skew.
    expect(Date.parse(retired.publishedUntil!)).toBe(start + DAY + (3600 + 60) * 1000)

    // Until publishedUntil the retired key stays published; the last token it signed verifies until exp.
    h.clock.set(Date.parse(retired.publishedUntil!) - 1000)
    await h.signet.tick()
    expect((await jwks()).keys.map((k) => k.kid)).toContain(first.kid)
    expect(await verifiesWith(lastOfFirst.token, await jwks(), lastOfFirst.exp * 1000 - 1000)).toBe(true)

    // At publishedUntil it is destroyed: unpublished, and its private material is gone from storage.
    await acrossTransition(async () => {
      h.clock.set(Date.parse(retired.publishedUntil!))
      await h.signet.tick()
    })
    expect((await keys()).find((k) => k.kid === first.kid)!.state).toBe('destroyed')
    const stored = (await h.signet.storage.snapshot()).keys.find((k) => k.kid === first.kid)!
    expect(stored.privateKey).toBeNull()
    expect(stored.destroyedAt).toBe(Date.parse(retired.publishedUntil!))
  })

  it('rotates immediately on request: the new key signs at once, earlier tokens still verify', async () => {
    const before = (await checkInvariants()).active
    let created = ''
    await acrossTransition(async () => {
      const response = await h.admin('POST', `/v1/admin/keysets/${keyset}/rotate`, { mode: 'immediate' })
      expect(response.statusCode).toBe(201)
      expect(response.json().state).toBe('active')
      expect(response.json().activatesAt).toBe(response.json().activatedAt)
      created = response.json().kid
    })
    expect((await sign()).kid).toBe(created)
    expect((await keys()).find((k) => k.kid === before.kid)!.state).toBe('retired')
  })

  it('a scheduled rotation from the API activates only after prepublish', async () => {
    const response = await h.admin('POST', `/v1/admin/keysets/${keyset}/rotate`, {})
    expect(response.statusCode).toBe(201)
    const key = response.json()
    expect(key.state).toBe('pending')
    expect(Date.parse(key.activatesAt) - h.clock.now()).toBe(HOUR)
    h.clock.advance(HOUR - 1000)
    await h.signet.tick()
    expect((await sign()).kid).not.toBe(key.kid)
    await acrossTransition(async () => {
      h.clock.advance(1000)
      await h.signet.tick()
    })
    expect((await sign()).kid).toBe(key.kid)
  })

  it('revoking the active key removes it from the JWKS and activates a replacement at once', async () => {
    const { active } = await checkInvariants()
    const signedByRevoked = await sign()
    const response = await h.admin('POST', `/v1/admin/keys/${active.kid}/revoke`, { reason: 'key compromise' })
    expect(response.statusCode).toBe(200)
    expect(response.json()).toMatchObject({ kid: active.kid, state: 'revoked', revokeReason: 'key compromise' })
    const published = (await jwks()).keys.map((k) => k.kid)
    expect(published).not.toContain(active.kid)
    const replacement = await sign()
    expect(replacement.kid).not.toBe(active.kid)
    // A token of the revoked key no longer verifies (guarantee 4 ends at revocation).
    expect(await verifiesWith(signedByRevoked.token, await jwks(), h.clock.now())).not.toBe(true)
    await checkInvariants()
    const stored = (await h.signet.storage.snapshot()).keys.find((k) => k.kid === active.kid)!
    expect(stored.privateKey).toBeNull()
  })

  it('revoking the active key promotes the pending key when there is one', async () => {
    const pending = (await h.admin('POST', `/v1/admin/keysets/${keyset}/rotate`, { mode: 'scheduled' })).json()
    const { active } = await checkInvariants()
    await h.admin('POST', `/v1/admin/keys/${active.kid}/revoke`, { reason: 'test' })
    expect((await sign()).kid).toBe(pending.kid)
    await checkInvariants()
  })

  it('revoking a pending or retired key unpublishes it and leaves signing alone', async () => {
    const pending = (await h.admin('POST', `/v1/admin/keysets/${keyset}/rotate`, {})).json()
    const signer = (await sign()).kid
    await acrossTransition(async () => {
      expect((await h.admin('POST', `/v1/admin/keys/${pending.kid}/revoke`, { reason: 'not needed' })).statusCode).toBe(200)
    })
    expect((await jwks()).keys.map((k) => k.kid)).not.toContain(pending.kid)
    expect((await sign()).kid).toBe(signer)
    const again = await h.admin('POST', `/v1/admin/keys/${pending.kid}/revoke`, { reason: 'twice' })
    expect(again.statusCode).toBe(409)
    expect(again.json().code).toBe('conflict')
  })

  it('records every key state change in the audit log', async () => {
    const events = (await h.admin('GET', '/v1/admin/audit?limit=1000')).json().events as { action: string; details: Record<string, unknown> }[]
    const transitions = events.filter((e) => e.action === 'key.state').map((e) => `${e.details.from}->${e.details.to}`)
    for (const expected of ['pending->active', 'active->retired', 'retired->destroyed', 'active->revoked', 'pending->revoked', 'null->pending']) {
      expect(transitions).toContain(expected)
    }
  })

  it('a new token never outlives the JWKS entry of its key', async () => {
    const signed = decodeToken((await sign(3600)).token)
    const key = (await keys()).find((k) => k.kid === signed.header.kid)!
    expect(key.state).toBe('active')
    // Rotate now: the retiring key must stay published at least until the token's exp.
    await h.admin('POST', `/v1/admin/keysets/${keyset}/rotate`, { mode: 'immediate' })
    const retired = (await keys()).find((k) => k.kid === key.kid)!
    expect(Date.parse(retired.publishedUntil!)).toBeGreaterThanOrEqual((signed.payload.exp as number) * 1000)
  })
})
