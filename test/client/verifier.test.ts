import { createHmac, createPublicKey, KeyObject, randomBytes, sign } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { decodeJwt, decodeProtectedHeader, exportPKCS8, importPKCS8, SignJWT, UnsecuredJWT, type JWTPayload } from 'jose'
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { createVerifier, VerificationError, type VerificationErrorCode } from '../../src/client/index.js'
import { cacheControlMaxAge } from '../../src/client/verifier.js'
import { makeKey, startJwksServer, type JwksServer, type TestKey } from './jwks-server.js'

const b64url = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

async function failure(promise: Promise<unknown>): Promise<VerificationError> {
  const error = await promise.then(() => null, (caught: unknown) => caught)
  expect(error, 'the token was accepted').toBeInstanceOf(VerificationError)
  return error as VerificationError
}

async function expectCode(promise: Promise<unknown>, code: VerificationErrorCode): Promise<VerificationError> {
  const error = await failure(promise)
  expect(error.code).toBe(code)
  return error
}

/**
 * A verification that succeeded answers exactly the payload that was signed (sub,
 * aud, iss, iat, exp and the rest) and its protected header, and an exp still ahead
 * (or within `toleranceS`).
 */
async function expectVerified(result: Promise<{ payload: JWTPayload; header: object }>, token: string, toleranceS = 0): Promise<JWTPayload> {
  const { payload, header } = await result
  expect(payload).toEqual(decodeJwt(token))
  expect(header).toEqual(decodeProtectedHeader(token))
  expect(payload.exp).toBeGreaterThan(Math.floor(Date.now() / 1000) - toleranceS - 1)
  return payload
}

