import { generateKeyPairSync } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifyChain } from '../../src/audit/chain.js'
import { IntegrityKeys } from '../../src/storage/row-integrity.js'
import { createHarness, type Harness } from '../helpers/harness.js'
import { decodeToken } from '../helpers/tokens.js'
import { expectProblem, storedState } from '../security/helpers.js'

describe('admin API', () => {
  let h: Harness

  beforeAll(async () => {
    h = await createHarness()
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  it('creates a keyset with defaults and an active first key', async () => {
    const response = await h.admin('POST', '/v1/admin/keysets', { name: 'svc' })
    expect(response.statusCode).toBe(201)
    const keyset = response.json()
    expect(keyset).toMatchObject({ name: 'svc', alg: 'ES256', rsaBits: null, issuer: null, defaultTtl: 900, maxTtl: 3600, rotationPeriod: 2592000, prepublish: 3600, x5c: false, backend: 'software' })
    expect(keyset.activeKid).toMatch(/^[A-Za-z0-9_-]{43}$/)
    const keys = (await h.admin('GET', '/v1/admin/keysets/svc/keys')).json().keys
    expect(keys).toHaveLength(1)
    expect(keys[0]).toMatchObject({ kid: keyset.activeKid, state: 'active', alg: 'ES256', keyset: 'svc' })
    expect(keys[0].jwk).not.toHaveProperty('d')
    expect(Date.parse(keys[0].activatedAt)).toBe(h.clock.now())
  })

  it('takes RSA sizes and reports rsaBits for RSA keysets', async () => {
    const keyset = (await h.admin('POST', '/v1/admin/keysets', { name: 'big', alg: 'PS384', rsaBits: 3072 })).json()
    expect(keyset).toMatchObject({ alg: 'PS384', rsaBits: 3072 })
    const jwk = (await h.admin('GET', '/v1/admin/keysets/big/keys')).json().keys[0].jwk
    expect(Buffer.from(jwk.n, 'base64url').length * 8).toBe(3072)
  })

  it('lists and reads keysets with their active kid', async () => {
    const list = (await h.admin('GET', '/v1/admin/keysets')).json().keysets
    expect(list.map((k: { name: string }) => k.name)).toEqual(expect.arrayContaining(['default', 'svc', 'big']))
    const one = (await h.admin('GET', '/v1/admin/keysets/svc')).json()
    expect(one.activeKid).toBe(list.find((k: { name: string }) => k.name === 'svc').activeKid)
  })

  it('PATCH changes policy; a new alg takes effect at the next rotation', async () => {
    const client = (await h.createClient({ keysets: ['svc'], scopes: ['sign'] })).token
    const patched = await h.admin('PATCH', '/v1/admin/keysets/svc', { alg: 'RS256', rsaBits: 2048, maxTtl: 7200, issuer: 'https://svc.example' })
    expect(patched.statusCode).toBe(200)
    expect(patched.json()).toMatchObject({ alg: 'RS256', rsaBits: 2048, maxTtl: 7200, issuer: 'https://svc.example' })
    // Still the ES256 key until a rotation...
    const before = (await h.request('POST', '/v1/sign', { token: client, body: { keyset: 'svc', claims: {} } })).json()
    expect(before.alg).toBe('ES256')
    expect(decodeToken(before.token).payload.iss).toBe('https://svc.example')
    await h.admin('POST', '/v1/admin/keysets/svc/rotate', { mode: 'immediate' })
    const after = (await h.request('POST', '/v1/sign', { token: client, body: { keyset: 'svc', claims: {}, ttl: 7200 } })).json()
    expect(after.alg).toBe('RS256')
    // The retired ES256 key stays published for the longest maxTtl in force while it signed.
    const retired = (await h.admin('GET', '/v1/admin/keysets/svc/keys')).json().keys.find((k: { kid: string }) => k.kid === before.kid)
    expect(Date.parse(retired.publishedUntil) - Date.parse(retired.retiredAt)).toBe((7200 + 60) * 1000)
  })

  it('refuses a keyset or issuer PATCH with nothing to change (nothing, or only its own name), as a client PATCH, and writes nothing (no update, no audit event)', async () => {
    const publicJwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' })
    expect((await h.admin('POST', '/v1/admin/issuers', { name: 'patch-nothing', issuer: 'https://patch-nothing.example', jwks: { keys: [{ ...publicJwk, kid: 'k1' }] }, audiences: ['signet'] })).statusCode).toBe(201)
    const client = (await h.admin('POST', '/v1/admin/clients', { name: 'patch-nothing', keysets: '*', scopes: ['sign'] })).json()
    const before = await storedState(h)
    const nothing: [string, Record<string, unknown>][] = [
      ['/v1/admin/keysets/svc', {}], ['/v1/admin/keysets/svc', { name: 'svc' }],
      ['/v1/admin/issuers/patch-nothing', {}], ['/v1/admin/issuers/patch-nothing', { name: 'patch-nothing' }],
      [`/v1/admin/clients/${client.id}`, {}],
    ]
    for (const [path, patch] of nothing) {
      const body = expectProblem(await h.admin('PATCH', path, patch), 400, 'invalid_request')
      expect(body.detail, `${path} ${JSON.stringify(patch)}`).toMatch(/nothing to change/)
    }
    expect(await storedState(h)).toBe(before)
  })

  it('rotates with no body at all, or an empty JSON body, using the default mode; revokes only with a reason', async () => {
    const bare = await h.request('POST', '/v1/admin/keysets/default/rotate', { token: h.adminToken })
    expect(bare.statusCode).toBe(201)
    expect(bare.json().state).toBe('pending')
    const empty = await h.request('POST', '/v1/admin/keysets/default/rotate', { token: h.adminToken, payload: '', headers: { 'content-type': 'application/json' } })
    expect(empty.statusCode).toBe(201)
    const kid = empty.json().kid as string

    // docs/api.md: the revoke body is { "reason" }, and the reason goes to the audit log.
    const before = await h.signet.storage.snapshot()
    const refusals = [
      await h.request('POST', `/v1/admin/keys/${kid}/revoke`, { token: h.adminToken }),
      await h.request('POST', `/v1/admin/keys/${kid}/revoke`, { token: h.adminToken, body: {} }),
      await h.request('POST', `/v1/admin/keys/${kid}/revoke`, { token: h.adminToken, body: { reason: '' } }),
      await h.request('POST', `/v1/admin/keys/${kid}/revoke`, { token: h.adminToken, body: { reason: 5 } }),
    ]
    for (const refused of refusals) {
      expect(refused.statusCode).toBe(400)
      expect(refused.json().code).toBe('invalid_request')
    }
    expect(await h.signet.storage.snapshot()).toEqual(before)

    const revoked = await h.request('POST', `/v1/admin/keys/${kid}/revoke`, { token: h.adminToken, body: { reason: 'superseded' } })
    expect(revoked.statusCode).toBe(200)
    expect(revoked.json()).toMatchObject({ state: 'revoked', revokeReason: 'superseded' })
    // A sign request still needs its body.
    const client = (await h.createClient({ scopes: ['sign'] })).token
    expect((await h.request('POST', '/v1/sign', { token: client, payload: '', headers: { 'content-type': 'application/json' } })).statusCode).toBe(400)
  })

  it('creates clients whose token is shown once and never listed', async () => {
    const created = await h.createClient({ name: 'app one', keysets: ['svc'], scopes: ['sign'], audiences: ['api'], maxTtl: 300 })
    expect(created.token).toMatch(/^signet_[A-Za-z0-9_-]{43}$/)
    const listed = await h.admin('GET', '/v1/admin/clients')
    expect(listed.body).not.toContain(created.token)
    const client = listed.json().clients.find((c: { id: string }) => c.id === created.id)
    expect(client).toEqual({ id: created.id, name: 'app one', keysets: ['svc'], scopes: ['sign'], audiences: ['api'], maxTtl: 300, subjects: null, requiredClaims: null, createdAt: expect.any(String), revokedAt: null })
    expect(client).not.toHaveProperty('token')
    expect(client).not.toHaveProperty('tokenHash')
    const stored = (await h.signet.storage.snapshot()).clients.find((c) => c.id === created.id)!
    expect(JSON.stringify(stored)).not.toContain(created.token)
  })

  it('audits every admin action with who, what, when and target, in a valid hash chain', async () => {
    const all = (await h.admin('GET', '/v1/admin/audit?limit=1000')).json()
    const actions = all.events.map((e: { action: string }) => e.action)
    expect(actions).toEqual(expect.arrayContaining(['storage.init', 'keyset.create', 'keyset.update', 'key.rotate', 'key.state', 'client.create']))
    const created = all.events.find((e: { action: string; target: string }) => e.action === 'keyset.create' && e.target === 'svc')
    expect(created).toMatchObject({ actor: 'admin', target: 'svc', at: new Date(h.clock.now()).toISOString() })
    const stored = await h.signet.storage.listAudit(0, 10_000)
    expect(verifyChain(stored, null, new IntegrityKeys(h.config.masterKey!).audit)).toEqual({ ok: true, rows: stored.length })
    expect(JSON.stringify(all)).not.toMatch(/signet_[A-Za-z0-9_-]{43}/)
  })

  it('pages through the audit log with after and limit', async () => {
    const total = (await h.signet.storage.listAudit(0, 10_000)).length
    const seen: number[] = []
    let after = 0
    for (;;) {
      const page = (await h.admin('GET', `/v1/admin/audit?after=${after}&limit=3`)).json()
      seen.push(...page.events.map((e: { id: number }) => e.id))
      if (page.next === null) break
      after = page.next
    }
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => i + 1))
  })
})
