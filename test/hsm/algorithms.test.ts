import { X509Certificate, createPublicKey, verify as cryptoVerify, constants } from 'node:crypto'
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { calculateJwkThumbprint, type JWK } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ALGORITHMS, algSpec, hashLength, type Alg } from '../../src/crypto/algorithms.js'
import { createHarness, type Harness } from '../helpers/harness.js'
import { decodeToken, verifiesWith } from '../helpers/tokens.js'
import { HSM_SKIP, inspectToken, setupSoftHsm, type SoftHsm } from './softhsm.js'

/** Expected JWS signature length per alg, for 2048-bit RSA. */
const SIGNATURE_BYTES: Record<Alg, number> = {
  RS256: 256, RS384: 256, RS512: 256, PS256: 256, PS384: 256, PS512: 256,
  ES256: 64, ES384: 96, ES512: 132, EdDSA: 64,
}

const keysetOf = (alg: Alg) => `hsm-${alg.toLowerCase()}`

if (HSM_SKIP) {
  describe('pkcs11 backend on SoftHSM2: every algorithm', () => {
    it.skip(HSM_SKIP, () => {})
  })
} else {
  describe('pkcs11 backend on SoftHSM2: every algorithm', () => {
    let softhsm: SoftHsm
    let token: ReturnType<SoftHsm['initToken']>
    let h: Harness
    let client: string
    const signed = new Map<Alg, { token: string; kid: string }>()

    beforeAll(async () => {
      softhsm = setupSoftHsm()
      token = softhsm.initToken('signet-algs')
      h = await createHarness({ env: token.env })
      h.watch.secret('the PKCS#11 PIN', token.pin)
      client = (await h.createClient({ scopes: ['sign', 'verify'] })).token
    })

    afterAll(async () => {
      await h?.close()
      softhsm?.remove()
    })

    // SoftHSM 2.6 (OpenSSL 3) offers every alg Signet signs, EdDSA included.
    it.each([...ALGORITHMS])('%s: tokens verify with jose against the served JWKS, with the right signature length and format', async (alg) => {
      const created = await h.admin('POST', '/v1/admin/keysets', { name: keysetOf(alg), alg, backend: 'pkcs11', x5c: true })
      expect(created.statusCode, created.body).toBe(201)
      expect(created.json()).toMatchObject({ backend: 'pkcs11', alg })

      const response = await h.request('POST', '/v1/sign', { token: client, body: { keyset: keysetOf(alg), claims: { sub: 'hsm-user' } } })
      expect(response.statusCode, response.body).toBe(200)
      const answer = response.json()
      signed.set(alg, { token: answer.token, kid: answer.kid })
      const jwks = (await h.request('GET', `/keysets/${keysetOf(alg)}/jwks.json`)).json()
      expect(await verifiesWith(answer.token, jwks, h.clock.now(), [alg])).toBe(true)

      const { header, signature } = decodeToken(answer.token)
      expect(header).toMatchObject({ alg, kid: answer.kid })
      expect(signature.length).toBe(SIGNATURE_BYTES[alg])
      const jwk = jwks.keys.find((k: { kid: string }) => k.kid === answer.kid)
      expect(jwk).toBeDefined()
      // The kid is the RFC 7638 thumbprint of the published key.
      const { x5c: _x5c, 'x5t#S256': _x5t, kid: _kid, use: _use, alg: _alg, ...members } = jwk
      expect(answer.kid).toBe(await calculateJwkThumbprint(members as JWK, 'sha256'))

      // The signature is raw JWS form: ECDSA R||S (IEEE P1363), verified by node:crypto with that encoding.
      const spec = algSpec(alg)
      const [h64, p64] = answer.token.split('.')
      const publicKey = createPublicKey({ key: members as never, format: 'jwk' })
      const options = spec.kty === 'EC'
        ? { key: publicKey, dsaEncoding: 'ieee-p1363' as const }
        : spec.pss
          ? { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hashLength(spec.hash!) }
          : { key: publicKey }
      expect(cryptoVerify(spec.hash, Buffer.from(`${h64}.${p64}`), options, signature)).toBe(true)
      if (spec.pss) {
        // PSS with the salt as long as the hash (RFC 7518 section 3.5): a verifier that insists on it agrees.
        expect(cryptoVerify(spec.hash, Buffer.from(`${h64}.${p64}`), { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hashLength(spec.hash!) + 1 }, signature)).toBe(false)
      }

      // The self-signed certificate (x5c) was signed inside the token and holds the same key.
      const certificate = new X509Certificate(Buffer.from(jwk.x5c[0], 'base64'))
      expect(certificate.verify(certificate.publicKey)).toBe(true)
      expect(certificate.publicKey.export({ format: 'jwk' })).toMatchObject(members)

      // /v1/verify accepts it too.
      const verified = await h.request('POST', '/v1/verify', { token: client, body: { token: answer.token, keyset: keysetOf(alg) } })
      expect(verified.json().valid).toBe(true)
    })

    it('signs many requests at once through the small session pool', async () => {
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) =>
        h.request('POST', '/v1/sign', { token: client, body: { keyset: keysetOf(i % 2 ? 'ES256' : 'PS256'), claims: { n: i } } })))
      const jwks = {
        ES256: (await h.request('GET', `/keysets/${keysetOf('ES256')}/jwks.json`)).json(),
        PS256: (await h.request('GET', `/keysets/${keysetOf('PS256')}/jwks.json`)).json(),
      }
      for (const [i, response] of results.entries()) {
        expect(response.statusCode).toBe(200)
        expect(await verifiesWith(response.json().token, jwks[i % 2 ? 'ES256' : 'PS256'], h.clock.now())).toBe(true)
      }
    })

    it('reading the token shows every private key sensitive and never extractable, tied to its kid', async () => {
      const objects = inspectToken(softhsm.module, token.label, token.pin)
      const privateKeys = objects.filter((object) => object.class === 'private')
      expect(privateKeys).toHaveLength(ALGORITHMS.length)
      for (const object of privateKeys) {
        expect(object).toMatchObject({ sensitive: true, extractable: false, alwaysSensitive: true, neverExtractable: true, sign: true })
        // Asking the token for the private value itself is refused.
        expect(object.privateValueRead).toBe('CKR_ATTRIBUTE_SENSITIVE')
      }
      for (const [alg, { kid }] of signed) {
        const id = Buffer.from(kid, 'base64url').toString('hex')
        const pair = objects.filter((object) => object.id === id)
        expect(pair.map((object) => object.class).sort(), alg).toEqual(['private', 'public'])
        for (const object of pair) expect(object.label).toBe(`signet:${keysetOf(alg)}:${kid}`)
      }
    })

    it("Signet's database holds no private material for these keys, even encrypted", async () => {
      const db = new Database(join(h.dir, 'signet.db'), { readonly: true })
      try {
        const rows = db.prepare('SELECT k.kid, k.private_key, k.hsm_id FROM keys k JOIN keysets s ON s.name = k.keyset WHERE s.backend = ?').all('pkcs11') as { kid: string; private_key: Buffer | null; hsm_id: string | null }[]
        expect(rows).toHaveLength(ALGORITHMS.length)
        for (const row of rows) {
          expect(row.private_key).toBeNull()
          expect(row.hsm_id).toBe(Buffer.from(row.kid, 'base64url').toString('hex'))
        }
        // The software default keyset, for contrast, stores its key encrypted.
        const software = db.prepare("SELECT private_key FROM keys WHERE keyset = 'default'").get() as { private_key: Buffer | null }
        expect(software.private_key).not.toBeNull()
      } finally {
        db.close()
      }
    })

    it('refuses to import a key into a pkcs11 keyset (400), changing nothing', async () => {
      const { generateKeyPairSync } = await import('node:crypto')
      const pem = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string
      const before = (await h.admin('GET', `/v1/admin/keysets/${keysetOf('ES256')}/keys`)).json().keys
      const response = await h.admin('POST', `/v1/admin/keysets/${keysetOf('ES256')}/import`, { pem })
      expect(response.statusCode).toBe(400)
      expect(response.json()).toMatchObject({ code: 'invalid_request' })
      expect(response.json().detail).toMatch(/inside an HSM/)
      expect((await h.admin('GET', `/v1/admin/keysets/${keysetOf('ES256')}/keys`)).json().keys).toEqual(before)
    })

    it('/readyz is ready and no answer or log line holds the PIN or a private key', async () => {
      const ready = await h.request('GET', '/readyz')
      expect(ready.statusCode, ready.body).toBe(200)
      await h.watchPrivateKeys()
      h.watch.assertClean()
    })
  })
}
