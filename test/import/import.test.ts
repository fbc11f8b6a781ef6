import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { calculateJwkThumbprint, type JWK } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness } from '../helpers/harness.js'
import { decodeToken, verifiesWith } from '../helpers/tokens.js'
import { Material } from './fixtures.js'

/** The RFC 7638 thumbprint of a key's public half, computed apart from Signet. */
async function thumbprintOf(key: KeyObject): Promise<string> {
  return calculateJwkThumbprint(createPublicKey(key).export({ format: 'jwk' }) as JWK, 'sha256')
}

describe('bring your own key: POST /v1/admin/keysets/{name}/import', () => {
  let h: Harness
  let material: Material
  let signToken: string

  const importInto = (keyset: string, body: unknown) => h.admin('POST', `/v1/admin/keysets/${keyset}/import`, body)
  const jwks = async (keyset: string) => (await h.request('GET', `/keysets/${keyset}/jwks.json`)).json()
  const keysOf = async (keyset: string) => (await h.admin('GET', `/v1/admin/keysets/${keyset}/keys`)).json().keys as { kid: string; state: string }[]
  const auditCount = async () => (await h.admin('GET', '/v1/admin/audit?limit=1000')).json().events.length as number

  /** Imports with activate: immediate, then signs and verifies against the served JWK Set. */
  async function importAndSign(keyset: string, key: KeyObject, body: Record<string, unknown>) {
    const response = await importInto(keyset, { ...body, activate: 'immediate' })
    expect(response.statusCode, response.body).toBe(201)
    const imported = response.json()
    expect(imported.kid).toBe(await thumbprintOf(key))
    expect(imported.state).toBe('active')
    expect(imported.jwk).not.toHaveProperty('d')
    const signed = await h.request('POST', '/v1/sign', { token: signToken, body: { keyset, claims: { sub: 'imported' } } })
    expect(signed.statusCode, signed.body).toBe(200)
    expect(signed.json().kid).toBe(imported.kid)
    expect(decodeToken(signed.json().token).header.kid).toBe(imported.kid)
    expect(await verifiesWith(signed.json().token, await jwks(keyset), h.clock.now())).toBe(true)
    // The token verifies with the imported key's own public half, too.
    const own = { keys: [{ ...(createPublicKey(key).export({ format: 'jwk' }) as JWK), kid: imported.kid, alg: imported.alg }] }
    expect(await verifiesWith(signed.json().token, own, h.clock.now())).toBe(true)
    return imported
  }

  beforeAll(async () => {
    h = await createHarness()
    material = new Material(h.watch)
    await h.createKeyset({ name: 'rs', alg: 'RS256' })
    await h.createKeyset({ name: 'ps', alg: 'PS384' })
    await h.createKeyset({ name: 'es256', alg: 'ES256' })
    await h.createKeyset({ name: 'es384', alg: 'ES384' })
    await h.createKeyset({ name: 'es512', alg: 'ES512' })
    await h.createKeyset({ name: 'ed', alg: 'EdDSA' })
    signToken = (await h.createClient({ scopes: ['sign'] })).token
  })

  afterAll(async () => {
    await h.close()
  })

  describe('each accepted format yields a working key whose kid is its thumbprint', () => {
    it('a PKCS#8 PEM (RSA)', async () => {
      const key = material.rsa()
      await importAndSign('rs', key, { pem: material.pem(key, 'pkcs8') })
    })

    it('a PKCS#1 PEM (RSA), signing PS384', async () => {
      const key = material.rsa(3072)
      const imported = await importAndSign('ps', key, { pem: material.pem(key, 'pkcs1') })
      expect(imported.alg).toBe('PS384')
    })

    it('a SEC1 PEM (EC P-256), with EC PARAMETERS before it as openssl ecparam writes', async () => {
      const key = material.ec('prime256v1')
      const pem = `-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n${material.pem(key, 'sec1')}`
      await importAndSign('es256', key, { pem })
    })

    it('an encrypted PKCS#8 PEM with its passphrase (EC P-521)', async () => {
      const key = material.ec('secp521r1')
      const passphrase = material.passphrase()
      const pem = material.pem(key, 'pkcs8', passphrase)
      expect(pem).toContain('ENCRYPTED PRIVATE KEY')
      await importAndSign('es512', key, { pem, passphrase })
    })

    it('a legacy encrypted PKCS#1 PEM (Proc-Type: 4,ENCRYPTED) with its passphrase', async () => {
      const key = material.rsa()
      const passphrase = material.passphrase()
      const pem = material.pem(key, 'pkcs1', passphrase)
      expect(pem).toContain('Proc-Type: 4,ENCRYPTED')
      await importAndSign('rs', key, { pem, passphrase })
    })

    it('an Ed25519 PKCS#8 PEM', async () => {
      const key = material.ed25519()
      await importAndSign('ed', key, { pem: material.pem(key, 'pkcs8') })
    })

    it('a PKCS#12 file made with node-forge, with its password (AES-256, and legacy 3DES)', async () => {
      const key = material.rsa()
      const password = material.passphrase()
      await importAndSign('rs', key, { pkcs12: material.pkcs12Rsa(key, password), password })
      const legacy = material.rsa()
      await importAndSign('rs', legacy, { pkcs12: material.pkcs12Rsa(legacy, password, '3des'), password })
    })

    it('a PKCS#12 file as OpenSSL 3 writes it (PBES2, AES-256, SHA-256 MAC), around an EC and an Ed25519 key', async (context) => {
      const key = material.ec('secp384r1')
      const password = material.passphrase()
      const pkcs12 = material.pkcs12WithOpenssl(key, password)
      if (pkcs12 === null) {
        context.skip('the openssl command is missing: cannot make an OpenSSL PKCS#12 file')
        return
      }
      await importAndSign('es384', key, { pkcs12, password })
      const ed = material.ed25519()
      await importAndSign('ed', ed, { pkcs12: material.pkcs12WithOpenssl(ed, password)!, password })
    })

    it('a private JWK (EC P-384), whose own kid and alg Signet replaces or checks', async () => {
      const key = material.ec('secp384r1')
      const jwk = { ...material.privateJwk(key), kid: 'my-own-kid', alg: 'ES384', use: 'sig' }
      const imported = await importAndSign('es384', key, { jwk })
      expect(imported.kid).not.toBe('my-own-kid')
    })

    it('a private JWK (RSA) and (Ed25519)', async () => {
      const rsa = material.rsa()
      await importAndSign('rs', rsa, { jwk: material.privateJwk(rsa) })
      const ed = material.ed25519()
      await importAndSign('ed', ed, { jwk: material.privateJwk(ed) })
    })
  })

  it('imports as pending by default: published at once, signing only after prepublish', async () => {
    const key = material.ec('prime256v1')
    const activeBefore = (await keysOf('es256')).find((k) => k.state === 'active')!.kid
    const response = await importInto('es256', { pem: material.pem(key, 'pkcs8') })
    expect(response.statusCode, response.body).toBe(201)
    const imported = response.json()
    expect(imported.state).toBe('pending')
    expect(Date.parse(imported.activatesAt) - h.clock.now()).toBe(3600 * 1000)
    expect((await jwks('es256')).keys.map((k: { kid: string }) => k.kid)).toContain(imported.kid)
    const signed = await h.request('POST', '/v1/sign', { token: signToken, body: { keyset: 'es256', claims: {} } })
    expect(signed.json().kid).toBe(activeBefore)

    h.clock.advance(3600 * 1000)
    await h.signet.tick()
    const later = await h.request('POST', '/v1/sign', { token: signToken, body: { keyset: 'es256', claims: {} } })
    expect(later.json().kid).toBe(imported.kid)
    expect(await verifiesWith(later.json().token, await jwks('es256'), h.clock.now())).toBe(true)
  })

  it('audits the import without any of the material', async () => {
    const events = (await h.admin('GET', '/v1/admin/audit?limit=1000')).json().events as { action: string; details: Record<string, unknown> }[]
    const imports = events.filter((event) => event.action === 'key.import')
    expect(imports.length).toBeGreaterThanOrEqual(10)
    for (const event of imports) expect(Object.keys(event.details).sort()).toEqual(['alg', 'keyset', 'mode'])
  })

  describe('refusals: a clear 4xx that changes nothing', () => {
    async function refused(keyset: string, body: unknown, status: number, code: string, detail: RegExp) {
      const keysBefore = await keysOf(keyset)
      const auditBefore = await auditCount()
      const response = await importInto(keyset, body)
      expect(response.statusCode, response.body).toBe(status)
      expect(response.headers['content-type']).toContain('application/problem+json')
      expect(response.json().code).toBe(code)
      expect(response.json().detail).toMatch(detail)
      expect(await keysOf(keyset)).toEqual(keysBefore)
      expect(await auditCount()).toBe(auditBefore)
      return response.json()
    }

    it('a 1024-bit RSA key', async () => {
      const weak = material.privateKey('an RSA-1024 key', generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey)
      await refused('rs', { pem: material.pem(weak, 'pkcs8') }, 400, 'invalid_request', /1024-bit RSA key .*at least 2048 bits/)
      await refused('rs', { jwk: material.privateJwk(weak) }, 400, 'invalid_request', /at least 2048 bits/)
    })

    it('a P-256 key into an ES384 keyset', async () => {
      const key = material.ec('prime256v1')
      await refused('es384', { pem: material.pem(key, 'sec1') }, 400, 'invalid_request', /P-256 key cannot sign for keyset es384: ES384 needs a P-384 key/)
      await refused('es384', { jwk: material.privateJwk(key) }, 400, 'invalid_request', /needs a P-384 key/)
    })

    it('a key of the wrong type: RSA into ES256, P-256 into RS256, Ed25519 into ES256', async () => {
      await refused('es256', { pem: material.pem(material.rsa(), 'pkcs8') }, 400, 'invalid_request', /ES256 needs a P-256 key/)
      await refused('rs', { pem: material.pem(material.ec('prime256v1'), 'pkcs8') }, 400, 'invalid_request', /RS256 needs an RSA key/)
      await refused('es256', { jwk: material.privateJwk(material.ed25519()) }, 400, 'invalid_request', /needs a P-256 key/)
    })

    it('an RSA-PSS-only key (id-RSASSA-PSS), with advice', async () => {
      const pss = material.privateKey('an RSA-PSS key', generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).privateKey)
      await refused('ps', { pem: material.pem(pss, 'pkcs8') }, 400, 'invalid_request', /plain RSA key/)
    })

    it('a public-only key: a PEM public key, a certificate-only PKCS#12, a JWK without d', async () => {
      const key = material.rsa()
      const publicPem = createPublicKey(key).export({ format: 'pem', type: 'spki' }) as string
      await refused('rs', { pem: publicPem }, 400, 'invalid_request', /only a public key/)
      await refused('rs', { pkcs12: material.pkcs12CertificateOnly(key, 'pw'), password: 'pw' }, 400, 'invalid_request', /only a public key/)
      const publicJwk = createPublicKey(key).export({ format: 'jwk' })
      await refused('rs', { jwk: publicJwk }, 400, 'invalid_request', /only a public key/)
    })

    it('a wrong passphrase, a missing passphrase, a wrong PKCS#12 password', async () => {
      const key = material.ec('prime256v1')
      const passphrase = material.passphrase()
      const pem = material.pem(key, 'pkcs8', passphrase)
      await refused('es256', { pem, passphrase: `${passphrase}x` }, 400, 'invalid_request', /wrong passphrase/)
      await refused('es256', { pem }, 400, 'invalid_request', /encrypted: send its passphrase/)
      const legacy = material.pem(material.rsa(), 'pkcs1', passphrase)
      await refused('rs', { pem: legacy, passphrase: 'not the passphrase' }, 400, 'invalid_request', /wrong passphrase/)
      const rsa = material.rsa()
      const pkcs12 = material.pkcs12Rsa(rsa, passphrase)
      await refused('rs', { pkcs12, password: 'not the password' }, 400, 'invalid_request', /wrong password/)
      await refused('rs', { pkcs12 }, 400, 'invalid_request', /password must be a string/)
    })

    it('a duplicate: the same key again, as PEM or JWK, into the same or another keyset (409)', async () => {
      const key = material.ec('prime256v1')
      const pem = material.pem(key, 'pkcs8')
      expect((await importInto('es256', { pem })).statusCode).toBe(201)
      await refused('es256', { pem }, 409, 'conflict', /exists/)
      await refused('es256', { jwk: material.privateJwk(key), activate: 'immediate' }, 409, 'conflict', /exists/)
      // kids are unique across the service: the default keyset is ES256 too.
      await refused('default', { pem }, 409, 'conflict', /exists/)
    })

    it('a revoked key cannot come back', async () => {
      const key = material.ec('prime256v1')
      const pem = material.pem(key, 'pkcs8')
      const imported = (await importInto('es256', { pem })).json()
      expect((await h.admin('POST', `/v1/admin/keys/${imported.kid}/revoke`, { reason: 'leaked' })).statusCode).toBe(200)
      await refused('es256', { pem }, 409, 'conflict', /exists/)
    })

    it('a JWK whose members do not belong together fails the sign-and-verify check', async () => {
      const one = material.privateJwk(material.ec('prime256v1'))
      const other = material.privateJwk(material.ec('prime256v1'))
      await refused('es256', { jwk: { ...one, d: other.d } }, 400, 'invalid_request', /sign-and-verify check|could not be read/)
    })

    it('malformed input: no material, two kinds, garbage PEM, garbage base64, a symmetric JWK, bad activate', async () => {
      await refused('rs', {}, 400, 'invalid_request', /exactly one of pem, pkcs12 or jwk/)
      await refused('rs', { pem: 'x', jwk: { kty: 'RSA' } }, 400, 'invalid_request', /exactly one/)
      // A PEM frame around garbage (built here, so no key-shaped literal sits in the source).
      const label = ['PRIVATE', 'KEY'].join(' ')
      await refused('rs', { pem: `-----BEGIN ${label}-----\nAAAA\n-----END ${label}-----\n` }, 400, 'invalid_request', /could not be read as a private key/)
      await refused('rs', { pem: 'hello' }, 400, 'invalid_request', /holds no private key in PEM form/)
      await refused('rs', { pkcs12: '%%%', password: '' }, 400, 'invalid_request', /base64/)
      await refused('rs', { pkcs12: 'AAAAAAAA', password: '' }, 400, 'invalid_request', /could not be read as a PKCS#12 file/)
      await refused('rs', { jwk: { kty: 'oct', k: 'c2VjcmV0c2VjcmV0c2VjcmV0' } }, 400, 'invalid_request', /symmetric/)
      await refused('rs', { jwk: { kty: 'RSA', d: 'AAAA', n: 'AAAA', e: 'AQAB' } }, 400, 'invalid_request', /could not be read as a private key/)
      await refused('rs', { jwk: 'not an object' }, 400, 'invalid_request', /jwk/)
      const key = material.rsa()
      await refused('rs', { jwk: { ...material.privateJwk(key), use: 'enc' } }, 400, 'invalid_request', /use other than sig/)
      await refused('rs', { pem: material.pem(key, 'pkcs8'), activate: 'now' }, 400, 'invalid_request', /activate/)
      await refused('rs', { pem: material.pem(key, 'pkcs8'), extra: true }, 400, 'invalid_request', /additional/)
    })

    it('an unknown keyset is 404, and a caller without admin scope is 401/403', async () => {
      const pem = material.pem(material.ec('prime256v1'), 'pkcs8')
      const missing = await importInto('nope', { pem })
      expect(missing.statusCode).toBe(404)
      expect(missing.json().code).toBe('keyset_not_found')
      const anonymous = await h.request('POST', '/v1/admin/keysets/es256/import', { body: { pem } })
      expect(anonymous.statusCode).toBe(401)
      const signer = await h.request('POST', '/v1/admin/keysets/es256/import', { token: signToken, body: { pem } })
      expect(signer.statusCode).toBe(403)
    })
  })

  it('stores imported keys only encrypted: the database file holds no private scalar', async () => {
    const key = material.ec('prime256v1')
    const imported = (await importInto('es256', { pem: material.pem(key, 'pkcs8') })).json()
    const snapshot = await h.signet.storage.snapshot()
    const row = snapshot.keys.find((k) => k.kid === imported.kid)!
    expect(row.privateKey).not.toBeNull()
    const d = Buffer.from((key.export({ format: 'jwk' }) as { d: string }).d, 'base64url')
    const der = key.export({ format: 'der', type: 'pkcs8' })
    expect(row.privateKey!.includes(d)).toBe(false)
    for (const file of ['signet.db', 'signet.db-wal']) {
      const path = join(h.dir, file)
      if (!existsSync(path)) continue
      const bytes = readFileSync(path)
      expect(bytes.includes(d), `${file} holds a private scalar`).toBe(false)
      expect(bytes.includes(der), `${file} holds a PKCS#8 key`).toBe(false)
    }
  })

  // Last: it scans every answer and log line of the tests above.
  it('the log scan finds no imported material (answers and log lines)', async () => {
    expect(h.logs.lines.length).toBeGreaterThan(0)
    await h.watchPrivateKeys()
    h.watch.assertClean()
  })
})
