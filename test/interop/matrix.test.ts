import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createVerifier as createFastJwtVerifier } from 'fast-jwt'
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose'
import jsonwebtoken from 'jsonwebtoken'
import { JwksClient } from 'jwks-rsa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createVerifier, SignetClient } from '../../src/client/index.js'
import { tempDir } from '../helpers/harness.js'
import { startLiveSignet, type LiveSignet } from '../helpers/live-server.js'
import { ALGORITHMS, ecdsaRawToDer, jwkToPem, keysetFor, missingTool, run, tamper, verifyWithPyJwt, type TokenSet } from './tokens.js'

/**
 * Acceptance 1 of issue 4: tokens from a listening Signet, for every algorithm of
 * the key lifecycle (docs/key-lifecycle.md), verify with independent verifiers, and a tampered payload or
 * signature fails in each.
 */

const AUDIENCE = 'interop'
const SIGNATURE_LENGTH: Record<string, number> = { ES256: 64, ES384: 96, ES512: 132, EdDSA: 64 }

const noPyJwt = await missingTool('/usr/bin/python3', ['-c', 'import jwt, cryptography'], '/usr/bin/python3 cannot import jwt (install Debian\'s python3-jwt)')
const noOpenssl = await missingTool('openssl', ['version'], 'the openssl command is not installed')

