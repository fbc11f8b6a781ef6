import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness } from '../helpers/harness.js'
import { decodeToken } from '../helpers/tokens.js'
import { expectProblem, storedState } from './helpers.js'

/**
 * A client's claim policy tried as an attacker holding its token (docs/clients.md):
 * with audiences, no token without an allowed aud; with subjects, no token whose sub
 * is missing or matches no pattern; with requiredClaims, none without them. Each
 * refusal is a problem answer that changes nothing, on /v1/sign and in a batch.
 */
describe('client claim policy on /v1/sign and /v1/sign/batch', () => {
  let h: Harness
  let audienceBound: string
  let subjectBound: string
  let claimBound: string
  let before: string

  beforeAll(async () => {
    h = await createHarness()
    await h.createKeyset({ name: 'issued', issuer: 'https://issuer.example' })
    audienceBound = (await h.createClient({ scopes: ['sign'], audiences: ['api', 'web'] })).token
    subjectBound = (await h.createClient({ scopes: ['sign'], subjects: ['user-*', '*@acme.example', 'svc.billing', 'tenant-*-admin'] })).token
    claimBound = (await h.createClient({ scopes: ['sign'], requiredClaims: ['tenant', 'jti', 'iss'] })).token
    before = await storedState(h)
  })
  afterEach(async () => {
    expect(await storedState(h), 'storage changed').toBe(before)
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  const sign = (token: string, body: unknown) => h.request('POST', '/v1/sign', { token, body })
  const payloadOf = (response: { json: () => { token: string } }) => decodeToken(response.json().token).payload

  describe('audiences', () => {
    it('refuses a token without aud: 400 missing_claim', async () => {
      const body = expectProblem(await sign(audienceBound, { claims: { sub: 'u' } }), 400, 'missing_claim')
      expect(body.detail).toMatch(/aud is required/)
      expectProblem(await sign(audienceBound, { claims: {} }), 400, 'missing_claim')
    })

    it('refuses an aud outside the list, alone or among allowed ones, and an empty or non-string aud', async () => {
      expectProblem(await sign(audienceBound, { claims: { aud: 'other' } }), 403, 'audience_not_allowed')
      expectProblem(await sign(audienceBound, { claims: { aud: ['api', 'other'] } }), 403, 'audience_not_allowed')
      expectProblem(await sign(audienceBound, { claims: { aud: 'API' } }), 403, 'audience_not_allowed')
      expectProblem(await sign(audienceBound, { claims: { aud: [] } }), 400, 'invalid_request')
      expectProblem(await sign(audienceBound, { claims: { aud: null } }), 400, 'invalid_request')
      expectProblem(await sign(audienceBound, { claims: { aud: ['api', 7] } }), 400, 'invalid_request')
    })

    it('signs an allowed aud, as a string or a list of allowed values', async () => {
      expect(payloadOf(await sign(audienceBound, { claims: { aud: 'api' } })).aud).toBe('api')
      expect(payloadOf(await sign(audienceBound, { claims: { aud: ['api', 'web'] } })).aud).toEqual(['api', 'web'])
    })
  })

  describe('subjects', () => {
    it('refuses a token without sub (400 missing_claim) or with a non-string sub (400)', async () => {
      expectProblem(await sign(subjectBound, { claims: {} }), 400, 'missing_claim')
      expectProblem(await sign(subjectBound, { claims: { sub: 42 } }), 400, 'invalid_request')
      expectProblem(await sign(subjectBound, { claims: { sub: ['user-1'] } }), 400, 'invalid_request')
    })

    it.each([
      ['a different prefix', 'admin-1'],
      ['a look-alike domain', 'ann@acme.example.evil'],
      ['a regex reading of "."', 'svcXbilling'],
      ['a tail that does not match', 'tenant-7-admins'],
      ['head and tail overlapping', 'tenant-admin'],
      ['the empty string', ''],
      ['a case change', 'USER-1'],
    ])('refuses a sub outside every pattern (%s): 403 subject_not_allowed, value not echoed', async (_what, sub) => {
      const body = expectProblem(await sign(subjectBound, { claims: { sub } }), 403, 'subject_not_allowed')
      if (sub.length > 0) expect(JSON.stringify(body)).not.toContain(sub)
    })

    it.each(['user-42', 'user-', 'ann@acme.example', 'svc.billing', 'tenant-7-admin', 'tenant--admin'])('signs sub %j, which a pattern matches', async (sub) => {
      expect(payloadOf(await sign(subjectBound, { claims: { sub } })).sub).toBe(sub)
    })
  })

  describe('requiredClaims', () => {
    it('refuses a token missing a required claim: 400 missing_claim naming it', async () => {
      const body = expectProblem(await sign(claimBound, { claims: { sub: 'u' } }), 400, 'missing_claim')
      expect(body.detail).toContain('"tenant"')
    })

    it('counts a claim sent as null as carried, and the claims Signet stamps (jti, and iss on a keyset with an issuer)', async () => {
      expect(payloadOf(await sign(claimBound, { keyset: 'issued', claims: { tenant: null } }))).toMatchObject({ tenant: null, iss: 'https://issuer.example' })
    })

    it('refuses iss as a required claim on a keyset without an issuer unless the client sends it', async () => {
      expectProblem(await sign(claimBound, { claims: { tenant: 't' } }), 400, 'missing_claim')
      expect(payloadOf(await sign(claimBound, { claims: { tenant: 't', iss: 'me' } })).iss).toBe('me')
    })
  })

  describe('batches', () => {
    it('refuses the whole batch for one item without aud, naming its index, and signs nothing', async () => {
      const items = [{ claims: { aud: 'api' } }, { claims: { aud: 'web' } }, { claims: { sub: 'no aud' } }, { claims: { aud: 'api' } }]
      const response = await h.request('POST', '/v1/sign/batch', { token: audienceBound, body: { items } })
      const body = expectProblem(response, 400, 'missing_claim')
      expect(body.index).toBe(2)
      expect(body).not.toHaveProperty('results')
    })

    it('refuses the whole batch for one sub outside the patterns, naming its index', async () => {
      const items = [{ claims: { sub: 'user-1' } }, { claims: { sub: 'root' } }]
      const body = expectProblem(await h.request('POST', '/v1/sign/batch', { token: subjectBound, body: { items } }), 403, 'subject_not_allowed')
      expect(body.index).toBe(1)
    })

    it('refuses the whole batch for one item missing a required claim, naming its index', async () => {
      const items = [{ claims: { tenant: 'a' } }, { claims: { tenant: 'b' } }, { claims: { other: 1 } }]
      const body = expectProblem(await h.request('POST', '/v1/sign/batch', { token: claimBound, body: { keyset: 'issued', items } }), 400, 'missing_claim')
      expect(body.index).toBe(2)
    })

    it('signs a batch whose every item keeps the policy, each token with its aud', async () => {
      const items = [{ claims: { aud: 'api' } }, { claims: { aud: ['web'] } }]
      const response = await h.request('POST', '/v1/sign/batch', { token: audienceBound, body: { items } })
      expect(response.statusCode).toBe(200)
      const auds = response.json().results.map((result: { token: string }) => decodeToken(result.token).payload.aud)
      expect(auds).toEqual(['api', ['web']])
    })
  })
})
