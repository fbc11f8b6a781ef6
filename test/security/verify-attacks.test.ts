import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, calculateJwkThumbprint } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { open as openEnvelope } from '../../src/crypto/envelope.js'
import { keyObjectTbsSigner, selfSignedCertificate } from '../../src/crypto/x509.js'
import { verifyToken } from '../../src/signing/verify.js'
import { MAX_TOKEN_BYTES } from '../../src/signing/token-limit.js'
import { createHarness, type Harness } from '../helpers/harness.js'
import { b64url, expectProblem } from './helpers.js'

/**
 * The known attacks on JWT verification, each tried for real against /v1/verify.
 * Where a forged token needs a valid signature to prove that the refusal has the
 * stated reason (crit, size, kid), it is signed with the service's own private key,
 * read from storage with the master key: the test is white-box, the attack is not.
 */

/** Orders of the NIST curves (SEC 2), for CVE-2022-21449 style signatures. */
const CURVE_ORDERS = {
  ES256: { n: 'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', size: 32 },
  ES384: { n: 'ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973', size: 48 },
  ES512: {
    n: '01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409',
    size: 66,
  },
} as const
type EcAlg = keyof typeof CURVE_ORDERS

const HASH: Record<string, string | null> = { ES256: 'sha256', ES384: 'sha384', ES512: 'sha512', RS256: 'sha256', EdDSA: null }

