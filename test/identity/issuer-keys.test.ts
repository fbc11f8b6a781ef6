import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { SignJWT, decodeProtectedHeader } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/clock.js'
import { cacheSeconds, IssuerKeys, IssuerKeysUnavailable } from '../../src/identity/issuer-keys.js'
import { issue, makeCa } from '../tls/certs.js'
import { issuerKey, TestIssuer, type IssuerKey } from './test-issuer.js'

/** The key an IssuerKeys hands jose for a token signed by `key`. */
async function keyFor(keys: IssuerKeys, key: IssuerKey, kid = key.kid) {
  const token = await new SignJWT({}).setProtectedHeader({ alg: key.alg, kid }).sign(key.pair.privateKey)
  const [protectedHeader, payload, signature] = token.split('.')
  return keys.getKey(decodeProtectedHeader(token) as never, { protected: protectedHeader!, payload: payload!, signature: signature! })
}

describe('an issuer JWK Set fetched like a careful verifier', () => {
  let issuer: TestIssuer
  let first: IssuerKey

  beforeAll(async () => {
    first = await issuerKey('a', 'ES256')
    issuer = await new TestIssuer().start(first)
  })
  afterAll(() => issuer.close())

  it('bounds Cache-Control max-age', () => {
    expect(cacheSeconds(undefined)).toBe(300)
    expect(cacheSeconds('public, max-age=120')).toBe(120)
    expect(cacheSeconds('max-age=1')).toBe(60)
    expect(cacheSeconds('max-age=99999999')).toBe(86_400)
    expect(cacheSeconds('no-store')).toBe(60)
  })

  it('keeps the set for its max-age, then fetches again', async () => {
    issuer.cacheControl = 'public, max-age=120'
    const clock = new ManualClock()
    const keys = new IssuerKeys({ source: { jwksUri: issuer.jwksUri, caCertificate: null }, clock })
    const before = issuer.jwksRequests
    await keyFor(keys, first)
    clock.advanceSeconds(119)
    await keyFor(keys, first)
    expect(issuer.jwksRequests - before).toBe(1)
    clock.advanceSeconds(2)
    await keyFor(keys, first)
    expect(issuer.jwksRequests - before).toBe(2)
    await keys.close()
    issuer.cacheControl = 'public, max-age=300'
  })

  it('refuses a JWK Set over the size limit, keeping the last good one', async () => {
    const clock = new ManualClock()
    const errors: string[] = []
    const keys = new IssuerKeys({ source: { jwksUri: issuer.jwksUri, caCertificate: null }, clock, onFetchError: (error) => errors.push(error.message) })
    await keyFor(keys, first)
    const padding = { kty: 'RSA', kid: 'pad', n: 'x'.repeat(300 * 1024), e: 'AQAB' }
    issuer.keys.push({ ...first, kid: 'pad', publicJwk: padding })
    try {
      clock.advanceSeconds(301)
      await keyFor(keys, first)
      expect(errors.at(-1)).toMatch(/larger than 262144 bytes/)
    } finally {
      issuer.keys.pop()
      await keys.close()
    }
  })

  it('gives up on an endpoint that does not answer within the timeout', async () => {
    issuer.mode = 'hang'
    // The timeout shortened from its 5 s (FETCH_TIMEOUT_MS): the give-up is what is tested, not the length.
    const keys = new IssuerKeys({ source: { jwksUri: issuer.jwksUri, caCertificate: null }, clock: new ManualClock(), fetchTimeoutMs: 300 })
    try {
      const started = Date.now()
      await expect(keyFor(keys, first)).rejects.toBeInstanceOf(IssuerKeysUnavailable)
      const waited = Date.now() - started
      expect(waited).toBeGreaterThanOrEqual(250)
      expect(waited).toBeLessThan(3000)
    } finally {
      issuer.mode = 'up'
      await keys.close()
    }
  }, 15_000)
})

describe('an https JWKS endpoint with a private CA', () => {
  const ca = makeCa('cluster CA')
  const server = issue(ca, [{ shortName: 'CN', value: '127.0.0.1' }], 'server')
  let url: string
  let key: IssuerKey
  let https: ReturnType<typeof createHttpsServer>

  beforeAll(async () => {
    key = await issuerKey('tls', 'RS256')
    https = createHttpsServer({ cert: server.certPem, key: server.keyPem }, (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: [key.publicJwk] }))
    })
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve))
    url = `https://127.0.0.1:${(https.address() as AddressInfo).port}/jwks`
  })
  afterAll(async () => {
    https.closeAllConnections()
    await new Promise((resolve) => https.close(resolve))
  })

  it('is trusted with its CA, and refused without it', async () => {
    const trusting = new IssuerKeys({ source: { jwksUri: url, caCertificate: ca.certPem }, clock: new ManualClock() })
    expect(await keyFor(trusting, key)).toBeDefined()
    await trusting.close()
    const errors: string[] = []
    const untrusting = new IssuerKeys({ source: { jwksUri: url, caCertificate: null }, clock: new ManualClock(), onFetchError: (error) => errors.push(error.message) })
    await expect(keyFor(untrusting, key)).rejects.toBeInstanceOf(IssuerKeysUnavailable)
    expect(errors).toHaveLength(1)
    await untrusting.close()
  })
})
