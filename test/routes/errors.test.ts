import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MasterKey } from '../../src/crypto/master-key.js'
import { MASTER_KEY_CHECK } from '../../src/keys/master-key-check.js'
import type { SqliteStorage } from '../../src/storage/sqlite/index.js'
import { unsealed } from '../../src/storage/sealed-storage.js'
import { createHarness, type Harness } from '../helpers/harness.js'

/** Everything stored, to show that a refused request changed nothing. */
async function storedState(h: Harness): Promise<string> {
  const snapshot = await h.signet.storage.snapshot()
  const audit = await h.signet.storage.listAudit(0, 100_000)
  return JSON.stringify({ snapshot, audit: audit.length })
}

function expectProblem(response: { statusCode: number; headers: Record<string, unknown>; json: () => any }, status: number, code: string) {
  expect(response.statusCode, JSON.stringify(response.json())).toBe(status)
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
  const body = response.json()
  expect(body).toMatchObject({ status, code })
  expect(typeof body.type).toBe('string')
  expect(typeof body.title).toBe('string')
  expect(typeof body.detail).toBe('string')
  return body
}

describe('error codes and bad input', () => {
  let h: Harness
  let signer: string
  let verifier: string
  let restricted: string

  beforeAll(async () => {
    h = await createHarness()
    await h.createKeyset({ name: 'issued', issuer: 'https://issuer.example', maxTtl: 600, defaultTtl: 300 })
    await h.createKeyset({ name: 'other' })
    signer = (await h.createClient({ scopes: ['sign'] })).token
    verifier = (await h.createClient({ scopes: ['verify'] })).token
    restricted = (await h.createClient({ keysets: ['issued'], scopes: ['sign'], audiences: ['api'], maxTtl: 120 })).token
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  const sign = (body: unknown, token = signer) => h.request('POST', '/v1/sign', { token, body })

  describe('authentication and authorisation', () => {
    it('answers 401 unauthorized without a token, with a wrong token, or another scheme', async () => {
      for (const headers of [{}, { authorization: 'Bearer signet_nope' }, { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, { authorization: 'Bearer' }]) {
        const response = await h.request('POST', '/v1/sign', { headers, body: { claims: {} } })
        expectProblem(response, 401, 'unauthorized')
      }
      expectProblem(await h.request('GET', '/v1/admin/keysets'), 401, 'unauthorized')
    })

    it('answers 403 forbidden for a missing scope, a client on an admin route, and the admin token on sign', async () => {
      expectProblem(await h.request('POST', '/v1/verify', { token: signer, body: { token: 'x.y.z' } }), 403, 'forbidden')
      expectProblem(await sign({ claims: {} }, verifier), 403, 'forbidden')
      expectProblem(await h.request('GET', '/v1/admin/keysets', { token: signer }), 403, 'forbidden')
      expectProblem(await h.request('POST', '/v1/admin/clients', { token: signer, body: { name: 'x', keysets: '*', scopes: ['admin'] } }), 403, 'forbidden')
      expectProblem(await sign({ claims: {} }, h.adminToken), 403, 'forbidden')
    })

    it('answers 403 for a keyset the client may not use, and 403 audience_not_allowed for a foreign aud', async () => {
      expectProblem(await sign({ keyset: 'other', claims: {} }, restricted), 403, 'forbidden')
      expectProblem(await sign({ keyset: 'issued', claims: { aud: 'elsewhere' } }, restricted), 403, 'audience_not_allowed')
      expectProblem(await sign({ keyset: 'issued', claims: { aud: ['api', 'elsewhere'] } }, restricted), 403, 'audience_not_allowed')
      expect((await sign({ keyset: 'issued', claims: { aud: ['api'] } }, restricted)).statusCode).toBe(200)
    })

    it('lets a client with scope admin use the admin API', async () => {
      const adminClient = (await h.createClient({ scopes: ['admin'] })).token
      expect((await h.request('GET', '/v1/admin/keysets', { token: adminClient })).statusCode).toBe(200)
    })

    it('stops a revoked client at once', async () => {
      const client = await h.createClient({ scopes: ['sign'] })
      expect((await sign({ claims: {} }, client.token)).statusCode).toBe(200)
      const revoked = await h.admin('DELETE', `/v1/admin/clients/${client.id}`)
      expect(revoked.statusCode).toBe(200)
      expect(revoked.json().revokedAt).not.toBeNull()
      expectProblem(await sign({ claims: {} }, client.token), 401, 'unauthorized')
      expectProblem(await h.admin('DELETE', `/v1/admin/clients/${client.id}`), 409, 'conflict')
    })

    it('rate limits repeated failures from one address with 429 and Retry-After, without slowing other clients', async () => {
      const attacker = { remoteAddress: '10.9.9.9' }
      let limited: { statusCode: number; headers: Record<string, unknown>; json: () => any } | null = null
      for (let attempt = 0; attempt < 1000 && !limited; attempt++) {
        const response = await h.app.inject({ method: 'POST', url: '/v1/sign', ...attacker, headers: { authorization: `Bearer signet_guess${attempt}`, 'content-type': 'application/json' }, payload: '{"claims":{}}' })
        if (response.statusCode === 429) limited = response
        else expect(response.statusCode).toBe(401)
      }
      expect(limited).not.toBeNull()
      expectProblem(limited!, 429, 'rate_limited')
      expect(Number(limited!.headers['retry-after'])).toBeGreaterThan(0)
      // Guesses from that address keep getting 429...
      const again = await h.app.inject({ method: 'POST', url: '/v1/sign', ...attacker, headers: { authorization: 'Bearer signet_another-guess' }, payload: '{"claims":{}}' })
      expect(again.statusCode).toBe(429)
      // ...while a client with a valid token, from that address or another, signs as usual.
      const sameAddress = await h.app.inject({ method: 'POST', url: '/v1/sign', ...attacker, headers: { authorization: `Bearer ${signer}`, 'content-type': 'application/json' }, payload: '{"claims":{}}' })
      expect(sameAddress.statusCode).toBe(200)
      expect((await sign({ claims: {} })).statusCode).toBe(200)
      // Failures from another address are counted apart: still 401.
      expectProblem(await h.app.inject({ method: 'POST', url: '/v1/sign', remoteAddress: '10.9.9.10', headers: { authorization: 'Bearer signet_x' } }), 401, 'unauthorized')
    })
  })

  describe('sign rules', () => {
    it('refuses iat and exp in claims with reserved_claim', async () => {
      expectProblem(await sign({ claims: { iat: 1 } }), 400, 'reserved_claim')
      expectProblem(await sign({ claims: { exp: 2 } }), 400, 'reserved_claim')
    })

    it('refuses a foreign iss with issuer_mismatch, and stamps the keyset issuer', async () => {
      expectProblem(await sign({ keyset: 'issued', claims: { iss: 'https://evil.example' } }), 400, 'issuer_mismatch')
      const ok = await sign({ keyset: 'issued', claims: { iss: 'https://issuer.example' } })
      expect(ok.statusCode).toBe(200)
      const plain = await sign({ keyset: 'issued', claims: {} })
      const payload = JSON.parse(Buffer.from(plain.json().token.split('.')[1], 'base64url').toString())
      expect(payload.iss).toBe('https://issuer.example')
    })

    it('caps ttl at the keyset and client maxTtl with ttl_too_long, and defaults to defaultTtl capped the same way', async () => {
      expectProblem(await sign({ keyset: 'issued', claims: {}, ttl: 601 }), 400, 'ttl_too_long')
      expectProblem(await sign({ keyset: 'issued', claims: { aud: 'api' }, ttl: 121 }, restricted), 400, 'ttl_too_long')
      const capped = (await sign({ keyset: 'issued', claims: { aud: 'api' } }, restricted)).json()
      expect(capped.exp - capped.iat).toBe(120)
      const defaulted = (await sign({ keyset: 'issued', claims: {} })).json()
      expect(defaulted.exp - defaulted.iat).toBe(300)
    })

    it('passes nbf, sub, aud, jti and private claims through', async () => {
      const claims = { nbf: 1_900_000_000, sub: 'u', aud: ['a', 'b'], jti: 'my-id', tenant: { id: 7 }, list: [1, 'two'] }
      const signed = (await sign({ claims })).json()
      expect(signed.jti).toBe('my-id')
      const payload = JSON.parse(Buffer.from(signed.token.split('.')[1], 'base64url').toString())
      expect(payload).toMatchObject(claims)
    })

    it('answers 404 keyset_not_found for an unknown keyset', async () => {
      expectProblem(await sign({ keyset: 'nope', claims: {} }), 404, 'keyset_not_found')
      expectProblem(await h.request('GET', '/keysets/nope/jwks.json'), 404, 'keyset_not_found')
    })

    it('refuses a batch with one bad item as a whole, naming its index', async () => {
      const before = await storedState(h)
      const response = await h.request('POST', '/v1/sign/batch', { token: signer, body: { items: [{ claims: {} }, { claims: {} }, { claims: { exp: 5 } }] } })
      const body = expectProblem(response, 400, 'reserved_claim')
      expect(body.index).toBe(2)
      expectProblem(await h.request('POST', '/v1/sign/batch', { token: signer, body: { items: [] } }), 400, 'invalid_request')
      const tooMany = Array.from({ length: 1001 }, () => ({ claims: {} }))
      expectProblem(await h.request('POST', '/v1/sign/batch', { token: signer, body: { items: tooMany } }), 400, 'invalid_request')
      expectProblem(await h.request('POST', '/v1/sign/batch', { token: signer, body: { items: [{ claims: {}, extra: 1 }] } }), 400, 'invalid_request')
      expect(await storedState(h)).toBe(before)
    })
  })

  describe('bad input changes nothing and the service stays up', () => {
    const cases: [string, Record<string, unknown>, number, string][] = [
      ['claims is an array', { claims: [1, 2] }, 400, 'invalid_request'],
      ['claims is a string', { claims: 'sub=1' }, 400, 'invalid_request'],
      ['claims is null', { claims: null }, 400, 'invalid_request'],
      ['claims is missing', {}, 400, 'invalid_request'],
      ['keyset is a number', { keyset: 7, claims: {} }, 400, 'invalid_request'],
      ['sub is a number', { claims: { sub: 42 } }, 400, 'invalid_request'],
      ['aud is an object', { claims: { aud: { a: 1 } } }, 400, 'invalid_request'],
      ['an unknown member', { claims: {}, alg: 'none' }, 400, 'invalid_request'],
      ['iat in claims', { claims: { iat: 1 } }, 400, 'reserved_claim'],
      ['exp in claims', { claims: { exp: 1 } }, 400, 'reserved_claim'],
      ['header sets alg', { claims: {}, header: { alg: 'none' } }, 400, 'invalid_request'],
      ['header sets kid', { claims: {}, header: { kid: 'x' } }, 400, 'invalid_request'],
      ['header sets jku', { claims: {}, header: { jku: 'https://evil.example/jwks' } }, 400, 'invalid_request'],
      ['header sets jwk', { claims: {}, header: { jwk: { kty: 'oct' } } }, 400, 'invalid_request'],
      ['header sets x5u', { claims: {}, header: { x5u: 'https://evil.example/x5u' } }, 400, 'invalid_request'],
      ['header sets crit', { claims: {}, header: { crit: ['b64'] } }, 400, 'invalid_request'],
      ['header typ is a number', { claims: {}, header: { typ: 1 } }, 400, 'invalid_request'],
      ['ttl 0', { claims: {}, ttl: 0 }, 400, 'invalid_request'],
      ['ttl -1', { claims: {}, ttl: -1 }, 400, 'invalid_request'],
      ['ttl 1.5', { claims: {}, ttl: 1.5 }, 400, 'invalid_request'],
      ['ttl "600"', { claims: {}, ttl: '600' }, 400, 'invalid_request'],
      ['ttl 10^30', { claims: {}, ttl: 1e30 }, 400, 'ttl_too_long'],
      ['ttl 2^53', { claims: {}, ttl: 2 ** 53 }, 400, 'ttl_too_long'],
      ['claims over 16 KiB', { claims: { blob: 'x'.repeat(16 * 1024) } }, 413, 'payload_too_large'],
    ]

    it.each(cases)('%s', async (_label, body, status, code) => {
      const before = await storedState(h)
      expectProblem(await sign(body), status, code)
      expect(await storedState(h)).toBe(before)
      expect((await h.request('GET', '/healthz')).statusCode).toBe(200)
    })

    const raw: [string, string | Buffer, string, number, string][] = [
      ['a body that is not JSON', '{"claims": {', 'application/json', 400, 'invalid_request'],
      ['an empty JSON body', '', 'application/json', 400, 'invalid_request'],
      ['a JSON string instead of an object', '"claims"', 'application/json', 400, 'invalid_request'],
      ['a text/plain body', '{"claims":{}}', 'text/plain', 415, 'unsupported_media_type'],
      ['a form body', 'claims=1', 'application/x-www-form-urlencoded', 415, 'unsupported_media_type'],
      ['a body of 64 KiB + 1 byte', `{"claims":{"pad":"${'x'.repeat(64 * 1024 + 1 - 21)}"}}`, 'application/json', 413, 'payload_too_large'],
      ['a __proto__ key', '{"claims":{"__proto__":{"isAdmin":true}}}', 'application/json', 400, 'invalid_request'],
      ['invalid UTF-8', Buffer.concat([Buffer.from('{"claims":{"a":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}}')]), 'application/json', 400, 'invalid_request'],
    ]

    it.each(raw)('%s', async (_label, payload, contentType, status, code) => {
      if (_label.startsWith('a body of 64')) expect(Buffer.byteLength(payload)).toBe(64 * 1024 + 1)
      const before = await storedState(h)
      const response = await h.request('POST', '/v1/sign', { token: signer, payload, headers: { 'content-type': contentType } })
      expectProblem(response, status, code)
      expect(({} as Record<string, unknown>).isAdmin).toBeUndefined()
      expect(await storedState(h)).toBe(before)
      expect((await h.request('GET', '/healthz')).statusCode).toBe(200)
    })

    it('a body declared over 64 KiB gets 413 before authentication, on every route that takes a body, and changes nothing', async () => {
      const payload = `{"claims":{"pad":"${'x'.repeat(70_000)}"}}`
      const before = await storedState(h)
      for (const url of ['/v1/sign', '/v1/sign/batch', '/v1/verify', '/v1/admin/keysets']) {
        for (const token of [undefined, 'not-a-token', signer]) {
          const response = await h.request('POST', url, { ...(token ? { token } : {}), payload, headers: { 'content-type': 'application/json' } })
          expectProblem(response, 413, 'payload_too_large')
          // The body is never read: the connection closes after the answer.
          expect(response.headers.connection).toBe('close')
        }
      }
      expect(await storedState(h)).toBe(before)
    })

    it.each(['../default', "de'fault", '%2e%2e%2fdefault', 'default%00', '"quoted"', 'x'.repeat(300)])('a keyset or kid of %s in the path gives 404 or 400', async (name) => {
      const before = await storedState(h)
      for (const url of [`/keysets/${name}/jwks.json`, `/v1/admin/keysets/${name}`, `/v1/admin/keysets/${name}/keys`]) {
        const response = await h.request('GET', url, { token: h.adminToken })
        expect([400, 404]).toContain(response.statusCode)
        expect(response.headers['content-type']).toMatch(/problem\+json/)
      }
      for (const url of [`/v1/admin/keys/${name}/revoke`, `/v1/admin/keysets/${name}/rotate`]) {
        const response = await h.request('POST', url, { token: h.adminToken, body: {} })
        expect([400, 404]).toContain(response.statusCode)
      }
      expect(await storedState(h)).toBe(before)
    })

    it('unknown kid and keyset answer key_not_found and keyset_not_found', async () => {
      expectProblem(await h.admin('POST', '/v1/admin/keys/no-such-kid/revoke', { reason: 'x' }), 404, 'key_not_found')
      expectProblem(await h.admin('POST', '/v1/admin/keysets/nope/rotate', {}), 404, 'keyset_not_found')
      expectProblem(await h.admin('GET', '/v1/admin/keysets/nope'), 404, 'keyset_not_found')
      expectProblem(await h.admin('PATCH', '/v1/admin/keysets/nope', { maxTtl: 5 }), 404, 'keyset_not_found')
    })
  })

  describe('admin input', () => {
    const bad: [string, Record<string, unknown>][] = [
      ['a name with capitals', { name: 'Default' }],
      ['a name with ../', { name: '../x' }],
      ['an unknown alg', { name: 'k1', alg: 'HS256' }],
      ['alg none', { name: 'k1', alg: 'none' }],
      ['rsaBits with an EC alg', { name: 'k1', alg: 'ES256', rsaBits: 2048 }],
      ['rsaBits 1024', { name: 'k1', alg: 'RS256', rsaBits: 1024 }],
      ['defaultTtl above maxTtl', { name: 'k1', defaultTtl: 100, maxTtl: 50 }],
      ['a negative rotationPeriod', { name: 'k1', rotationPeriod: -1 }],
      ['an unknown field', { name: 'k1', colour: 'blue' }],
      ['ttl as a string', { name: 'k1', maxTtl: '600' }],
    ]
    it.each(bad)('creating a keyset with %s is refused with 400', async (_label, body) => {
      const before = await storedState(h)
      expectProblem(await h.admin('POST', '/v1/admin/keysets', body), 400, 'invalid_request')
      expect(await storedState(h)).toBe(before)
    })

    it('refuses a duplicate keyset with 409 conflict', async () => {
      const before = await storedState(h)
      expectProblem(await h.admin('POST', '/v1/admin/keysets', { name: 'other' }), 409, 'conflict')
      expect(await storedState(h)).toBe(before)
    })

    it('refuses bad client input with 400', async () => {
      const before = await storedState(h)
      for (const body of [
        { name: 'x', keysets: '*', scopes: ['root'] },
        { name: 'x', keysets: '*', scopes: [] },
        { name: '', keysets: '*', scopes: ['sign'] },
        { name: 'x', keysets: ['../etc'], scopes: ['sign'] },
        { name: 'x', keysets: '*', scopes: ['sign'], maxTtl: 0 },
        { name: 'x', keysets: '*', scopes: ['sign'], audiences: [] },
      ]) {
        expectProblem(await h.admin('POST', '/v1/admin/clients', body), 400, 'invalid_request')
      }
      expect(await storedState(h)).toBe(before)
      expectProblem(await h.admin('DELETE', '/v1/admin/clients/no-such-id'), 404, 'client_not_found')
    })

    it('refuses a PATCH that breaks the policy, and renames', async () => {
      const before = await storedState(h)
      expectProblem(await h.admin('PATCH', '/v1/admin/keysets/other', { defaultTtl: 7200 }), 400, 'invalid_request')
      expectProblem(await h.admin('PATCH', '/v1/admin/keysets/other', { name: 'renamed' }), 400, 'invalid_request')
      expectProblem(await h.admin('PATCH', '/v1/admin/keysets/other', { backend: 'pkcs11' }), 400, 'invalid_request')
      expect(await storedState(h)).toBe(before)
    })

    it('refuses a bad rotate mode and audit paging out of range', async () => {
      expectProblem(await h.admin('POST', '/v1/admin/keysets/other/rotate', { mode: 'sometime' }), 400, 'invalid_request')
      expectProblem(await h.admin('GET', '/v1/admin/audit?limit=0'), 400, 'invalid_request')
      expectProblem(await h.admin('GET', '/v1/admin/audit?after=-1'), 400, 'invalid_request')
      expectProblem(await h.admin('GET', '/v1/admin/audit?limit=abc'), 400, 'invalid_request')
    })

    it('answers unknown routes with 404 problem+json', async () => {
      expectProblem(await h.request('GET', '/v2/nothing'), 404, 'not_found')
    })
  })

  describe('sealed and storage failures', () => {
    it('reports sealed when the database was re-keyed under another master key, and unseals when it returns', async () => {
      const original = (await h.signet.storage.snapshot()).meta[MASTER_KEY_CHECK]!
      const other = MasterKey.fromBytes(randomBytes(32))
      await h.signet.storage.transaction((tx) => tx.setMeta(MASTER_KEY_CHECK, other.checkValue()))
      await h.signet.keystore.refresh()
      expectProblem(await sign({ claims: {} }), 503, 'sealed')
      expectProblem(await h.request('GET', '/readyz'), 503, 'sealed')
      // No key is made under a master key the database no longer has: it could never be opened.
      const before = await storedState(h)
      expectProblem(await h.admin('POST', '/v1/admin/keysets/other/rotate', { mode: 'immediate' }), 503, 'sealed')
      expectProblem(await h.admin('POST', '/v1/admin/keysets', { name: 'made-while-sealed' }), 503, 'sealed')
      expect(await storedState(h)).toBe(before)
      expect((await h.request('GET', '/healthz')).statusCode).toBe(200)
      // Put back as another process would: this one writes nothing while the database is not its own.
      await unsealed(h.signet.storage).transaction((tx) => tx.setMeta(MASTER_KEY_CHECK, original))
      await h.signet.keystore.refresh()
      expect((await sign({ claims: {} })).statusCode).toBe(200)
      expect((await h.request('GET', '/readyz')).statusCode).toBe(200)
    })
  })
})

describe('storage unavailable', () => {
  it('answers admin writes with 503 storage_unavailable, keeps signing from memory, and reports not ready', async () => {
    const h = await createHarness()
    try {
      const signer = (await h.createClient({ scopes: ['sign'] })).token
      ;(h.signet.storage as SqliteStorage).database.close()
      const response = await h.admin('POST', '/v1/admin/clients', { name: 'x', keysets: '*', scopes: ['sign'] })
      expectProblem(response, 503, 'storage_unavailable')
      expect(JSON.stringify(response.json())).not.toMatch(/sqlite|connection/i)
      expectProblem(await h.admin('POST', '/v1/admin/keysets/default/rotate', {}), 503, 'storage_unavailable')
      expect((await h.request('POST', '/v1/sign', { token: signer, body: { claims: {} } })).statusCode).toBe(200)
      await h.signet.keystore.poll()
      expectProblem(await h.request('GET', '/readyz'), 503, 'storage_unavailable')
      expect((await h.request('GET', '/healthz')).statusCode).toBe(200)
      h.watch.assertClean()
    } finally {
      await h.app.close()
      await h.signet.close().catch(() => {})
    }
  })
})

describe('what the failed-authentication limit counts', () => {
  it('counts wrong bearer tokens, not requests without credentials or with another scheme', async () => {
    const h = await createHarness({ env: { SIGNET_AUTH_FAILURE_LIMIT: '5' } })
    try {
      const from = (remoteAddress: string, headers: Record<string, string>) => h.app.inject({ method: 'POST', url: '/v1/sign', remoteAddress, headers: { 'content-type': 'application/json', ...headers }, payload: '{"claims":{}}' })
      for (let i = 0; i < 20; i++) {
        expect((await from('10.1.1.1', {})).statusCode).toBe(401)
        expect((await from('10.1.1.1', { authorization: 'Basic eDp5' })).statusCode).toBe(401)
      }
      const codes: number[] = []
      for (let i = 0; i < 8; i++) codes.push((await from('10.1.1.1', { authorization: `Bearer signet_guess${i}` })).statusCode)
      expect(codes).toEqual([401, 401, 401, 401, 401, 429, 429, 429])
      h.watch.assertClean()
    } finally {
      await h.close()
    }
  })
})