describe('createVerifier', () => {
  let jwks: JwksServer
  let es256: TestKey
  let rs256: TestKey
  let outsider: TestKey

  beforeAll(async () => {
    jwks = await startJwksServer()
    es256 = await makeKey('ES256', 'key-es256')
    rs256 = await makeKey('RS256', 'key-rs256')
    outsider = await makeKey('ES256', 'key-outsider')
  })
  afterAll(async () => { await jwks.close() })
  beforeEach(() => {
    jwks.keys = [es256.jwk, rs256.jwk]
    jwks.cacheControl = 'public, max-age=300'
    jwks.status = 200
    jwks.fetches = 0
  })

  describe('accepts', () => {
    it('a token of a published key, answering its payload and header, from one cached JWKS fetch', async () => {
      const verifier = createVerifier({ jwksUrl: jwks.url })
      for (const key of [es256, rs256, es256]) {
        const token = await key.sign({ sub: 'user-42', role: 'admin' })
        const { payload, header } = await verifier.verify(token)
        expect(payload).toEqual(decodeJwt(token))
        expect(payload).toMatchObject({ sub: 'user-42', role: 'admin', exp: expect.any(Number) })
        expect(header).toMatchObject({ alg: key.alg, kid: key.kid })
      }
      expect(jwks.fetches).toBe(1)
    })

    it('iss and aud when they match the options', async () => {
      const verifier = createVerifier({ jwksUrl: new URL(jwks.url), issuer: 'https://issuer.example', audience: ['api', 'web'] })
      const token = await es256.sign({ sub: 'user-42', iss: 'https://issuer.example', aud: 'web' })
      const payload = await expectVerified(verifier.verify(token), token)
      expect(payload).toMatchObject({ sub: 'user-42', iss: 'https://issuer.example', aud: 'web' })
    })

    it('any iss and aud when the options do not name them', async () => {
      const verifier = createVerifier({ jwksUrl: jwks.url })
      const token = await es256.sign({ sub: 'user-7', iss: 'anyone', aud: 'anything' })
      expect(await expectVerified(verifier.verify(token), token)).toMatchObject({ sub: 'user-7', iss: 'anyone', aud: 'anything' })
    })

    it('a token expired less than clockTolerance ago', async () => {
      const expiredAMinuteAgo = await es256.sign({}, {}, Math.floor(Date.now() / 1000) - 60)
      await expectCode(createVerifier({ jwksUrl: jwks.url }).verify(expiredAMinuteAgo), 'expired')
      await expectVerified(createVerifier({ jwksUrl: jwks.url, clockTolerance: 120 }).verify(expiredAMinuteAgo), expiredAMinuteAgo, 120)
    })
  })

  describe('refuses', () => {
    it('an expired token', async () => {
      const error = await expectCode(createVerifier({ jwksUrl: jwks.url }).verify(await es256.sign({}, {}, Math.floor(Date.now() / 1000) - 1)), 'expired')
      expect(error.claim).toBe('exp')
    })

    it('a token without exp, even a well-signed one', async () => {
      const error = await expectCode(createVerifier({ jwksUrl: jwks.url }).verify(await es256.sign({ sub: 'forever' }, {}, null)), 'missing_claim')
      expect(error.claim).toBe('exp')
    })

    it('a token not yet valid (nbf in the future)', async () => {
      const nbf = Math.floor(Date.now() / 1000) + 600
      const error = await expectCode(createVerifier({ jwksUrl: jwks.url }).verify(await es256.sign({ nbf })), 'not_yet_valid')
      expect(error.claim).toBe('nbf')
    })

    it('another issuer or audience when they are given, and a token lacking them', async () => {
      const verifier = createVerifier({ jwksUrl: jwks.url, issuer: 'https://issuer.example', audience: 'api' })
      expect((await expectCode(verifier.verify(await es256.sign({ iss: 'https://evil.example', aud: 'api' })), 'issuer_mismatch')).claim).toBe('iss')
      expect((await expectCode(verifier.verify(await es256.sign({ iss: 'https://issuer.example', aud: 'other' })), 'audience_mismatch')).claim).toBe('aud')
      expect((await expectCode(verifier.verify(await es256.sign({ aud: 'api' })), 'issuer_mismatch')).claim).toBe('iss')
      expect((await expectCode(verifier.verify(await es256.sign({ iss: 'https://issuer.example' })), 'audience_mismatch')).claim).toBe('aud')
    })

    it('a token whose payload or signature was tampered with', async () => {
      const verifier = createVerifier({ jwksUrl: jwks.url })
      for (const key of [es256, rs256]) {
        const [header, payload, signature] = (await key.sign({ sub: 'user-42', admin: false })).split('.') as [string, string, string]
        const forgedPayload = b64url({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), admin: true })
        await expectCode(verifier.verify(`${header}.${forgedPayload}.${signature}`), 'invalid_signature')
        const bytes = Buffer.from(signature, 'base64url')
        bytes[bytes.length >> 1]! ^= 0x01
        await expectCode(verifier.verify(`${header}.${payload}.${bytes.toString('base64url')}`), 'invalid_signature')
      }
    })

    it('a token without a kid against every published key of its algorithm, in turn', async () => {
      const second = await makeKey('ES256', 'key-es256-second')
      jwks.keys = [es256.jwk, rs256.jwk, second.jwk]
      const verifier = createVerifier({ jwksUrl: jwks.url })
      for (const key of [es256, second]) {
        const { payload, header } = await verifier.verify(await key.sign({ sub: key.kid }, { kid: undefined }))
        expect(payload.sub).toBe(key.kid)
        expect(header.kid).toBeUndefined()
      }
      await expectCode(verifier.verify(await outsider.sign({}, { kid: undefined })), 'invalid_signature')
    })

    it('a token signed by a key the JWK Set does not publish', async () => {
      await expectCode(createVerifier({ jwksUrl: jwks.url }).verify(await outsider.sign({})), 'unknown_kid')
      // The same kid as a published key does not help: the signature decides.
      const impostor = await makeKey('ES256', es256.kid)
      await expectCode(createVerifier({ jwksUrl: jwks.url }).verify(await impostor.sign({})), 'invalid_signature')
    })

    it('a token of a published key marked for another use (use other than sig, key_ops without verify)', async () => {
      const token = await es256.sign({ sub: 'user-42' })
      for (const marks of [{ use: 'enc' }, { key_ops: ['encrypt'] }, { key_ops: 'verify' }]) {
        jwks.keys = [{ ...es256.jwk, ...marks } as typeof es256.jwk, rs256.jwk]
        await expectCode(createVerifier({ jwksUrl: jwks.url }).verify(token), 'unknown_kid')
        await expectCode(createVerifier({ jwksUrl: jwks.url, algorithms: ['ES256'] }).verify(token), 'unknown_kid')
      }
      // The same key marked for verifying, or not marked at all, verifies.
      for (const marks of [{ key_ops: ['verify'] }, { use: undefined }]) {
        jwks.keys = [{ ...es256.jwk, ...marks } as typeof es256.jwk]
        expect((await createVerifier({ jwksUrl: jwks.url }).verify(token)).payload.sub).toBe('user-42')
      }
    })

    it('alg none and HMAC tokens made with the public key as secret, without fetching the JWK Set', async () => {
      const verifier = createVerifier({ jwksUrl: jwks.url })
      const unsecured = new UnsecuredJWT({ sub: 'admin' }).setExpirationTime('5m').encode()
      await expectCode(verifier.verify(unsecured), 'alg_not_allowed')
      // The classic confusion: HS256 keyed with the RSA public key as published.
      const pem = createPublicKey({ key: rs256.jwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string
      const header = b64url({ alg: 'HS256', typ: 'JWT', kid: rs256.kid })
      const payload = b64url({ sub: 'admin', exp: Math.floor(Date.now() / 1000) + 300 })
      const mac = createHmac('sha256', pem).update(`${header}.${payload}`).digest('base64url')
      await expectCode(verifier.verify(`${header}.${payload}.${mac}`), 'alg_not_allowed')
      expect(jwks.fetches).toBe(0)
    })

    it('an algorithm outside an explicit allowlist, without fetching the JWK Set', async () => {
      const verifier = createVerifier({ jwksUrl: jwks.url, algorithms: ['RS256'] })
      await expectCode(verifier.verify(await es256.sign({})), 'alg_not_allowed')
      expect(jwks.fetches).toBe(0)
      const allowed = await rs256.sign({ sub: 'user-rs' })
      expect(await expectVerified(verifier.verify(allowed), allowed)).toMatchObject({ sub: 'user-rs' })
    })

    it('by default, an algorithm no published key has (PS256 with an RS256 key)', async () => {
      const pss = await importPKCS8(await exportPKCS8(rs256.privateKey), 'PS256')
      const token = await new SignJWT({}).setProtectedHeader({ alg: 'PS256', kid: rs256.kid }).setExpirationTime('5m').sign(pss)
      await expectCode(createVerifier({ jwksUrl: jwks.url }).verify(token), 'alg_not_allowed')
      // Allowed explicitly, it still fails: the published key of that kid says RS256.
      await expectCode(createVerifier({ jwksUrl: jwks.url, algorithms: ['PS256'] }).verify(token), 'alg_not_allowed')
    })

    it('keys offered by the token itself (jwk, jku headers): they are ignored', async () => {
      const elsewhere = await startJwksServer()
      try {
        elsewhere.keys = [outsider.jwk]
        const verifier = createVerifier({ jwksUrl: jwks.url })
        await expectCode(verifier.verify(await outsider.sign({}, { jku: elsewhere.url })), 'unknown_kid')
        await expectCode(verifier.verify(await outsider.sign({}, { jwk: { kty: outsider.jwk.kty, crv: outsider.jwk.crv, x: outsider.jwk.x, y: outsider.jwk.y } })), 'unknown_kid')
        expect(elsewhere.fetches).toBe(0)
      } finally {
        await elsewhere.close()
      }
    })

    it('a token whose typ differs from the typ option', async () => {
      const verifier = createVerifier({ jwksUrl: jwks.url, typ: 'at+jwt' })
      expect((await expectCode(verifier.verify(await es256.sign({})), 'invalid_claims')).claim).toBe('typ')
      const accessToken = await es256.sign({ sub: 'user-at' }, { typ: 'at+jwt' })
      expect(await expectVerified(verifier.verify(accessToken), accessToken)).toMatchObject({ sub: 'user-at' })
    })

    it('an unknown crit header', async () => {
      // jose refuses to sign such a header, so the token is assembled by hand.
      const signingInput = `${b64url({ alg: 'ES256', kid: es256.kid, crit: ['urn:example:unknown'], 'urn:example:unknown': true })}.${b64url({ exp: Math.floor(Date.now() / 1000) + 300 })}`
      const signature = sign('sha256', Buffer.from(signingInput), { key: KeyObject.from(es256.privateKey), dsaEncoding: 'ieee-p1363' })
      const token = `${signingInput}.${signature.toString('base64url')}`
      await expectCode(createVerifier({ jwksUrl: jwks.url }).verify(token), 'unsupported_crit')
    })

    it('malformed and oversized input', async () => {
      const verifier = createVerifier({ jwksUrl: jwks.url })
      for (const bad of ['', 'abc', 'a.b.c', 'a.b', `${b64url({ alg: 'ES256' })}.!!!.x`, 42 as unknown as string]) {
        await expectCode(verifier.verify(bad), 'malformed')
      }
      const huge = (await es256.sign({ pad: 'x'.repeat(40_000) }))
      await expectCode(verifier.verify(huge), 'token_too_large')
    })

    it('every token while the JWK Set cannot be fetched, with jwks_unavailable, without refetching on every token', async () => {
      jwks.status = 503
      const verifier = createVerifier({ jwksUrl: jwks.url })
      const token = await es256.sign({})
      for (let i = 0; i < 10; i++) await expectCode(verifier.verify(token), 'jwks_unavailable')
      expect(jwks.fetches).toBe(1)
      jwks.status = 200
      await sleep(1050)
      await expectVerified(verifier.verify(token), token) // recovers once the endpoint does
      await expectCode(createVerifier({ jwksUrl: 'http://127.0.0.1:9/jwks.json' }).verify(await es256.sign({})), 'jwks_unavailable')
    })
  })

  describe('JWK Set cache', () => {
    it('a flood of made-up kids fetches the JWK Set once per cooldown, concurrent or not', async () => {
      const verifier = createVerifier({ jwksUrl: jwks.url })
      const madeUp = () => outsider.sign({}, { kid: randomBytes(16).toString('base64url') })
      // Concurrent first uses share one fetch, and the first unknown kid one refetch.
      const burst = await Promise.all(Array.from({ length: 20 }, async () => failure(verifier.verify(await madeUp()))))
      expect(burst.map((error) => error.code)).toEqual(Array(20).fill('unknown_kid'))
      expect(jwks.fetches).toBe(2)
      for (let i = 0; i < 50; i++) await expectCode(verifier.verify(await madeUp()), 'unknown_kid')
      expect(jwks.fetches).toBe(2)
      // Real tokens keep verifying from the cache.
      const real = await es256.sign({ sub: 'user-42' })
      await expectVerified(verifier.verify(real), real)
      expect(jwks.fetches).toBe(2)
    })

    it('the first unknown kid refetches at once and finds a newly published key (an immediate rotation)', async () => {
      const verifier = createVerifier({ jwksUrl: jwks.url })
      await verifier.verify(await es256.sign({}))
      const fresh = await makeKey('ES256', 'key-rotated')
      jwks.keys = [...jwks.keys, fresh.jwk]
      const rotated = await fresh.sign({ sub: 'user-42' })
      await expectVerified(verifier.verify(rotated), rotated)
      expect(jwks.fetches).toBe(2)
    })

    it('a later unknown kid refetches once the cooldown has passed, and finds a newly published key', async () => {
      const verifier = createVerifier({ jwksUrl: jwks.url, cooldown: 300 })
      await verifier.verify(await es256.sign({}))
      await expectCode(verifier.verify(await outsider.sign({}, { kid: 'made-up' })), 'unknown_kid') // spends the refetch
      expect(jwks.fetches).toBe(2)
      const fresh = await makeKey('ES256', 'key-fresh')
      jwks.keys = [...jwks.keys, fresh.jwk]
      const token = await fresh.sign({})
      await expectCode(verifier.verify(token), 'unknown_kid') // still cooling down
      expect(jwks.fetches).toBe(2)
      await sleep(350)
      await expectVerified(verifier.verify(token), token)
      expect(jwks.fetches).toBe(3)
    })

    it('a default allowlist follows the JWK Set: a newly published algorithm is picked up after the cooldown', async () => {
      const verifier = createVerifier({ jwksUrl: jwks.url, cooldown: 300 })
      await verifier.verify(await es256.sign({}))
      await expectCode(verifier.verify(await outsider.sign({}, { kid: 'made-up' })), 'unknown_kid') // spends the refetch
      const ed = await makeKey('EdDSA', 'key-ed25519')
      jwks.keys = [...jwks.keys, ed.jwk]
      const token = await ed.sign({ sub: 'with-kid' })
      const withoutKid = await ed.sign({ sub: 'without-kid' }, { kid: undefined })
      // The cached set has neither its kid nor any EdDSA key yet, and the cooldown holds.
      await expectCode(verifier.verify(token), 'unknown_kid')
      await expectCode(verifier.verify(withoutKid), 'alg_not_allowed')
      expect(jwks.fetches).toBe(2)
      await sleep(350)
      expect(await expectVerified(verifier.verify(token), token)).toMatchObject({ sub: 'with-kid' })
      expect((await verifier.verify(withoutKid)).payload.sub).toBe('without-kid')
      expect(jwks.fetches).toBe(3)
    })

    it('follows the server\'s Cache-Control max-age: a removed key stops verifying once it passes', async () => {
      jwks.cacheControl = 'public, max-age=1'
      const verifier = createVerifier({ jwksUrl: jwks.url })
      const token = await es256.sign({})
      await verifier.verify(token)
      jwks.keys = [rs256.jwk, outsider.jwk] // es256 revoked, another ES256 key published
      await expectVerified(verifier.verify(token), token) // cached
      await sleep(1100)
      await expectCode(verifier.verify(token), 'unknown_kid')
      // The refresh after max-age, and one refetch for the kid it no longer has.
      expect(jwks.fetches).toBe(3)
    })

    it('cacheMaxAge caps a longer server max-age', async () => {
      jwks.cacheControl = 'public, max-age=3600'
      const verifier = createVerifier({ jwksUrl: jwks.url, cacheMaxAge: 200 })
      await verifier.verify(await es256.sign({}))
      await sleep(250)
      await verifier.verify(await es256.sign({}))
      expect(jwks.fetches).toBe(2)
    })

    it('reload() fetches at once', async () => {
      const verifier = createVerifier({ jwksUrl: jwks.url })
      await verifier.reload()
      await verifier.reload()
      expect(jwks.fetches).toBe(2)
    })
  })

  describe('stale-if-error: the JWKS endpoint fails after the cached set expired', () => {
    /** A logger that keeps what it is told. */
    const recorder = () => {
      const lines: { level: string; details: object; message: string }[] = []
      const at = (level: string) => (details: object, message: string) => { lines.push({ level, details, message }) }
      return { lines, logger: { info: at('info'), warn: at('warn'), error: at('error') } }
    }
    /** A verifier whose set (max-age 1 s) has been fetched, then expired while the endpoint went down. */
    const expiredDuringOutage = async (options: { staleIfErrorMs?: number } = {}) => {
      jwks.cacheControl = 'public, max-age=1'
      const log = recorder()
      const verifier = createVerifier({ jwksUrl: jwks.url, audience: 'api', logger: log.logger, ...options })
      await verifier.verify(await es256.sign({ aud: 'api' }))
      expect(jwks.fetches).toBe(1)
      jwks.status = 503
      await sleep(1100)
      return { verifier, log }
    }

    it('a known kid still verifies, with its payload checked in full; the stale use is counted and logged once', async () => {
      const { verifier, log } = await expiredDuringOutage()
      const token = await es256.sign({ aud: 'api', sub: 'user-42' })
      for (let i = 0; i < 5; i++) expect((await expectVerified(verifier.verify(token), token)).sub).toBe('user-42')
      expect((await verifier.verify(await rs256.sign({ aud: 'api' }))).header.kid).toBe('key-rs256')
      expect(verifier.staleVerifications).toBe(6)
      // Stale keys, but every claim is still checked.
      await expectCode(verifier.verify(await es256.sign({ aud: 'other' })), 'audience_mismatch')
      await expectCode(verifier.verify(await es256.sign({ aud: 'api' }, {}, -10)), 'expired')
      const [header, payload] = token.split('.') as [string, string, string]
      await expectCode(verifier.verify(`${header}.${payload}.${b64url('forged')}`), 'invalid_signature')
      expect(log.lines.map((line) => [line.level, line.message])).toEqual([
        ['warn', 'the JWK Set endpoint cannot be fetched: verifying with the last good JWK Set'],
      ])
      expect(log.lines[0]!.details).toMatchObject({ jwksUrl: jwks.url, staleIfErrorMs: 43_200_000 })
      expect(JSON.stringify(log.lines)).not.toContain(token.split('.')[2])
      // The endpoint is tried again, in the background, at most once a second.
      expect(jwks.fetches).toBeLessThanOrEqual(3)
    })

    it('an unknown kid is refused: finding it needs a successful fetch', async () => {
      const { verifier } = await expiredDuringOutage()
      const fresh = await makeKey('ES256', 'key-after-outage')
      jwks.keys = [...jwks.keys, fresh.jwk] // published, but the endpoint is down
      await expectCode(verifier.verify(await fresh.sign({ aud: 'api' })), 'jwks_unavailable')
      await expectCode(verifier.verify(await outsider.sign({ aud: 'api' }, { kid: 'made-up' })), 'unknown_kid') // cooling down
      expect(verifier.staleVerifications).toBe(0)
    })

    it('once the endpoint answers again, its fresh set is used (and a new key found); the recovery is logged', async () => {
      const { verifier, log } = await expiredDuringOutage()
      await verifier.verify(await es256.sign({ aud: 'api' }))
      expect(verifier.staleVerifications).toBe(1)
      const fresh = await makeKey('ES256', 'key-recovered')
      jwks.keys = [es256.jwk, fresh.jwk]
      jwks.status = 200
      await sleep(1050) // past the one-second pause after a failed fetch
      await verifier.verify(await es256.sign({ aud: 'api' })) // the background refetch happens here
      const recovered = await fresh.sign({ aud: 'api', sub: 'user-42' })
      expect(await expectVerified(verifier.verify(recovered), recovered)).toMatchObject({ aud: 'api', sub: 'user-42' })
      await verifier.verify(await es256.sign({ aud: 'api' }))
      expect(verifier.staleVerifications).toBeLessThanOrEqual(2)
      expect(log.lines.map((line) => line.level)).toEqual(['warn', 'info'])
      expect(log.lines[1]!.details).toMatchObject({ staleVerifications: expect.any(Number), outageMs: expect.any(Number) })
    })

    it('past staleIfErrorMs every token is refused, and that is logged at error once', async () => {
      const { verifier, log } = await expiredDuringOutage({ staleIfErrorMs: 400 })
      const token = await es256.sign({ aud: 'api' })
      await expectVerified(verifier.verify(token), token)
      await sleep(500)
      for (let i = 0; i < 3; i++) await expectCode(verifier.verify(token), 'jwks_unavailable')
      await sleep(1050)
      await expectCode(verifier.verify(token), 'jwks_unavailable')
      expect(verifier.staleVerifications).toBe(1)
      expect(log.lines.map((line) => line.level)).toEqual(['warn', 'error'])
      expect(log.lines[1]!.message).toMatch(/longer than staleIfErrorMs: refusing every token/)
    })

    it('staleIfErrorMs 0 refuses as soon as the set expires', async () => {
      const { verifier, log } = await expiredDuringOutage({ staleIfErrorMs: 0 })
      await expectCode(verifier.verify(await es256.sign({ aud: 'api' })), 'jwks_unavailable')
      expect(verifier.staleVerifications).toBe(0)
      expect(log.lines).toEqual([])
    })

    it('by default warns through console.warn, once per outage', async () => {
      jwks.cacheControl = 'public, max-age=1'
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
      try {
        const verifier = createVerifier({ jwksUrl: jwks.url })
        const token = await es256.sign({})
        await verifier.verify(token)
        jwks.status = 503
        await sleep(1100)
        for (let i = 0; i < 5; i++) await verifier.verify(token)
        expect(warn).toHaveBeenCalledTimes(1)
        expect(String(warn.mock.calls[0]![1])).toMatch(/verifying with the last good JWK Set/)
      } finally {
        warn.mockRestore()
      }
    })
  })

  it('parses Cache-Control max-age', () => {
    expect(cacheControlMaxAge('public, max-age=300')).toBe(300)
    expect(cacheControlMaxAge('max-age="60", public')).toBe(60)
    expect(cacheControlMaxAge('no-store')).toBe(0)
    expect(cacheControlMaxAge('public')).toBeNull()
    expect(cacheControlMaxAge(null)).toBeNull()
    expect(cacheControlMaxAge('s-maxage=10')).toBeNull()
  })

  it('refuses bad options with a TypeError', () => {
    const bad: unknown[] = [
      undefined,
      {},
      { jwksUrl: 'not a url' },
      { jwksUrl: 'ftp://example.com/jwks.json' },
      { jwksUrl: 'https://user:secret@example.com/jwks.json' },
      { jwksUrl: jwks.url, algorithms: [] },
      { jwksUrl: jwks.url, algorithms: ['HS256'] },
      { jwksUrl: jwks.url, algorithms: ['none'] },
      { jwksUrl: jwks.url, algorithms: 'ES256' },
      { jwksUrl: jwks.url, issuer: '' },
      { jwksUrl: jwks.url, audience: [] },
      { jwksUrl: jwks.url, clockTolerance: -1 },
      { jwksUrl: jwks.url, cooldown: -5 },
      { jwksUrl: jwks.url, cacheMaxAge: 1.5 },
      { jwksUrl: jwks.url, staleIfErrorMs: -1 },
      { jwksUrl: jwks.url, logger: {} },
      { jwksUrl: jwks.url, logger: 'console' },
    ]
    for (const options of bad) expect(() => createVerifier(options as never), JSON.stringify(options)).toThrow(TypeError)
  })
})
