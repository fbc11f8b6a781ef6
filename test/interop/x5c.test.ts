import { createHash, X509Certificate } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { importX509, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SignetClient } from '../../src/client/index.js'
import { startLiveSignet, type LiveSignet } from '../helpers/live-server.js'
import { tempDir } from '../helpers/harness.js'
import { ALGORITHMS, missingTool, run } from './tokens.js'

/**
 * Acceptance 2 of issue 4: for keysets with `x5c: true`, every published
 * certificate parses with node:crypto's X509Certificate, holds the JWK's public key,
 * and `x5t#S256` is its SHA-256 thumbprint.
 */

const noOpenssl = await missingTool('openssl', ['version'], 'the openssl command is not installed')
const PUBLIC_MEMBERS = ['kty', 'n', 'e', 'crv', 'x', 'y'] as const
const keysetFor = (alg: string) => `x5c-${alg.toLowerCase()}`

interface Jwk { kid: string; alg: string; x5c?: string[]; 'x5t#S256'?: string; [member: string]: unknown }

describe('x5c certificates in the JWKS', () => {
  let signet: LiveSignet
  let client: SignetClient
  const sets = new Map<string, Jwk[]>()

  beforeAll(async () => {
    signet = await startLiveSignet()
    for (const alg of ALGORITHMS) await signet.createKeyset({ name: keysetFor(alg), alg, x5c: true })
    // A second, pending key, so more than one certificate is published per keyset.
    for (const alg of ['ES256', 'RS256', 'EdDSA']) {
      expect((await signet.admin('POST', `/v1/admin/keysets/${keysetFor(alg)}/rotate`, { mode: 'scheduled' })).status).toBe(201)
    }
    client = new SignetClient({ url: signet.url, token: await signet.createClient(), timeout: 10_000 })
    for (const alg of ALGORITHMS) {
      const response = await fetch(`${signet.url}/keysets/${keysetFor(alg)}/jwks.json`)
      sets.set(alg, ((await response.json()) as { keys: Jwk[] }).keys)
    }
  })
  afterAll(async () => {
    await client?.close()
    await signet?.close()
    signet?.watch.assertClean()
  })

  it.each(ALGORITHMS)('%s: each certificate parses, holds the JWK\'s public key, and x5t#S256 matches', (alg) => {
    const keys = sets.get(alg)!
    expect(keys.length).toBe(['ES256', 'RS256', 'EdDSA'].includes(alg) ? 2 : 1)
    for (const jwk of keys) {
      expect(Array.isArray(jwk.x5c) && jwk.x5c.length >= 1, 'x5c is a non-empty array').toBe(true)
      for (const entry of jwk.x5c!) expect(entry, 'x5c entries are standard base64 (RFC 7517 4.7), not base64url').toMatch(/^[A-Za-z0-9+/]+={0,2}$/)
      const der = Buffer.from(jwk.x5c![0]!, 'base64')
      const certificate = new X509Certificate(der)

      const certificateJwk = certificate.publicKey.export({ format: 'jwk' }) as Record<string, unknown>
      for (const member of PUBLIC_MEMBERS) expect(certificateJwk[member], member).toEqual(jwk[member])
      expect(certificate.publicKey.asymmetricKeyType).toBe(alg === 'EdDSA' ? 'ed25519' : alg.startsWith('ES') ? 'ec' : 'rsa')

      expect(jwk['x5t#S256']).toBe(createHash('sha256').update(der).digest('base64url'))
      expect(certificate.fingerprint256.replace(/:/g, '').toLowerCase()).toBe(Buffer.from(jwk['x5t#S256']!, 'base64url').toString('hex'))

      // Self-signed with the same key, and valid now. (checkIssued() would say false:
      // it wants keyCertSign, which a CA:FALSE signing certificate rightly lacks.)
      expect(certificate.verify(certificate.publicKey)).toBe(true)
      expect(certificate.issuer).toBe(certificate.subject)
      expect(Date.parse(certificate.validFrom)).toBeLessThanOrEqual(Date.now())
      expect(Date.parse(certificate.validTo)).toBeGreaterThan(Date.now())
    }
  })

  it.skipIf(noOpenssl !== null)(`openssl verify accepts each certificate as its own trust anchor${noOpenssl ? ` (skipped: ${noOpenssl})` : ''}`, async () => {
    const dir = tempDir('signet-x5c-')
    try {
      for (const [alg, keys] of sets) {
        for (const jwk of keys) {
          const file = join(dir.path, `${jwk.kid}.pem`)
          writeFileSync(file, new X509Certificate(Buffer.from(jwk.x5c![0]!, 'base64')).toString())
          const { stdout } = await run('openssl', ['verify', '-CAfile', file, file], { timeout: 20_000 })
          expect(stdout, alg).toContain(': OK')
        }
      }
    } finally {
      dir.remove()
    }
  })

  it.each(ALGORITHMS)('%s: a token Signet signs verifies with the key taken from the active key\'s certificate', async (alg) => {
    const signed = await client.sign({ sub: 'cert-check' }, { keyset: keysetFor(alg) })
    const jwk = sets.get(alg)!.find((key) => key.kid === signed.kid)!
    const pem = new X509Certificate(Buffer.from(jwk.x5c![0]!, 'base64')).toString()
    const { payload } = await jwtVerify(signed.token, await importX509(pem, alg), { algorithms: [alg] })
    expect(payload.sub).toBe('cert-check')
  })

  it('a keyset without x5c publishes no certificate members', async () => {
    const { keys } = (await (await fetch(`${signet.url}/.well-known/jwks.json`)).json()) as { keys: Jwk[] }
    expect(keys.length).toBeGreaterThan(0)
    for (const jwk of keys) {
      expect(jwk.x5c).toBeUndefined()
      expect(jwk['x5t#S256']).toBeUndefined()
    }
  })
})
