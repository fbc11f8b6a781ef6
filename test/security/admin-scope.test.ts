import { generateKeyPairSync } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isFullAdmin, requireFullAdmin } from '../../src/auth/admin-access.js'
import type { Principal } from '../../src/auth/authenticate.js'
import { SignetError } from '../../src/errors.js'
import type { Client } from '../../src/keys/model.js'
import { createHarness, type Harness } from '../helpers/harness.js'
import { expectProblem, storedState } from './helpers.js'

/**
 * An admin client whose keysets are a list manages only those keysets and the
 * clients within them (docs/clients.md#scoped-admins). Tried as that admin going
 * beyond its list: every attempt is 403 and changes nothing.
 */
describe('an admin client limited to some keysets', () => {
  let h: Harness
  let scoped: string
  let scopedId: string
  let full: string
  let theirKid: string
  let theirClient: string

  beforeAll(async () => {
    h = await createHarness()
    await h.createKeyset({ name: 'mine' })
    theirKid = (await h.createKeyset({ name: 'theirs' })).activeKid
    const created = await h.createClient({ name: 'team admin', keysets: ['mine', 'future'], scopes: ['admin'] })
    scoped = created.token
    scopedId = created.id
    full = (await h.createClient({ name: 'root admin', keysets: '*', scopes: ['admin'] })).token
    theirClient = (await h.createClient({ name: 'their app', keysets: ['theirs'], scopes: ['sign'] })).id
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  const as = (token: string, method: string, url: string, body?: unknown) => h.request(method, url, { token, body })
  /** POST /v1/admin/clients as `token`; the new client's token (shown once) is kept out of the leak scan. */
  const createAs = async (token: string, body: unknown) => {
    const response = await h.request('POST', '/v1/admin/clients', { token, body }, (text) => text.replace(/signet_[A-Za-z0-9_-]+/g, '<token shown once>'))
    if (response.statusCode === 201) h.watch.secret('a token made in this test', response.json().token)
    return response
  }

  /** Asserts that `call` answers 403 forbidden and leaves storage and the audit log as they were. */
  async function refusedUnchanged(call: () => Promise<{ statusCode: number; headers: Record<string, unknown>; body: string }>): Promise<void> {
    const before = await storedState(h)
    expectProblem(await call(), 403, 'forbidden')
    expect(await storedState(h)).toBe(before)
  }

  it('lists only its keysets', async () => {
    const names = (await as(scoped, 'GET', '/v1/admin/keysets')).json().keysets.map((k: { name: string }) => k.name)
    expect(names).toEqual(['mine'])
    const all = (await as(full, 'GET', '/v1/admin/keysets')).json().keysets.map((k: { name: string }) => k.name)
    expect(all).toEqual(expect.arrayContaining(['default', 'mine', 'theirs']))
  })

  it('gets 403 reading, changing, rotating, importing into or revoking a key of a keyset outside its list, and nothing changes', async () => {
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' })
    await refusedUnchanged(() => as(scoped, 'GET', '/v1/admin/keysets/theirs'))
    await refusedUnchanged(() => as(scoped, 'GET', '/v1/admin/keysets/theirs/keys'))
    await refusedUnchanged(() => as(scoped, 'PATCH', '/v1/admin/keysets/theirs', { maxTtl: 86_400 }))
    await refusedUnchanged(() => as(scoped, 'POST', '/v1/admin/keysets/theirs/rotate', { mode: 'immediate' }))
    await refusedUnchanged(() => as(scoped, 'POST', '/v1/admin/keysets/theirs/import', { jwk, activate: 'immediate' }))
    await refusedUnchanged(() => as(scoped, 'POST', `/v1/admin/keys/${theirKid}/revoke`, { reason: 'hostile' }))
    // A keyset that does not exist is refused the same way: no existence oracle.
    await refusedUnchanged(() => as(scoped, 'GET', '/v1/admin/keysets/ghost'))
    expect((await h.admin('GET', '/v1/admin/keysets/theirs')).json().activeKid).toBe(theirKid)
  })

  it('gets 403 creating a keyset outside its list, and may create one its list names', async () => {
    await refusedUnchanged(() => as(scoped, 'POST', '/v1/admin/keysets', { name: 'elsewhere' }))
    expectProblem(await h.admin('GET', '/v1/admin/keysets/elsewhere'), 404, 'keyset_not_found')
    expect((await as(scoped, 'POST', '/v1/admin/keysets', { name: 'future' })).statusCode).toBe(201)
  })

  it('manages its own keysets', async () => {
    expect((await as(scoped, 'GET', '/v1/admin/keysets/mine')).statusCode).toBe(200)
    expect((await as(scoped, 'PATCH', '/v1/admin/keysets/mine', { maxTtl: 1800 })).json().maxTtl).toBe(1800)
    const key = (await as(scoped, 'POST', '/v1/admin/keysets/mine/rotate', { mode: 'immediate' })).json()
    expect(key).toMatchObject({ keyset: 'mine', state: 'active' })
    expect((await as(scoped, 'POST', `/v1/admin/keys/${key.kid}/revoke`, { reason: 'drill' })).json().state).toBe('revoked')
  })

  it('gets 403 creating a client with keysets *, or naming a keyset outside its list, and nothing is stored', async () => {
    await refusedUnchanged(() => createAs(scoped, { name: 'wide', keysets: '*', scopes: ['sign'] }))
    await refusedUnchanged(() => createAs(scoped, { name: 'wide', keysets: ['*'], scopes: ['admin'] }))
    await refusedUnchanged(() => createAs(scoped, { name: 'other', keysets: ['theirs'], scopes: ['sign'] }))
    await refusedUnchanged(() => createAs(scoped, { name: 'mixed', keysets: ['mine', 'theirs'], scopes: ['sign'] }))
  })

  it('creates clients within its list, an admin one included (which is no wider than itself)', async () => {
    const app = await createAs(scoped, { name: 'my app', keysets: ['mine'], scopes: ['sign'] })
    expect(app.statusCode).toBe(201)
    const deputy = await createAs(scoped, { name: 'deputy', keysets: ['mine'], scopes: ['admin'] })
    expect(deputy.statusCode).toBe(201)
    expectProblem(await as(deputy.json().token, 'GET', '/v1/admin/keysets/future'), 403, 'forbidden')
  })

  it('lists only the clients within its keysets', async () => {
    const clients = (await as(scoped, 'GET', '/v1/admin/clients')).json().clients as { name: string; keysets: string[] | '*' }[]
    expect(clients.length).toBeGreaterThan(0)
    for (const client of clients) expect(client.keysets === '*' ? [] : client.keysets.every((k) => ['mine', 'future'].includes(k))).toBe(true)
    expect(clients.map((c) => c.name)).not.toContain('their app')
    expect(clients.map((c) => c.name)).not.toContain('root admin')
  })

  it('gets 403 changing or revoking a client outside its keysets, widening one of its own, or widening itself', async () => {
    await refusedUnchanged(() => as(scoped, 'PATCH', `/v1/admin/clients/${theirClient}`, { keysets: ['mine'] }))
    await refusedUnchanged(() => as(scoped, 'DELETE', `/v1/admin/clients/${theirClient}`))
    const mine = (await createAs(scoped, { name: 'narrow', keysets: ['mine'], scopes: ['sign'] })).json()
    await refusedUnchanged(() => as(scoped, 'PATCH', `/v1/admin/clients/${mine.id}`, { keysets: ['mine', 'theirs'] }))
    await refusedUnchanged(() => as(scoped, 'PATCH', `/v1/admin/clients/${mine.id}`, { keysets: '*' }))
    await refusedUnchanged(() => as(scoped, 'PATCH', `/v1/admin/clients/${scopedId}`, { keysets: '*' }))
    expect((await as(scoped, 'PATCH', `/v1/admin/clients/${mine.id}`, { keysets: ['future'] })).json().keysets).toEqual(['future'])
  })

  it('an admin client with keysets * manages everything, * clients included', async () => {
    expect((await as(full, 'GET', '/v1/admin/keysets/theirs')).statusCode).toBe(200)
    const wide = await createAs(full, { name: 'wide', keysets: '*', scopes: ['sign'] })
    expect(wide.statusCode).toBe(201)
    expect((await as(full, 'PATCH', `/v1/admin/clients/${theirClient}`, { keysets: ['theirs', 'mine'] })).statusCode).toBe(200)
  })

  it('only the admin token or keysets * passes requireFullAdmin (the check issuer routes use)', () => {
    const client = (keysets: Client['keysets']): Principal => ({ kind: 'client', actor: 'client:x', client: { id: 'x', name: 'x', keysets, scopes: ['admin'], audiences: null, maxTtl: null, tokenHash: 'h', createdAt: 0, revokedAt: null } })
    expect(isFullAdmin({ kind: 'admin', actor: 'admin' })).toBe(true)
    expect(() => requireFullAdmin({ kind: 'admin', actor: 'admin' }, 'manage issuers')).not.toThrow()
    expect(() => requireFullAdmin(client('*'), 'manage issuers')).not.toThrow()
    let error: unknown
    try {
      requireFullAdmin(client(['mine']), 'manage issuers')
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(SignetError)
    expect(error).toMatchObject({ code: 'forbidden', status: 403 })
    expect((error as Error).message).toContain('manage issuers')
  })
})
