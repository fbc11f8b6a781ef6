import { createPublicKey } from 'node:crypto'
import jsonwebtoken from 'jsonwebtoken'
import { JwksClient } from 'jwks-rsa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ALGORITHMS, type Alg } from '../../src/crypto/algorithms.js'
import { createHarness, type Harness } from '../helpers/harness.js'
import { decodeToken, verifiesWith } from '../helpers/tokens.js'

/**
 * Acceptance 1 of the core issue: for every algorithm, tokens from /v1/sign and
 * /v1/sign/batch verify with jose against the served JWK Set, and with jsonwebtoken
 * plus jwks-rsa fetching it over HTTP. jsonwebtoken has no EdDSA support, so EdDSA
 * is checked with jose here (and with fast-jwt, PyJWT and openssl in the interop suite).
 */
const keysetOf = (alg: Alg) => `alg-${alg.toLowerCase()}`

describe('every algorithm', () => {
  let h: Harness
  let token: string
  let baseUrl: string

  beforeAll(async () => {
    h = await createHarness({ clock: { now: () => Date.now() } })
    for (const alg of ALGORITHMS) await h.createKeyset({ name: keysetOf(alg), alg })
    token = (await h.createClient()).token
    baseUrl = await h.listen()
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  const jwksOf = async (alg: Alg) => (await h.request('GET', `/keysets/${keysetOf(alg)}/jwks.json`)).json()

  async function verifyWithJsonwebtoken(jwt: string, alg: Alg): Promise<Record<string, unknown>> {
    const client = new JwksClient({ jwksUri: `${baseUrl}/keysets/${keysetOf(alg)}/jwks.json`, cache: false })
    const { kid } = decodeToken(jwt).header
    const signingKey = await client.getSigningKey(kid as string)
    return jsonwebtoken.verify(jwt, signingKey.getPublicKey(), { algorithms: [alg as jsonwebtoken.Algorithm] }) as Record<string, unknown>
  }

  it.each(ALGORITHMS)('%s: /v1/sign tokens verify with jose against the served JWK Set', async (alg) => {
    const response = await h.request('POST', '/v1/sign', { token, body: { keyset: keysetOf(alg), claims: { sub: 'user-42', aud: 'api' }, ttl: 600 } })
    expect(response.statusCode).toBe(200)
    const signed = response.json()
    expect(signed).toMatchObject({ alg, keyset: keysetOf(alg) })
    const { header, payload } = decodeToken(signed.token)
    expect(header).toEqual({ alg, typ: 'JWT', kid: signed.kid })
    expect(payload).toMatchObject({ sub: 'user-42', aud: 'api', iat: signed.iat, exp: signed.iat + 600, jti: signed.jti })
    expect(Buffer.from(signed.jti, 'base64url').length).toBeGreaterThanOrEqual(16)
    const jwks = await jwksOf(alg)
    expect(await verifiesWith(signed.token, jwks, Date.now(), [alg])).toBe(true)
    // The served key has only public members.
    const jwk = jwks.keys.find((k: { kid: string }) => k.kid === signed.kid)
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(jwk).not.toHaveProperty(member)
    expect(createPublicKey({ key: jwk, format: 'jwk' }).type).toBe('public')
  })

  it.each(ALGORITHMS.filter((alg) => alg !== 'EdDSA'))('%s: /v1/sign and /v1/sign/batch tokens verify with jsonwebtoken + jwks-rsa', async (alg) => {
    const single = (await h.request('POST', '/v1/sign', { token, body: { keyset: keysetOf(alg), claims: { sub: 'one' } } })).json()
    expect((await verifyWithJsonwebtoken(single.token, alg)).sub).toBe('one')
    const batch = await h.request('POST', '/v1/sign/batch', { token, body: { keyset: keysetOf(alg), items: [{ claims: { sub: 'a' } }, { claims: { sub: 'b' }, ttl: 60 }] } })
    expect(batch.statusCode).toBe(200)
    const results = batch.json().results
    expect(results.map((r: { token: string }) => decodeToken(r.token).payload.sub)).toEqual(['a', 'b'])
    for (const result of results) expect(await verifyWithJsonwebtoken(result.token, alg)).toHaveProperty('exp')
  })

  it.each(ALGORITHMS)('%s: /v1/sign/batch tokens verify with jose', async (alg) => {
    const batch = await h.request('POST', '/v1/sign/batch', { token, body: { keyset: keysetOf(alg), items: [{ claims: { n: 1 } }, { claims: { n: 2 }, header: { typ: 'at+jwt' } }] } })
    expect(batch.statusCode).toBe(200)
    const jwks = await jwksOf(alg)
    const [first, second] = batch.json().results
    expect(await verifiesWith(first.token, jwks, Date.now())).toBe(true)
    expect(await verifiesWith(second.token, jwks, Date.now())).toBe(true)
    expect(decodeToken(second.token).header.typ).toBe('at+jwt')
    expect(first.jti).not.toBe(second.jti)
  })

  it.each([['ES256', 64], ['ES384', 96], ['ES512', 132]] as const)('%s signatures are raw R||S of exactly %i bytes, in each of 1,000 signatures', async (alg, length) => {
    const items = Array.from({ length: 1000 }, (_, i) => ({ claims: { i } }))
    const batch = await h.request('POST', '/v1/sign/batch', { token, body: { keyset: keysetOf(alg), items } })
    expect(batch.statusCode).toBe(200)
    const results = batch.json().results as { token: string }[]
    expect(results).toHaveLength(1000)
    const lengths = new Set(results.map((r) => decodeToken(r.token).signature.length))
    expect([...lengths]).toEqual([length])
    // Spot-check that they verify, from the first and the last.
    const jwks = await jwksOf(alg)
    expect(await verifiesWith(results[0]!.token, jwks, Date.now())).toBe(true)
    expect(await verifiesWith(results[999]!.token, jwks, Date.now())).toBe(true)
  })

  it('a tampered token fails with jose and jsonwebtoken', async () => {
    const signed = (await h.request('POST', '/v1/sign', { token, body: { keyset: keysetOf('RS256'), claims: { role: 'user' } } })).json()
    const [header, , signature] = signed.token.split('.')
    const forged = `${header}.${Buffer.from(JSON.stringify({ role: 'admin', exp: signed.exp })).toString('base64url')}.${signature}`
    expect(await verifiesWith(forged, await jwksOf('RS256'), Date.now())).toBe('ERR_JWS_SIGNATURE_VERIFICATION_FAILED')
    await expect(verifyWithJsonwebtoken(forged, 'RS256')).rejects.toThrow(/invalid signature/)
  })
})
