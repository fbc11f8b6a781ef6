import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness } from '../helpers/harness.js'
import { within } from '../helpers/wait.js'
import { expectProblem, storedState } from '../security/helpers.js'

/** PATCH /v1/admin/clients/{id}: a client's policy changes for its next request, audited. */
describe('PATCH /v1/admin/clients/{id}', () => {
  let h: Harness

  beforeAll(async () => {
    h = await createHarness()
    await h.createKeyset({ name: 'extra' })
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  const sign = (token: string, body: unknown) => h.request('POST', '/v1/sign', { token, body })
  const patch = (id: string, body: unknown) => h.admin('PATCH', `/v1/admin/clients/${id}`, body)

  it('narrows a client: the next sign call is held to the new policy', async () => {
    const client = await h.createClient({ keysets: '*', scopes: ['sign'] })
    expect((await sign(client.token, { keyset: 'extra', claims: {} })).statusCode).toBe(200)
    const answer = await patch(client.id, { keysets: ['default'], audiences: ['api'], maxTtl: 60, subjects: ['user-*'], requiredClaims: ['tenant'] })
    expect(answer.statusCode, answer.body).toBe(200)
    expect(answer.json()).toMatchObject({ id: client.id, keysets: ['default'], audiences: ['api'], maxTtl: 60, subjects: ['user-*'], requiredClaims: ['tenant'], revokedAt: null })
    expect(answer.json()).not.toHaveProperty('token')
    expectProblem(await sign(client.token, { keyset: 'extra', claims: { aud: 'api', sub: 'user-1', tenant: 't' } }), 403, 'forbidden')
    expectProblem(await sign(client.token, { claims: { sub: 'user-1', tenant: 't' } }), 400, 'missing_claim')
    expectProblem(await sign(client.token, { claims: { aud: 'api', sub: 'root', tenant: 't' } }), 403, 'subject_not_allowed')
    expectProblem(await sign(client.token, { claims: { aud: 'api', sub: 'user-1' } }), 400, 'missing_claim')
    expectProblem(await sign(client.token, { claims: { aud: 'api', sub: 'user-1', tenant: 't' }, ttl: 61 }), 400, 'ttl_too_long')
    expect((await sign(client.token, { claims: { aud: 'api', sub: 'user-1', tenant: 't' } })).statusCode).toBe(200)
  })

  it('widens a client, and null clears each optional limit', async () => {
    const client = await h.createClient({ keysets: ['default'], scopes: ['sign'], audiences: ['api'], maxTtl: 60, subjects: ['user-*'], requiredClaims: ['tenant'] })
    expectProblem(await sign(client.token, { keyset: 'extra', claims: {} }), 403, 'forbidden')
    const answer = (await patch(client.id, { keysets: ['default', 'extra'], scopes: ['sign', 'verify'], audiences: null, maxTtl: null, subjects: null, requiredClaims: null })).json()
    expect(answer).toMatchObject({ keysets: ['default', 'extra'], scopes: ['sign', 'verify'], audiences: null, maxTtl: null, subjects: null, requiredClaims: null })
    const signed = await sign(client.token, { keyset: 'extra', claims: {}, ttl: 900 })
    expect(signed.statusCode).toBe(200)
    expect((await h.request('POST', '/v1/verify', { token: client.token, body: { token: signed.json().token, keyset: 'extra' } })).json().valid).toBe(true)
    // Stored as cleared, not only answered so.
    const stored = (await h.signet.storage.transaction((tx) => tx.clients.get(client.id)))!
    expect(stored).toMatchObject({ audiences: null, maxTtl: null })
    expect(stored.subjects ?? null).toBeNull()
    expect(stored.requiredClaims ?? null).toBeNull()
  })

  it('leaves fields it does not name as they were', async () => {
    const client = await h.createClient({ keysets: ['default'], scopes: ['sign'], audiences: ['api'], maxTtl: 60 })
    expect((await patch(client.id, { subjects: ['svc-*'] })).json()).toMatchObject({ keysets: ['default'], scopes: ['sign'], audiences: ['api'], maxTtl: 60, subjects: ['svc-*'], requiredClaims: null })
  })

  it('audits who changed what on which client, each changed field before and after, without secrets, before it answers', async () => {
    const client = await h.createClient({ keysets: ['default'], scopes: ['sign'], audiences: ['api'] })
    const last = (await h.signet.storage.listAudit(0, 100_000)).at(-1)!.id
    await patch(client.id, { audiences: ['api', 'web'], subjects: ['user-*'], scopes: ['sign'] })
    const events = await h.signet.storage.listAudit(last, 10)
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({
      actor: 'admin',
      action: 'client.update',
      target: client.id,
      details: { name: 'test client', changes: { audiences: { before: ['api'], after: ['api', 'web'] }, subjects: { before: null, after: ['user-*'] } } },
    })
    expect(Object.keys(events[0]!.details.changes as object).sort()).toEqual(['audiences', 'subjects'])
    const stored = (await h.signet.storage.transaction((tx) => tx.clients.get(client.id)))!
    expect(JSON.stringify(events[0])).not.toContain(stored.tokenHash)
    expect(JSON.stringify(events[0])).not.toContain(client.token)
  })

  it('answers 404 client_not_found for an unknown id, and changes nothing', async () => {
    const before = await storedState(h)
    expectProblem(await patch('00000000-0000-4000-8000-000000000000', { maxTtl: 10 }), 404, 'client_not_found')
    expectProblem(await patch('no-such-client', { maxTtl: 10 }), 404, 'client_not_found')
    expect(await storedState(h)).toBe(before)
  })

  it('answers 409 for a revoked client, which stays revoked and unchanged', async () => {
    const client = await h.createClient({ keysets: ['default'], scopes: ['sign'] })
    await h.admin('DELETE', `/v1/admin/clients/${client.id}`)
    const before = await storedState(h)
    expectProblem(await patch(client.id, { keysets: '*' }), 409, 'conflict')
    expect(await storedState(h)).toBe(before)
    expectProblem(await sign(client.token, { claims: {} }), 401, 'unauthorized')
  })

  it.each([
    ['an empty body', {}],
    ['an unknown field', { name: 'renamed' }],
    ['a token', { token: 'signet_mine' }],
    ['identity fields it does not take', { certificateSubject: 'CN=x' }],
    ['null keysets', { keysets: null }],
    ['empty keysets', { keysets: [] }],
    ['a bad keyset name', { keysets: ['Bad!'] }],
    ['null scopes', { scopes: null }],
    ['an unknown scope', { scopes: ['root'] }],
    ['an empty audiences list', { audiences: [] }],
    ['an empty audience', { audiences: [''] }],
    ['maxTtl 0', { maxTtl: 0 }],
    ['maxTtl as a string', { maxTtl: '60' }],
    ['subjects as a string', { subjects: 'user-*' }],
    ['an empty subjects list', { subjects: [] }],
    ['an empty pattern', { subjects: [''] }],
    ['a pattern over 256 characters', { subjects: ['x'.repeat(257)] }],
    ['101 patterns', { subjects: Array.from({ length: 101 }, (_, i) => `p${i}`) }],
    ['an empty claim name', { requiredClaims: [''] }],
    ['51 required claims', { requiredClaims: Array.from({ length: 51 }, (_, i) => `c${i}`) }],
    ['a non-string claim name', { requiredClaims: [7] }],
  ])('answers 400 for %s and changes nothing', async (_what, body) => {
    const client = await h.createClient({ keysets: ['default'], scopes: ['sign'], audiences: ['api'] })
    const before = await storedState(h)
    const problem = expectProblem(await patch(client.id, body), 400, 'invalid_request')
    expect(String(problem.detail)).not.toMatch(/undefined|\[object/)
    expect(await storedState(h)).toBe(before)
    expect((await sign(client.token, { claims: { aud: 'api' } })).statusCode).toBe(200)
  })

  it('reaches another replica on the same database within 2 s, as a revocation does', async () => {
    const client = await h.createClient({ keysets: ['default'], scopes: ['sign'] })
    const replica = await createHarness({ dir: h.dir, masterKey: h.masterKey, adminToken: h.adminToken, clock: { now: () => Date.now() }, watch: h.watch })
    try {
      replica.signet.start()
      const signs = async () => (await replica.request('POST', '/v1/sign', { token: client.token, body: { claims: {} } })).statusCode
      expect(await signs()).toBe(200)
      expect((await patch(client.id, { audiences: ['api'] })).statusCode).toBe(200)
      await within(2000, async () => (await signs()) === 400)
      expectProblem(await replica.request('POST', '/v1/sign', { token: client.token, body: { claims: {} } }), 400, 'missing_claim')
    } finally {
      await replica.app.close()
      await replica.signet.close()
    }
  })
})
