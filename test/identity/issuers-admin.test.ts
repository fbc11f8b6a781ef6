import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness } from '../helpers/harness.js'
import { expectProblem, storedState } from '../security/helpers.js'
import { issuerKey, type IssuerKey } from './test-issuer.js'

describe('the issuers admin API', () => {
  let h: Harness
  let key: IssuerKey
  const base = () => ({ name: 'cluster', issuer: 'https://kubernetes.default.svc', jwksUri: 'https://kubernetes.example.net/openid/v1/jwks', audiences: ['signet'] })

  beforeAll(async () => {
    h = await createHarness()
    key = await issuerKey('k1', 'RS256')
  })
  afterAll(async () => {
    h.watch.assertClean()
    await h.close()
  })

  it('creates an issuer with the defaults, lists, reads, changes and deletes it, auditing each change', async () => {
    const created = await h.admin('POST', '/v1/admin/issuers', base())
    expect(created.statusCode, created.body).toBe(201)
    expect(created.json()).toMatchObject({ ...base(), jwks: null, algorithms: ['RS256', 'ES256'], maxTokenLifetime: 3600, caCertificate: null })
    expect((await h.admin('GET', '/v1/admin/issuers')).json().issuers.map((i: { name: string }) => i.name)).toEqual(['cluster'])
    expect((await h.admin('GET', '/v1/admin/issuers/cluster')).json().issuer).toBe('https://kubernetes.default.svc')

    const moved = await h.admin('PATCH', '/v1/admin/issuers/cluster', { jwks: { keys: [key.publicJwk] }, maxTokenLifetime: 7200 })
    expect(moved.statusCode, moved.body).toBe(200)
    expect(moved.json()).toMatchObject({ jwksUri: null, jwks: { keys: [{ kid: 'k1', kty: 'RSA' }] }, maxTokenLifetime: 7200 })
    const back = await h.admin('PATCH', '/v1/admin/issuers/cluster', { jwksUri: 'http://127.0.0.1:8001/openid/v1/jwks' })
    expect(back.json()).toMatchObject({ jwksUri: 'http://127.0.0.1:8001/openid/v1/jwks', jwks: null })
    for (const loopback of ['http://localhost:8001/openid/v1/jwks', 'http://LOCALHOST:8001/jwks', 'http://127.8.9.10/jwks', 'http://[::1]:8001/jwks']) {
      const answer = await h.admin('PATCH', '/v1/admin/issuers/cluster', { jwksUri: loopback })
      expect(answer.statusCode, answer.body).toBe(200)
      expect(answer.json().jwksUri).toBe(loopback)
    }

    expect((await h.admin('DELETE', '/v1/admin/issuers/cluster')).statusCode).toBe(200)
    expectProblem(await h.admin('GET', '/v1/admin/issuers/cluster'), 404, 'issuer_not_found')
    const actions = (await h.admin('GET', '/v1/admin/audit?limit=1000')).json().events.filter((e: { target: string }) => e.target === 'cluster').map((e: { action: string }) => e.action)
    expect(actions).toEqual(['issuer.create', ...Array(6).fill('issuer.update'), 'issuer.delete'])
  })

  it('refuses bad input with 400 and changes nothing', async () => {
    const privateJwk = { ...key.publicJwk, d: 'AAAA' }
    const cases: [string, Record<string, unknown>][] = [
      ['a bad name', { name: 'Bad Name' }],
      ['no audiences', { audiences: [] }],
      ['an empty audience', { audiences: [''] }],
      ['alg none', { algorithms: ['none'] }],
      ['HMAC', { algorithms: ['HS256'] }],
      ['no algorithms', { algorithms: [] }],
      ['a zero lifetime', { maxTokenLifetime: 0 }],
      ['a lifetime over the limit', { maxTokenLifetime: 604_801 }],
      ['a fractional lifetime', { maxTokenLifetime: 1.5 }],
      ['http to a remote host', { jwksUri: 'http://kubernetes.example.net/jwks' }],
      ['http to a name that may resolve anywhere', { jwksUri: 'http://localhost.example.net/jwks' }],
      ['http to a name under localhost', { jwksUri: 'http://evil.localhost/jwks' }],
      ['http to a name starting with localhost', { jwksUri: 'http://localhost-proxy/jwks' }],
      ['another scheme', { jwksUri: 'file:///etc/passwd' }],
      ['credentials in the URL', { jwksUri: 'https://user:pass@kubernetes.example.net/jwks' }],
      ['both jwksUri and jwks', { jwks: { keys: [key.publicJwk] } }],
      ['neither jwksUri nor jwks', { jwksUri: undefined }],
      ['a private key in jwks', { jwksUri: undefined, jwks: { keys: [privateJwk] } }],
      ['a symmetric key in jwks', { jwksUri: undefined, jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }] } }],
      ['an empty JWK Set', { jwksUri: undefined, jwks: { keys: [] } }],
      ['a key that is not a key', { jwksUri: undefined, jwks: { keys: [{ kty: 'RSA', n: 'AQ', e: 'zz' }] } }],
      ['an encryption key', { jwksUri: undefined, jwks: { keys: [{ ...key.publicJwk, use: 'enc' }] } }],
      ['a CA that is not a certificate', { caCertificate: '-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n' }],
      ['an unknown field', { extra: true }],
      ['an issuer with a control character', { issuer: 'https://a\nb' }],
    ]
    const before = await storedState(h)
    for (const [label, change] of cases) {
      const body = Object.fromEntries(Object.entries({ ...base(), ...change }).filter(([, value]) => value !== undefined))
      const response = await h.admin('POST', '/v1/admin/issuers', body)
      expect(response.statusCode, `${label}: ${response.body}`).toBe(400)
      expectProblem(response, 400, 'invalid_request')
    }
    expect(await storedState(h)).toBe(before)
  })

  it('409 for a taken name or iss, and for deleting an issuer live clients are bound to', async () => {
    expect((await h.admin('POST', '/v1/admin/issuers', base())).statusCode).toBe(201)
    const before = await storedState(h)
    expectProblem(await h.admin('POST', '/v1/admin/issuers', base()), 409, 'conflict')
    expectProblem(await h.admin('POST', '/v1/admin/issuers', { ...base(), name: 'cluster2' }), 409, 'conflict')
    expect(await storedState(h)).toBe(before)

    expect((await h.admin('POST', '/v1/admin/issuers', { ...base(), name: 'other', issuer: 'https://other.example' })).statusCode).toBe(201)
    expectProblem(await h.admin('PATCH', '/v1/admin/issuers/other', { issuer: 'https://kubernetes.default.svc' }), 409, 'conflict')
    expectProblem(await h.admin('PATCH', '/v1/admin/issuers/other', { name: 'renamed' }), 400, 'invalid_request')
    expectProblem(await h.admin('PATCH', '/v1/admin/issuers/other', { algorithms: ['HS256'] }), 400, 'invalid_request')

    const client = await h.admin('POST', '/v1/admin/clients', { name: 'api', keysets: '*', scopes: ['sign'], identity: { issuer: 'cluster', subject: 'system:serviceaccount:billing:api' } })
    expect(client.statusCode).toBe(201)
    expectProblem(await h.admin('POST', '/v1/admin/clients', { name: 'twin', keysets: '*', scopes: ['sign'], identity: { issuer: 'cluster', subject: 'system:serviceaccount:billing:api' } }), 409, 'conflict')
    expectProblem(await h.admin('DELETE', '/v1/admin/issuers/cluster'), 409, 'conflict')
    expect((await h.admin('GET', '/v1/admin/issuers/cluster')).statusCode).toBe(200)
    expect((await h.admin('DELETE', `/v1/admin/clients/${client.json().id}`)).statusCode).toBe(200)
    expect((await h.admin('DELETE', '/v1/admin/issuers/cluster')).statusCode).toBe(200)
  })

  it('404 for an unknown issuer, also when a client names one', async () => {
    expectProblem(await h.admin('GET', '/v1/admin/issuers/nope'), 404, 'issuer_not_found')
    expectProblem(await h.admin('PATCH', '/v1/admin/issuers/nope', { audiences: ['x'] }), 404, 'issuer_not_found')
    expectProblem(await h.admin('DELETE', '/v1/admin/issuers/nope'), 404, 'issuer_not_found')
    const before = await storedState(h)
    expectProblem(await h.admin('POST', '/v1/admin/clients', { name: 'api', keysets: '*', scopes: ['sign'], identity: { issuer: 'nope', subject: 'a' } }), 404, 'issuer_not_found')
    for (const identity of [{ issuer: 'other' }, { issuer: 'other', subject: '' }, { issuer: 'other', subject: '*' }, { issuer: 'Other', subject: 'a' }, { issuer: 'other', subject: 'a', extra: 1 }]) {
      expectProblem(await h.admin('POST', '/v1/admin/clients', { name: 'api', keysets: '*', scopes: ['sign'], identity }), 400, 'invalid_request')
    }
    expect(await storedState(h)).toBe(before)
  })

  it('only the admin token or an admin client with keysets * manages issuers', async () => {
    const narrow = await h.createClient({ keysets: ['default'], scopes: ['admin'] })
    expectProblem(await h.request('GET', '/v1/admin/issuers', { token: narrow.token }), 403, 'forbidden')
    expectProblem(await h.request('POST', '/v1/admin/issuers', { token: narrow.token, body: { ...base(), name: 'x', issuer: 'https://x.example' } }), 403, 'forbidden')
    const wide = await h.createClient({ keysets: '*', scopes: ['admin'] })
    expect((await h.request('GET', '/v1/admin/issuers', { token: wide.token })).statusCode).toBe(200)
    const signer = await h.createClient({ keysets: '*', scopes: ['sign'] })
    expectProblem(await h.request('GET', '/v1/admin/issuers', { token: signer.token }), 403, 'forbidden')
  })
})