describe('interop: Signet tokens with independent verifiers', () => {
  let signet: LiveSignet
  let client: SignetClient
  const tokens = new Map<string, TokenSet>()
  const jwks = new Map<string, { keys: Record<string, unknown>[] }>()
  const scratch = tempDir('signet-interop-')
  const jwksUrl = (alg: string) => `${signet.url}/keysets/${keysetFor(alg)}/jwks.json`

  beforeAll(async () => {
    signet = await startLiveSignet()
    // One keyset per algorithm; RSA keys are slow to make, so once per file.
    for (const alg of ALGORITHMS) await signet.createKeyset({ name: keysetFor(alg), alg })
    client = new SignetClient({ url: signet.url, token: await signet.createClient(), timeout: 10_000 })
    for (const alg of ALGORITHMS) {
      const signed = await client.sign({ sub: 'user-42', aud: AUDIENCE, role: 'reader' }, { keyset: keysetFor(alg), ttl: 600 })
      expect(signed.alg).toBe(alg)
      tokens.set(alg, tamper(signed.token))
      const response = await fetch(jwksUrl(alg))
      expect(response.headers.get('content-type')).toContain('application/jwk-set+json')
      jwks.set(alg, await response.json() as { keys: Record<string, unknown>[] })
    }
  })
  afterAll(async () => {
    await client?.close()
    await signet?.close()
    scratch.remove()
    signet?.watch.assertClean()
  })

  describe.each(ALGORITHMS)('%s', (alg) => {
    const set = () => tokens.get(alg)!

    it('jose (jwtVerify + createRemoteJWKSet), and createVerifier built on it', async () => {
      const remote = createRemoteJWKSet(new URL(jwksUrl(alg)))
      const { payload } = await jwtVerify(set().valid, remote, { algorithms: [alg], audience: AUDIENCE })
      expect(payload).toMatchObject({ sub: 'user-42', role: 'reader' })
      await expect(jwtVerify(set().tamperedPayload, remote, { algorithms: [alg] })).rejects.toMatchObject({ code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' })
      await expect(jwtVerify(set().tamperedSignature, remote, { algorithms: [alg] })).rejects.toMatchObject({ code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' })

      const verifier = createVerifier({ jwksUrl: jwksUrl(alg), audience: AUDIENCE })
      const verified = await verifier.verify(set().valid)
      expect(verified.payload).toEqual(decodeJwt(set().valid))
      expect(verified.payload).toMatchObject({ sub: 'user-42', aud: AUDIENCE, role: 'reader' })
      expect(verified.payload.exp! - verified.payload.iat!).toBe(600)
      await expect(verifier.verify(set().tamperedPayload)).rejects.toMatchObject({ code: 'invalid_signature' })
      await expect(verifier.verify(set().tamperedSignature)).rejects.toMatchObject({ code: 'invalid_signature' })
    })

    // jsonwebtoken 9 implements no EdDSA (its `jws` dependency stops at ES512).
    if (alg !== 'EdDSA') it('jsonwebtoken with jwks-rsa', async () => {
      const keys = new JwksClient({ jwksUri: jwksUrl(alg) })
      const kid = jsonwebtoken.decode(set().valid, { complete: true })!.header.kid!
      const publicKey = (await keys.getSigningKey(kid)).getPublicKey()
      const payload = jsonwebtoken.verify(set().valid, publicKey, { algorithms: [alg as jsonwebtoken.Algorithm], audience: AUDIENCE }) as jsonwebtoken.JwtPayload
      expect(payload).toMatchObject({ sub: 'user-42', role: 'reader' })
      expect(() => jsonwebtoken.verify(set().tamperedPayload, publicKey, { algorithms: [alg as jsonwebtoken.Algorithm] })).toThrow(/invalid signature/)
      expect(() => jsonwebtoken.verify(set().tamperedSignature, publicKey, { algorithms: [alg as jsonwebtoken.Algorithm] })).toThrow(/invalid signature/)
    })

    else it('jsonwebtoken with jwks-rsa: jwks-rsa serves the Ed25519 key, jsonwebtoken 9 has no EdDSA', async () => {
      const keys = new JwksClient({ jwksUri: jwksUrl(alg) })
      const kid = jsonwebtoken.decode(set().valid, { complete: true })!.header.kid!
      const publicKey = (await keys.getSigningKey(kid)).getPublicKey()
      expect(publicKey).toContain('BEGIN PUBLIC KEY')
      // A library limit, not a Signet one: the other five verifiers accept EdDSA.
      expect(() => jsonwebtoken.verify(set().valid, publicKey, { algorithms: ['EdDSA' as jsonwebtoken.Algorithm] })).toThrow()
    })

    it('fast-jwt', async () => {
      const header = JSON.parse(Buffer.from(set().valid.split('.')[0]!, 'base64url').toString())
      const jwk = jwks.get(alg)!.keys.find((key) => key.kid === header.kid)!
      const verify = createFastJwtVerifier({ key: jwkToPem(jwk), algorithms: [alg], allowedAud: AUDIENCE })
      expect(verify(set().valid)).toMatchObject({ sub: 'user-42', role: 'reader' })
      expect(() => verify(set().tamperedPayload)).toThrow(/signature/i)
      expect(() => verify(set().tamperedSignature)).toThrow(/signature/i)
    })

    it.skipIf(noPyJwt !== null)(`PyJWT PyJWKClient against the JWKS URL${noPyJwt ? ` (skipped: ${noPyJwt})` : ''}`, async () => {
      const results = await verifyWithPyJwt(jwksUrl(alg), alg, AUDIENCE, [set().valid, set().tamperedPayload, set().tamperedSignature])
      expect(results[0]).toEqual({ ok: true, sub: 'user-42' })
      expect(results[1]).toEqual({ ok: false, error: 'InvalidSignatureError' })
      expect(results[2]).toEqual({ ok: false, error: 'InvalidSignatureError' })
    })

    it.skipIf(noOpenssl !== null)(`openssl verifies the signing input${noOpenssl ? ` (skipped: ${noOpenssl})` : ''}`, async () => {
      const header = JSON.parse(Buffer.from(set().valid.split('.')[0]!, 'base64url').toString())
      const pem = join(scratch.path, `${alg}.pem`)
      writeFileSync(pem, jwkToPem(jwks.get(alg)!.keys.find((key) => key.kid === header.kid)!))

      const opensslVerifies = async (token: string, name: string): Promise<boolean> => {
        const [h, p, s] = token.split('.') as [string, string, string]
        const input = join(scratch.path, `${alg}-${name}.input`)
        const signatureFile = join(scratch.path, `${alg}-${name}.sig`)
        const raw = Buffer.from(s, 'base64url')
        if (SIGNATURE_LENGTH[alg]) expect(raw.length, 'fixed-length JWS signature').toBe(SIGNATURE_LENGTH[alg])
        writeFileSync(input, `${h}.${p}`)
        writeFileSync(signatureFile, alg.startsWith('ES') ? ecdsaRawToDer(raw) : raw)
        const digest = `-sha${alg.slice(2)}`
        const args = alg === 'EdDSA'
          ? ['pkeyutl', '-verify', '-pubin', '-inkey', pem, '-rawin', '-in', input, '-sigfile', signatureFile]
          : ['dgst', digest, '-verify', pem, '-signature', signatureFile,
            ...(alg.startsWith('PS') ? ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest'] : []),
            input]
        try {
          const { stdout } = await run('openssl', args, { timeout: 20_000 })
          return /Verified OK|Signature Verified Successfully/.test(stdout)
        } catch {
          return false // openssl exits 1 on a bad signature
        }
      }
      expect(await opensslVerifies(set().valid, 'valid')).toBe(true)
      expect(await opensslVerifies(set().tamperedPayload, 'payload')).toBe(false)
      expect(await opensslVerifies(set().tamperedSignature, 'signature')).toBe(false)
    })
  })
})