/** A compact JWS over any header, signed with `key` as `alg` says (raw R||S for ECDSA). */
function forge(header: Record<string, unknown>, payload: Record<string, unknown> | string, key: KeyObject, alg: string): string {
  const input = `${b64url(header)}.${b64url(payload)}`
  const signature = cryptoSign(HASH[alg] ?? null, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
  return `${input}.${signature.toString('base64url')}`
}

/** Raw R||S as an ASN.1 DER SEQUENCE of two INTEGERs (what OpenSSL emits by default). */
function rawToDer(raw: Buffer): Buffer {
  const half = raw.length / 2
  const integer = (bytes: Buffer) => {
    let value = bytes
    while (value.length > 1 && value[0] === 0 && value[1]! < 0x80) value = value.subarray(1)
    if (value[0]! >= 0x80) value = Buffer.concat([Buffer.from([0]), value])
    return Buffer.concat([Buffer.from([0x02, value.length]), value])
  }
  const body = Buffer.concat([integer(raw.subarray(0, half)), integer(raw.subarray(half))])
  const length = body.length < 0x80 ? Buffer.from([body.length]) : Buffer.from([0x81, body.length])
  return Buffer.concat([Buffer.from([0x30]), length, body])
}

/** The SPKI PEM of a published public JWK: what a verifier would load as the key. */
function publicPem(jwk: Record<string, string>): string {
  const { kty, n, e, crv, x, y } = jwk
  const members = Object.fromEntries(Object.entries({ kty, n, e, crv, x, y }).filter(([, value]) => value !== undefined))
  return createPublicKey({ key: members as never, format: 'jwk' }).export({ format: 'pem', type: 'spki' }).toString()
}

/** Every capitalisation of "none". */
const NONE_SPELLINGS = Array.from({ length: 16 }, (_, mask) => [...'none'].map((c, i) => (mask & (1 << i) ? c.toUpperCase() : c)).join(''))

describe('attacks on /v1/verify', () => {
  let h: Harness
  let client: string
  let canary: Server
  let canaryUrl: string
  let canaryHits = 0
  const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  let attackerJwk: Record<string, unknown>
  let attackerKid: string

  beforeAll(async () => {
    h = await createHarness()
    for (const [name, alg] of [['rsa', 'RS256'], ['p384', 'ES384'], ['p521', 'ES512'], ['other', 'ES256'], ['revocable', 'ES256']]) {
      await h.createKeyset({ name, alg })
    }
    client = (await h.createClient({ scopes: ['sign', 'verify'] })).token
    attackerJwk = { ...(await exportJWK(attacker.publicKey)), alg: 'ES256', use: 'sig' }
    attackerKid = await calculateJwkThumbprint(attackerJwk as never)
    const certificate = await selfSignedCertificate({
      alg: 'ES256', sign: keyObjectTbsSigner(attacker.privateKey), publicKey: attacker.publicKey,
      commonName: 'attacker', notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000),
    })
    // The canary answers like a real key server would, so a verifier that fetched would succeed.
    canary = createServer((request, response) => {
      canaryHits++
      if (request.url?.startsWith('/jwks')) response.setHeader('content-type', 'application/json').end(JSON.stringify({ keys: [{ ...attackerJwk, kid: attackerKid }] }))
      else response.setHeader('content-type', 'application/pem-certificate-chain').end(`-----BEGIN CERTIFICATE-----\n${certificate.toString('base64')}\n-----END CERTIFICATE-----\n`)
    })
    await new Promise<void>((resolve) => canary.listen(0, '127.0.0.1', resolve))
    canaryUrl = `http://127.0.0.1:${(canary.address() as AddressInfo).port}`
  })

  afterAll(async () => {
    await new Promise((resolve) => canary.close(resolve))
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  const sign = async (body: Record<string, unknown>) => {
    const response = await h.request('POST', '/v1/sign', { token: client, body })
    expect(response.statusCode, response.body).toBe(200)
    return response.json() as { token: string; kid: string; exp: number; iat: number }
  }
  const verify = async (token: string, keyset?: string) => {
    const response = await h.request('POST', '/v1/verify', { token: client, body: { token, ...(keyset ? { keyset } : {}) } })
    expect(response.statusCode, response.body).toBe(200)
    return response.json() as { valid: boolean; code?: string }
  }
  const refused = async (token: string, keyset?: string) => {
    const result = await verify(token, keyset)
    expect(result.valid, `accepted: ${token.slice(0, 120)}`).toBe(false)
    return result.code
  }
  /** The private key of a published service key, opened with the master key. */
  const servicePrivateKey = async (kid: string): Promise<KeyObject> => {
    const record = (await h.signet.storage.snapshot()).keys.find((key) => key.kid === kid)!
    const der = openEnvelope(h.config.masterKey!, record.privateKey!, { kid, keyset: record.keyset, alg: record.alg })
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
  }
  const publishedJwk = async (keyset: string) => (await h.request('GET', `/keysets/${keyset}/jwks.json`)).json().keys[0] as Record<string, string>
  const claims = () => ({ sub: 'mallory', exp: Math.floor(h.clock.now() / 1000) + 300 })

  it('a control: a token forged with the service key verifies, so each refusal below has the stated cause', async () => {
    const { kid } = await sign({ claims: {} })
    const token = forge({ alg: 'ES256', kid, typ: 'JWT' }, claims(), await servicePrivateKey(kid), 'ES256')
    expect(await verify(token)).toMatchObject({ valid: true })
  })

  it('refuses alg none in all 16 capitalisations, with and without kid or signature', async () => {
    for (const keyset of ['default', 'rsa']) {
      const signed = await sign({ keyset, claims: { sub: 'u' } })
      const payload = signed.token.split('.')[1]
      for (const alg of NONE_SPELLINGS) {
        for (const header of [{ alg, kid: signed.kid }, { alg }, { alg, kid: signed.kid, typ: 'JWT' }]) {
          for (const signature of ['', signed.token.split('.')[2]]) {
            await refused(`${b64url(header)}.${payload}.${signature}`, keyset)
          }
        }
      }
    }
  })

  it('refuses HS256/384/512 keyed with the public key as PEM, as JWK JSON and as the raw modulus', async () => {
    const { kid } = await sign({ keyset: 'rsa', claims: {} })
    const jwk = await publishedJwk('rsa')
    const servedJwks = (await h.request('GET', '/keysets/rsa/jwks.json')).body
    const pem = publicPem(jwk)
    const secrets: [string, Buffer | string][] = [
      ['PEM', pem],
      ['PEM without the final newline', pem.trimEnd()],
      ['JWK JSON as served', JSON.stringify(jwk)],
      ['the JWK Set as served', servedJwks],
      ['raw modulus bytes', Buffer.from(jwk.n!, 'base64url')],
      ['modulus in base64url', jwk.n!],
    ]
    for (const [label, secret] of secrets) {
      for (const [alg, hash] of [['HS256', 'sha256'], ['HS384', 'sha384'], ['HS512', 'sha512']] as const) {
        for (const header of [{ alg, kid }, { alg }]) {
          const input = `${b64url(header)}.${b64url(claims())}`
          const token = `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`
          expect(await refused(token, 'rsa'), `${alg} with ${label}`).toBe('alg_not_allowed')
        }
      }
    }
    // The same against an EC keyset, keyed with its PEM and JWK.
    const ecJwk = await publishedJwk('default')
    for (const secret of [publicPem(ecJwk), JSON.stringify(ecJwk)]) {
      const input = `${b64url({ alg: 'HS256', kid: ecJwk.kid })}.${b64url(claims())}`
      expect(await refused(`${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`)).toBe('alg_not_allowed')
    }
  })

  it('ignores an embedded jwk header: a token signed by the attacker key it names is refused', async () => {
    const { kid } = await sign({ claims: {} })
    const jwk = { ...attackerJwk, kid: attackerKid }
    expect(await refused(forge({ alg: 'ES256', jwk }, claims(), attacker.privateKey, 'ES256'))).toBe('invalid_signature')
    expect(await refused(forge({ alg: 'ES256', kid: attackerKid, jwk }, claims(), attacker.privateKey, 'ES256'))).toBe('unknown_kid')
    expect(await refused(forge({ alg: 'ES256', kid, jwk }, claims(), attacker.privateKey, 'ES256'))).toBe('invalid_signature')
  })

  it('never fetches jku or x5u: tokens pointing at a canary server are refused and the canary sees no request', async () => {
    const { kid } = await sign({ claims: {} })
    const jku = `${canaryUrl}/jwks.json`
    const x5u = `${canaryUrl}/cert.pem`
    const headers = [
      { alg: 'ES256', jku },
      { alg: 'ES256', kid: attackerKid, jku },
      { alg: 'ES256', kid, jku },
      { alg: 'ES256', x5u },
      { alg: 'ES256', kid: attackerKid, x5u },
      { alg: 'ES256', kid, x5u, jku },
    ]
    for (const header of headers) await refused(forge(header, claims(), attacker.privateKey, 'ES256'))
    // A fetch, if any, would be asynchronous: give it time to arrive.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(canaryHits).toBe(0)
    // The canary does count: one request of our own is seen.
    await fetch(jku)
    expect(canaryHits).toBe(1)
    canaryHits = 0
  })

  it('refuses ECDSA signatures of zeros and with r or s equal to the curve order (CVE-2022-21449), on P-256, P-384 and P-521', async () => {
    for (const [keyset, alg] of [['default', 'ES256'], ['p384', 'ES384'], ['p521', 'ES512']] as [string, EcAlg][]) {
      const signed = await sign({ keyset, claims: { sub: 'u' } })
      const [header, payload, signature] = signed.token.split('.') as [string, string, string]
      const { n, size } = CURVE_ORDERS[alg]
      const order = Buffer.from(n, 'hex')
      expect(order.length).toBe(size)
      const raw = Buffer.from(signature, 'base64url')
      expect(raw.length).toBe(2 * size)
      const [r, s] = [raw.subarray(0, size), raw.subarray(size)]
      const zero = Buffer.alloc(size)
      const one = Buffer.concat([Buffer.alloc(size - 1), Buffer.from([1])])
      const forgeries: [string, Buffer][] = [
        ['all zeros', Buffer.alloc(2 * size)],
        ['r = s = n', Buffer.concat([order, order])],
        ['r = n, s = 1', Buffer.concat([order, one])],
        ['r = 0, s = n', Buffer.concat([zero, order])],
        ['r = n, real s', Buffer.concat([order, s])],
        ['real r, s = n', Buffer.concat([r, order])],
        ['real r, s = 0', Buffer.concat([r, zero])],
      ]
      for (const [label, forged] of forgeries) {
        expect(await refused(`${header}.${payload}.${forged.toString('base64url')}`, keyset), `${alg} ${label}`).toBe('invalid_signature')
      }
      // The untouched token verifies: the forgeries fail for their signatures alone.
      expect(await verify(signed.token, keyset)).toMatchObject({ valid: true })
    }
  })

  it('refuses a DER-encoded ECDSA signature, even of the right bytes', async () => {
    for (const keyset of ['default', 'p384', 'p521']) {
      const signed = await sign({ keyset, claims: {} })
      const [header, payload, signature] = signed.token.split('.') as [string, string, string]
      const der = rawToDer(Buffer.from(signature, 'base64url'))
      expect(der[0]).toBe(0x30)
      expect((await verify(`${header}.${payload}.${der.toString('base64url')}`, keyset)).valid).toBe(false)
    }
  })

  it('refuses an unknown crit header on a token the service key really signed', async () => {
    const { kid } = await sign({ claims: {} })
    const key = await servicePrivateKey(kid)
    const critical = [
      { alg: 'ES256', kid, crit: ['x-unknown'], 'x-unknown': true },
      { alg: 'ES256', kid, crit: ['exp'], exp: 1 },
    ]
    for (const header of critical) expect(await refused(forge(header, claims(), key, 'ES256'))).toBe('unsupported_crit')
    const malformed = [
      { alg: 'ES256', kid, crit: [] },
      { alg: 'ES256', kid, crit: 'x-unknown', 'x-unknown': 1 },
      { alg: 'ES256', kid, crit: ['b64'], b64: false },
    ]
    for (const header of malformed) await refused(forge(header, claims(), key, 'ES256'))
  })

  it('refuses tokens over 32 KiB, and dot floods, without parsing them', async () => {
    const { kid } = await sign({ claims: {} })
    const key = await servicePrivateKey(kid)
    // Validly signed, 20 bytes under and over the limit.
    const fitting = (bytes: number) => {
      const base = forge({ alg: 'ES256', kid }, { ...claims(), pad: '' }, key, 'ES256').length
      return forge({ alg: 'ES256', kid }, { ...claims(), pad: 'x'.repeat(Math.floor(((bytes - base) * 3) / 4)) }, key, 'ES256')
    }
    const under = fitting(MAX_TOKEN_BYTES - 20)
    const over = fitting(MAX_TOKEN_BYTES + 20)
    expect(under.length).toBeLessThanOrEqual(MAX_TOKEN_BYTES)
    expect(over.length).toBeGreaterThan(MAX_TOKEN_BYTES)
    expect(await verify(under)).toMatchObject({ valid: true })
    expect(await refused(over)).toBe('token_too_large')

    // 60,000 dots fit the 64 KiB body limit and are refused by size before any split.
    expect(await refused('.'.repeat(60_000))).toBe('token_too_large')
    // 30,000 dots are under the size limit and are refused on the (empty) header.
    expect(await refused('.'.repeat(30_000))).toBe('malformed')
    expect(await refused(`${b64url({ alg: 'ES256', kid })}${'.'.repeat(30_000)}`)).toBe('malformed')
    // 100,000 dots exceed the request body limit: refused before the body is read in full.
    const flood = await h.request('POST', '/v1/verify', { token: client, body: { token: '.'.repeat(100_000) } })
    expectProblem(flood, 413, 'payload_too_large')
    // The verifier itself, given the same token directly, refuses it on its length alone.
    const live = h.signet.keystore.keyset('default')!
    expect(await verifyToken(live, '.'.repeat(100_000), { now: h.clock.now() })).toMatchObject({ valid: false, code: 'token_too_large' })
    expect(await verifyToken(live, `a${'.a'.repeat(50_000)}`, { now: h.clock.now() })).toMatchObject({ valid: false, code: 'token_too_large' })
  })

  it('refuses a kid the keyset does not publish, and a valid token of another keyset', async () => {
    const { kid } = await sign({ claims: {} })
    const key = await servicePrivateKey(kid)
    for (const badKid of ['not-a-kid', attackerKid, '', 42, null, { kid }, [kid], `${kid} `, `../${kid}`]) {
      expect(await refused(forge({ alg: 'ES256', kid: badKid }, claims(), key, 'ES256'))).toBe('unknown_kid')
    }
    // Another ES256 keyset's token: its kid is not published by default, and without
    // a kid its signature matches no key of default.
    const other = await sign({ keyset: 'other', claims: {} })
    expect(await verify(other.token, 'other')).toMatchObject({ valid: true })
    expect(await refused(other.token)).toBe('unknown_kid')
    const otherKey = await servicePrivateKey(other.kid)
    expect(await refused(forge({ alg: 'ES256' }, claims(), otherKey, 'ES256'))).toBe('invalid_signature')
    // Other algorithms: an RSA token, and a P-384 token, against an ES256 keyset.
    expect(await refused((await sign({ keyset: 'rsa', claims: {} })).token)).toBe('unknown_kid')
    expect(await refused(forge({ alg: 'ES384' }, claims(), await servicePrivateKey((await sign({ keyset: 'p384', claims: {} })).kid), 'ES384'))).toBe('alg_not_allowed')
  })

  it('refuses algorithm swaps on a published kid (ES256 key as ES384, RS256 key as PS256)', async () => {
    const ec = await sign({ claims: {} })
    const [, payload, signature] = ec.token.split('.')
    expect(await refused(`${b64url({ alg: 'ES384', kid: ec.kid })}.${payload}.${signature}`)).toBe('alg_not_allowed')
    const rsa = await sign({ keyset: 'rsa', claims: {} })
    const [, rsaPayload, rsaSignature] = rsa.token.split('.')
    expect(await refused(`${b64url({ alg: 'PS256', kid: rsa.kid })}.${rsaPayload}.${rsaSignature}`, 'rsa')).toBe('alg_not_allowed')
  })

  it('refuses an expired token, one not valid yet, and a token of a revoked key', async () => {
    const expiring = await sign({ keyset: 'revocable', claims: {}, ttl: 60 })
    const later = await sign({ keyset: 'revocable', claims: { nbf: Math.floor(h.clock.now() / 1000) + 600 } })
    const revocable = await sign({ keyset: 'revocable', claims: {} })
    expect(await verify(revocable.token, 'revocable')).toMatchObject({ valid: true })
    expect(await refused(later.token, 'revocable')).toBe('not_yet_valid')
    h.clock.advance(61_000)
    expect(await refused(expiring.token, 'revocable')).toBe('expired')
    expect((await h.admin('POST', `/v1/admin/keys/${revocable.kid}/revoke`, { reason: 'compromised' })).statusCode).toBe(200)
    expect(await refused(revocable.token, 'revocable')).toBe('unknown_kid')
    // A token forged with the revoked key's material would fail the same way; the
    // material itself is gone from storage.
    const record = (await h.signet.storage.snapshot()).keys.find((key) => key.kid === revocable.kid)!
    expect(record.state).toBe('revoked')
    expect(record.privateKey).toBeNull()
  })
})
