import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness } from '../helpers/harness.js'

describe('public routes', () => {
  let h: Harness

  beforeAll(async () => {
    h = await createHarness({ env: { SIGNET_JWKS_MAX_AGE: '120', SIGNET_PUBLIC_URL: 'https://signet.example/' } })
    await h.createKeyset({ name: 'sessions', issuer: 'https://auth.example', alg: 'EdDSA' })
    await h.createKeyset({ name: 'certs', alg: 'ES384', x5c: true })
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  it('serves the default keyset at /.well-known/jwks.json with the JWK Set media type, max-age and a strong ETag', async () => {
    const response = await h.request('GET', '/.well-known/jwks.json')
    expect(response.statusCode).toBe(200)
    expect(response.headers['content-type']).toBe('application/jwk-set+json')
    expect(response.headers['cache-control']).toBe('public, max-age=120')
    const etag = response.headers.etag as string
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/)
    expect(etag).toBe(`"${createHash('sha256').update(response.rawPayload).digest('base64url')}"`)
    const { keys } = response.json()
    expect(keys).toHaveLength(1)
    expect(Object.keys(keys[0]).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'])
    expect(keys[0]).toMatchObject({ kty: 'EC', use: 'sig', alg: 'ES256', crv: 'P-256' })
    // The same bytes as the keyset's own URL.
    expect((await h.request('GET', '/keysets/default/jwks.json')).body).toBe(response.body)
  })

  it('answers 304 to If-None-Match with the current ETag (also weak or in a list), 200 otherwise', async () => {
    const first = await h.request('GET', '/keysets/sessions/jwks.json')
    const etag = first.headers.etag as string
    for (const header of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const response = await h.request('GET', '/keysets/sessions/jwks.json', { headers: { 'if-none-match': header } })
      expect(response.statusCode, header).toBe(304)
      expect(response.body).toBe('')
      expect(response.headers.etag).toBe(etag)
      expect(response.headers['cache-control']).toBe('public, max-age=120')
    }
    expect((await h.request('GET', '/keysets/sessions/jwks.json', { headers: { 'if-none-match': '"stale"' } })).statusCode).toBe(200)
  })

  it('changes the ETag when the key set changes', async () => {
    const before = (await h.request('GET', '/keysets/sessions/jwks.json')).headers.etag
    await h.admin('POST', '/v1/admin/keysets/sessions/rotate', {})
    const after = await h.request('GET', '/keysets/sessions/jwks.json', { headers: { 'if-none-match': before as string } })
    expect(after.statusCode).toBe(200)
    expect(after.headers.etag).not.toBe(before)
    expect(after.json().keys).toHaveLength(2)
  })

  it('publishes x5c and x5t#S256 when the keyset asks for them', async () => {
    const { keys } = (await h.request('GET', '/keysets/certs/jwks.json')).json()
    expect(keys[0].x5c).toHaveLength(1)
    const der = Buffer.from(keys[0].x5c[0], 'base64')
    expect(keys[0]['x5t#S256']).toBe(createHash('sha256').update(der).digest('base64url'))
    expect((await h.request('GET', '/keysets/sessions/jwks.json')).json().keys[0]).not.toHaveProperty('x5c')
  })

  it('shows in the admin key list exactly the JWK Set entry of each published key', async () => {
    for (const name of ['certs', 'sessions']) {
      const served = (await h.request('GET', `/keysets/${name}/jwks.json`)).json().keys
      const listed = (await h.admin('GET', `/v1/admin/keysets/${name}/keys`)).json().keys
      for (const jwk of served) expect(listed.find((k: { kid: string }) => k.kid === jwk.kid).jwk).toEqual(jwk)
    }
  })

  it('serves OpenID discovery for a keyset with an issuer, 404 without one', async () => {
    const response = await h.request('GET', '/keysets/sessions/.well-known/openid-configuration')
    expect(response.statusCode).toBe(200)
    expect(response.json()).toEqual({
      issuer: 'https://auth.example',
      jwks_uri: 'https://signet.example/keysets/sessions/jwks.json',
      id_token_signing_alg_values_supported: ['EdDSA'],
    })
    const none = await h.request('GET', '/.well-known/openid-configuration')
    expect(none.statusCode).toBe(404)
    expect(none.headers['content-type']).toMatch(/problem\+json/)
    await h.admin('PATCH', '/v1/admin/keysets/default', { issuer: 'https://default.example' })
    expect((await h.request('GET', '/.well-known/openid-configuration')).json()).toMatchObject({
      issuer: 'https://default.example',
      jwks_uri: 'https://signet.example/.well-known/jwks.json',
    })
  })

  it('answers /healthz and /readyz', async () => {
    expect((await h.request('GET', '/healthz')).json()).toEqual({ status: 'ok' })
    const ready = await h.request('GET', '/readyz')
    expect(ready.statusCode).toBe(200)
  })

  it('answers HEAD on the JWKS without a body', async () => {
    const response = await h.request('HEAD', '/.well-known/jwks.json')
    expect(response.statusCode).toBe(200)
    expect(response.body).toBe('')
  })
})
