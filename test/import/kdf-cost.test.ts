import { generateKeyPairSync, randomBytes } from 'node:crypto'
import forge from 'node-forge'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { largestKdfCost, MAX_KDF_ITERATIONS } from '../../src/keys/kdf-cost.js'
import { createHarness, type Harness } from '../helpers/harness.js'
import { expectProblem } from '../security/helpers.js'

/**
 * A password-protected key names its own key-derivation cost. A crafted .p12 or
 * encrypted PEM asking for millions of iterations used to hold the event loop
 * (and /healthz) for seconds; the count is now refused before anything is derived.
 */

const { Class, Type } = forge.asn1

/**
 * Rewrites every iteration count (an INTEGER right after an OCTET STRING salt) of
 * a DER structure: at the top level only ('outer': a PKCS#12 MacData, a PKCS#8
 * PBKDF2-params) or only inside the DER that OCTET STRINGs carry ('nested': the
 * PKCS#12 bags). The attacker's file: no key is derived to make it.
 */
function withIterations(der: Buffer, count: number | bigint, where: 'outer' | 'nested'): Buffer {
  let hex = BigInt(count).toString(16)
  hex = hex.length % 2 ? `0${hex}` : hex
  const integer = Buffer.from(/^[89a-f]/.test(hex) ? `00${hex}` : hex, 'hex').toString('binary')
  const rewrite = (node: forge.asn1.Asn1, nested: boolean): void => {
    if (!Array.isArray(node.value)) {
      const bytes = node.value
      if (node.tagClass === Class.UNIVERSAL && node.type === Type.OCTETSTRING && bytes.charCodeAt(0) === 0x30) {
        try {
          const inner = forge.asn1.fromDer(forge.util.createBuffer(bytes), true)
          rewrite(inner, true)
          node.value = forge.asn1.toDer(inner).getBytes()
        } catch {
          // ciphertext, not DER
        }
      }
      return
    }
    const children = node.value
    children.forEach((child, index) => {
      const previous = children[index - 1]
      if (previous?.type === Type.OCTETSTRING && child.type === Type.INTEGER && child.tagClass === Class.UNIVERSAL && nested === (where === 'nested')) {
        child.value = integer
      }
      rewrite(child, nested)
    })
  }
  const root = forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')))
  rewrite(root, false)
  return Buffer.from(forge.asn1.toDer(root).getBytes(), 'binary')
}

describe('key-derivation cost of imported files', () => {
  let h: Harness
  const password = `pw-${randomBytes(8).toString('hex')}`
  let p12: Buffer
  let pem: string

  beforeAll(async () => {
    h = await createHarness()
    await h.createKeyset({ name: 'rs', alg: 'RS256' })
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
    const forgeKey = forge.pki.privateKeyFromPem(rsa.export({ format: 'pem', type: 'pkcs1' }) as string)
    p12 = Buffer.from(forge.asn1.toDer(forge.pkcs12.toPkcs12Asn1(forgeKey, null, password, { algorithm: 'aes256', count: 2048 })).getBytes(), 'binary')
    pem = rsa.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: password }) as string
  })
  afterAll(async () => {
    await h.close()
  })

  const pemWith = (count: number) => {
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64')
    const body = withIterations(der, count, 'outer').toString('base64').replace(/(.{64})/g, '$1\n')
    // The PEM armour around DER made above at test time (no key material is committed).
    const label = ['ENCRYPTED', 'PRIVATE', 'KEY'].join(' ')
    return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`
  }
  const keysOf = async () => (await h.admin('GET', '/v1/admin/keysets/rs/keys')).json().keys.length as number

  it('reads the counts where PKCS#12 and PKCS#8 keep them', () => {
    expect(largestKdfCost(p12)).toBe(2048)
    expect(largestKdfCost(withIterations(p12, 50_000_000, 'outer'))).toBe(50_000_000)
    expect(largestKdfCost(withIterations(p12, 7_000_000, 'nested'))).toBe(7_000_000)
    expect(largestKdfCost(withIterations(p12, 2n ** 64n, 'nested'))).toBe(Number.POSITIVE_INFINITY)
    expect(largestKdfCost(Buffer.from(pemWith(3_000_000).replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64'))).toBe(3_000_000)
    expect(largestKdfCost(Buffer.from('not DER at all'))).toBe(0)
  })

  it.each([
    ['its MAC', 'outer' as const, 50_000_000],
    ['its key bag', 'nested' as const, 7_000_000],
  ])('refuses a .p12 whose %s asks for too many iterations with 400, before deriving, and imports nothing', async (_label, where, count) => {
    const before = await keysOf()
    const crafted = withIterations(p12, count, where).toString('base64')
    const response = await h.admin('POST', '/v1/admin/keysets/rs/import', { pkcs12: crafted, password })
    const body = expectProblem(response, 400, 'invalid_request')
    expect(body.detail).toBe(`the PKCS#12 file asks for ${count.toLocaleString('en-US')} key-derivation iterations; at most ${MAX_KDF_ITERATIONS.pkcs12.toLocaleString('en-US')} are accepted: export it again with a usual count`)
    expect(await keysOf()).toBe(before)
    expect((await h.request('GET', '/healthz')).statusCode).toBe(200)
  })

  it('refuses an encrypted PEM asking for too many PBKDF2 iterations, and imports one with a usual count', async () => {
    const before = await keysOf()
    const body = expectProblem(await h.admin('POST', '/v1/admin/keysets/rs/import', { pem: pemWith(MAX_KDF_ITERATIONS.pem + 1), passphrase: password }), 400, 'invalid_request')
    expect(body.detail).toMatch(/^the encrypted PEM key asks for 1,000,001 key-derivation iterations; at most 1,000,000/)
    expect(await keysOf()).toBe(before)
    const accepted = await h.admin('POST', '/v1/admin/keysets/rs/import', { pem, passphrase: password })
    expect(accepted.statusCode, accepted.body).toBe(201)
    const fromP12 = await h.admin('POST', '/v1/admin/keysets/rs/import', { pkcs12: p12.toString('base64'), password })
    expect(fromP12.statusCode).toBe(409) // the same key, already imported: it got past the cost check and opened
  })
})
