import { createHmac } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness } from '../helpers/harness.js'

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

describe('POST /v1/verify', () => {
  let h: Harness
  let client: string

  beforeAll(async () => {
    h = await createHarness()
    await h.createKeyset({ name: 'rsa', alg: 'RS256', issuer: 'https://rsa.example' })
    client = (await h.createClient({ scopes: ['sign', 'verify'] })).token
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  const sign = async (body: Record<string, unknown>) => (await h.request('POST', '/v1/sign', { token: client, body })).json()
  const verify = async (body: Record<string, unknown>) => {
    const response = await h.request('POST', '/v1/verify', { token: client, body })
    expect(response.statusCode).toBe(200)
    return response.json()
  }

  it('accepts a token it signed, with its header and payload', async () => {
    const signed = await sign({ claims: { sub: 'u', aud: 'api' } })
    const result = await verify({ token: signed.token, audience: 'api' })
    expect(result.valid).toBe(true)
    expect(result.header).toMatchObject({ alg: 'ES256', kid: signed.kid })
    expect(result.payload).toMatchObject({ sub: 'u', aud: 'api', exp: signed.exp })
  })

  it('checks audience and issuer when given', async () => {
    const signed = await sign({ keyset: 'rsa', claims: { aud: 'api' } })
    expect((await verify({ keyset: 'rsa', token: signed.token, audience: 'other' })).code).toBe('audience_mismatch')
    expect((await verify({ keyset: 'rsa', token: signed.token, issuer: 'https://evil.example' })).code).toBe('issuer_mismatch')
    expect((await verify({ keyset: 'rsa', token: signed.token, issuer: 'https://rsa.example', audience: 'api' })).valid).toBe(true)
  })

  it('refuses an expired token', async () => {
    const signed = await sign({ claims: {}, ttl: 60 })
    h.clock.advance(61_000)
    expect(await verify({ token: signed.token })).toMatchObject({ valid: false, code: 'expired' })
  })

  it('refuses a token of another keyset, and a kid it does not publish', async () => {
    const signed = await sign({ keyset: 'rsa', claims: {} })
    expect(await verify({ token: signed.token })).toMatchObject({ valid: false, code: 'unknown_kid' })
  })

  it('refuses alg none in any capitalisation, and HS256 keyed with the public key', async () => {
    const signed = await sign({ keyset: 'rsa', claims: { sub: 'u' } })
    const [, payload] = signed.token.split('.')
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      const result = await verify({ keyset: 'rsa', token: `${b64({ alg, kid: signed.kid })}.${payload}.` })
      expect(result.valid, alg).toBe(false)
    }
    const jwk = (await h.request('GET', '/keysets/rsa/jwks.json')).json().keys[0]
    const header = b64({ alg: 'HS256', kid: signed.kid })
    const forged = `${header}.${payload}.${createHmac('sha256', JSON.stringify(jwk)).update(`${header}.${payload}`).digest('base64url')}`
    expect(await verify({ keyset: 'rsa', token: forged })).toMatchObject({ valid: false, code: 'alg_not_allowed' })
  })

  it('refuses an unknown crit header, a token over 32 KiB, and garbage', async () => {
    const signed = await sign({ claims: {} })
    const [, payload, signature] = signed.token.split('.')
    const crit = `${b64({ alg: 'ES256', kid: signed.kid, crit: ['exp-ext'], 'exp-ext': 1 })}.${payload}.${signature}`
    expect((await verify({ token: crit })).valid).toBe(false)
    expect(await verify({ token: `${signed.token}${'A'.repeat(33 * 1024)}` })).toMatchObject({ valid: false, code: 'token_too_large' })
    for (const token of ['', 'abc', 'a.b.c', '....', `${b64('[]')}.${payload}.${signature}`]) {
      expect((await verify({ token })).valid, token).toBe(false)
    }
  })

  it('refuses a token whose signature or payload was altered', async () => {
    const signed = await sign({ claims: { role: 'user' } })
    const [header, payload, signature] = signed.token.split('.')
    const flipped = Buffer.from(signature, 'base64url')
    flipped[0]! ^= 1
    expect(await verify({ token: `${header}.${payload}.${flipped.toString('base64url')}` })).toMatchObject({ valid: false, code: 'invalid_signature' })
    expect(await verify({ token: `${header}.${b64({ role: 'admin', exp: signed.exp })}.${signature}` })).toMatchObject({ valid: false, code: 'invalid_signature' })
  })

  it('refuses tokens of a revoked key', async () => {
    const signed = await sign({ claims: {} })
    await h.admin('POST', `/v1/admin/keys/${signed.kid}/revoke`, { reason: 'test' })
    expect(await verify({ token: signed.token })).toMatchObject({ valid: false, code: 'unknown_kid' })
  })

  it('needs the verify scope and access to the keyset; a bad body is a 400', async () => {
    const signOnly = (await h.createClient({ scopes: ['sign'] })).token
    expect((await h.request('POST', '/v1/verify', { token: signOnly, body: { token: 'a.b.c' } })).statusCode).toBe(403)
    const other = (await h.createClient({ scopes: ['verify'], keysets: ['rsa'] })).token
    expect((await h.request('POST', '/v1/verify', { token: other, body: { token: 'a.b.c' } })).statusCode).toBe(403)
    expect((await h.request('POST', '/v1/verify', { token: client, body: { token: 5 } })).statusCode).toBe(400)
    expect((await h.request('POST', '/v1/verify', { token: client, body: { token: 'a.b.c', keyset: 'nope' } })).statusCode).toBe(404)
  })
})
