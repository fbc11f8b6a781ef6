import { generateKeyPair as generateKeyPairCb, type KeyObject } from 'node:crypto'
import { promisify } from 'node:util'
import { algSpec, type Alg, type RsaBits } from './algorithms.js'

const generate = promisify(generateKeyPairCb) as (type: string, options: object) => Promise<{ publicKey: KeyObject; privateKey: KeyObject }>

export interface KeyPair {
  publicKey: KeyObject
  privateKey: KeyObject
}

/**
 * Generates a key pair for `alg` with node:crypto (OpenSSL), off the event loop.
 * PS* keys are plain RSA keys (kty RSA, rsaEncryption SPKI) so every JOSE verifier
 * accepts them; PSS padding is chosen when signing.
 */
export async function generateKeyPair(alg: Alg, rsaBits: RsaBits = 2048): Promise<KeyPair> {
  const spec = algSpec(alg)
  switch (spec.kty) {
    case 'RSA':
      return generate('rsa', { modulusLength: rsaBits, publicExponent: 0x10001 })
    case 'EC':
      return generate('ec', { namedCurve: spec.namedCurve })
    case 'OKP':
      return generate('ed25519', {})
  }
}
