import { createPrivateKey, createPublicKey, randomBytes, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import forge from 'node-forge'
import { algSpec, signatureOptions, type Alg } from '../crypto/algorithms.js'
import { InvalidRequest } from '../errors.js'
import { SoftwareBackend, type KeyBackend } from './backend.js'
import { checkKdfCost, MAX_KDF_ITERATIONS } from './kdf-cost.js'
import type { KeyRecord, Keyset } from './model.js'
import type { ImportInput } from '../schemas/index.js'
import type { KeyService, RotationMode } from './service.js'

/**
 * Bring your own key (docs/api.md, `POST /v1/admin/keysets/{name}/import`, and
 * `signet keys import`). Accepted material:
 *
 * - `pem`: a PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1
 *   (`EC PRIVATE KEY`) PEM, or an encrypted one (`ENCRYPTED PRIVATE KEY`, or a
 *   legacy `Proc-Type: 4,ENCRYPTED` PEM) with its `passphrase`;
 * - `pkcs12`: a PKCS#12 (.p12/.pfx) file in base64 with its `password`, opened
 *   with node-forge;
 * - `jwk`: a private JWK.
 *
 * The key must fit the keyset: its type and curve must be those of the keyset's
 * alg, and an RSA key must have 2048 to 8192 bits. It is checked by signing and
 * verifying once, then envelope-encrypted like a generated key. Only software
 * keysets take imports: a pkcs11 keyset promises keys that never existed outside
 * its token, which an uploaded key cannot keep.
 *
 * Every refusal has a fixed message that never quotes the material; nothing here
 * logs. Decoded DER buffers are zeroed after use (JS strings cannot be).
 */

/** RSA sizes accepted on import: at least 2048 bits (docs/api.md), at most 8192 (signing cost). */
const RSA_IMPORT_BITS = { min: 2048, max: 8192 } as const

export type ImportFormat = 'pem' | 'pkcs12' | 'jwk'

const PRIVATE_PEM = /-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----[\s\S]*?-----END \1-----/g
const PUBLIC_PEM = /-----BEGIN (?:PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE)-----/
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/

const PUBLIC_ONLY = 'the material holds only a public key or a certificate; import needs the private key'

/** Which of pem, pkcs12 and jwk was sent; exactly one must be. */
function importFormat(input: ImportInput): ImportFormat {
  const given = (['pem', 'pkcs12', 'jwk'] as const).filter((name) => input[name] !== undefined)
  if (given.length !== 1) throw new InvalidRequest('send exactly one of pem, pkcs12 or jwk')
  return given[0]!
}

/** The uploaded material as a private KeyObject. Throws InvalidRequest with fixed messages. */
function parsePrivateKey(input: ImportInput): KeyObject {
  const format = importFormat(input)
  if (format === 'pem') return fromPem(input.pem!, input.passphrase)
  if (format === 'pkcs12') return fromPkcs12(input.pkcs12!, input.password)
  return fromJwk(input.jwk!)
}

function fromPem(pem: string, passphrase: string | undefined): KeyObject {
  const blocks = [...pem.matchAll(PRIVATE_PEM)]
  if (blocks.length === 0) {
    if (PUBLIC_PEM.test(pem)) throw new InvalidRequest(PUBLIC_ONLY)
    throw new InvalidRequest('pem holds no private key in PEM form (PKCS#8, PKCS#1 or SEC1, possibly encrypted)')
  }
  if (blocks.length > 1) throw new InvalidRequest('pem holds several private keys; send one')
  const block = blocks[0]![0]
  const encrypted = blocks[0]![1] === 'ENCRYPTED PRIVATE KEY' || /Proc-Type:\s*4,ENCRYPTED/.test(block)
  if (encrypted && (passphrase === undefined || passphrase === '')) throw new InvalidRequest('the PEM key is encrypted: send its passphrase')
  if (blocks[0]![1] === 'ENCRYPTED PRIVATE KEY') checkKdfCost(pemBody(block), MAX_KDF_ITERATIONS.pem, 'the encrypted PEM key')
  try {
    return createPrivateKey(encrypted ? { key: block, format: 'pem', passphrase: passphrase as string } : { key: block, format: 'pem' })
  } catch {
    if (encrypted) throw new InvalidRequest('cannot decrypt the PEM key: wrong passphrase')
    throw new InvalidRequest('pem could not be read as a private key')
  }
}

/** The DER inside one PEM block (RFC 7468 section 2). */
function pemBody(block: string): Buffer {
  return Buffer.from(block.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64')
}

function fromPkcs12(pkcs12: string, password: string | undefined): KeyObject {
  // A rule between fields: a PKCS#12 file comes with its password.
  if (password === undefined) throw new InvalidRequest('password must be a string: the password of the PKCS#12 file (empty if it has none)')
  const compact = pkcs12.replace(/\s+/g, '')
  if (!BASE64.test(compact)) throw new InvalidRequest('pkcs12 must be the file in base64')
  const der = Buffer.from(compact.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
  let pfx: forge.pkcs12.Pkcs12Pfx
  try {
    checkKdfCost(der, MAX_KDF_ITERATIONS.pkcs12, 'the PKCS#12 file')
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')))
    pfx = forge.pkcs12.pkcs12FromAsn1(asn1, true, password)
  } catch (error) {
    if (error instanceof InvalidRequest) throw error
    const message = error instanceof Error ? error.message : ''
    if (/password|MAC could not be verified|decrypt/i.test(message)) throw new InvalidRequest('cannot open the PKCS#12 file: wrong password')
    throw new InvalidRequest('pkcs12 could not be read as a PKCS#12 file')
  } finally {
    der.fill(0)
  }
  const bags = [
    ...(pfx.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag! })[forge.pki.oids.pkcs8ShroudedKeyBag!] ?? []),
    ...(pfx.getBags({ bagType: forge.pki.oids.keyBag! })[forge.pki.oids.keyBag!] ?? []),
  ]
  if (bags.length === 0) {
    const certificates = pfx.getBags({ bagType: forge.pki.oids.certBag! })[forge.pki.oids.certBag!] ?? []
    throw new InvalidRequest(certificates.length > 0 ? PUBLIC_ONLY : 'the PKCS#12 file holds no private key')
  }
  if (bags.length > 1) throw new InvalidRequest('the PKCS#12 file holds several private keys; export one')
  const bag = bags[0]!
  // forge decodes RSA keys itself; for other types (EC, Ed25519) it keeps the PrivateKeyInfo.
  const info = bag.key ? forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(bag.key)) : bag.asn1
  const pkcs8 = Buffer.from(forge.asn1.toDer(info).getBytes(), 'binary')
  try {
    return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
  } catch {
    throw new InvalidRequest('the private key in the PKCS#12 file could not be read')
  } finally {
    pkcs8.fill(0)
  }
}

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi']

function fromJwk(members: Record<string, unknown>): KeyObject {
  if (members.kty === 'oct') throw new InvalidRequest('jwk is a symmetric key; Signet signs with RSA, EC or Ed25519 keys')
  if (members.d === undefined) throw new InvalidRequest(PUBLIC_ONLY)
  if (members.use !== undefined && members.use !== 'sig') throw new InvalidRequest('jwk has a use other than sig')
  if (members.key_ops !== undefined && !(Array.isArray(members.key_ops) && members.key_ops.includes('sign'))) {
    throw new InvalidRequest('jwk key_ops does not allow sign')
  }
  // Only the key members go to node:crypto; kid, alg and the rest are Signet's to set.
  const key: Record<string, unknown> = { kty: members.kty }
  for (const name of ['crv', 'x', 'y', 'n', 'e', ...PRIVATE_JWK_MEMBERS]) if (members[name] !== undefined) key[name] = members[name]
  try {
    return createPrivateKey({ key: key as never, format: 'jwk' })
  } catch {
    throw new InvalidRequest('jwk could not be read as a private key (RSA keys need n, e, d, p, q, dp, dq and qi)')
  }
}

const CURVE_NAMES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }

/** Describes a key for refusals: "a 1024-bit RSA key", "a P-256 key". Never its material. */
function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {}
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      return `a ${details.modulusLength ?? '?'}-bit ${key.asymmetricKeyType === 'rsa' ? 'RSA' : 'RSA-PSS'} key`
    case 'ec':
      return `a ${CURVE_NAMES[details.namedCurve ?? ''] ?? details.namedCurve ?? 'EC'} key`
    case 'ed25519':
      return 'an Ed25519 key'
    default:
      return `a ${key.asymmetricKeyType ?? 'unknown'} key`
  }
}

/**
 * Throws 400 unless `key` can sign for `alg`: the key type and curve of the alg,
 * RSA of RSA_IMPORT_BITS with an odd exponent of at least 3.
 */
function checkKeyFits(key: KeyObject, alg: Alg, keysetName: string): void {
  if (key.type !== 'private') throw new InvalidRequest(PUBLIC_ONLY)
  const spec = algSpec(alg)
  const what = describeKey(key)
  const refuse = (why: string) => new InvalidRequest(`${what} cannot sign for keyset ${keysetName}: ${why}`)
  if (spec.kty === 'RSA') {
    if (key.asymmetricKeyType === 'rsa-pss') throw refuse('convert it to a plain RSA key (rsaEncryption); PSS padding is chosen when signing')
    if (key.asymmetricKeyType !== 'rsa') throw refuse(`${alg} needs an RSA key`)
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
    if (bits < RSA_IMPORT_BITS.min) throw refuse(`RSA keys must have at least ${RSA_IMPORT_BITS.min} bits`)
    if (bits > RSA_IMPORT_BITS.max) throw refuse(`RSA keys may have at most ${RSA_IMPORT_BITS.max} bits`)
    const exponent = key.asymmetricKeyDetails?.publicExponent ?? 0n
    if (exponent < 3n || exponent % 2n === 0n) throw refuse('the public exponent must be odd and at least 3')
    return
  }
  if (spec.kty === 'EC') {
    if (key.asymmetricKeyType !== 'ec') throw refuse(`${alg} needs a ${spec.crv} key`)
    if (key.asymmetricKeyDetails?.namedCurve !== spec.namedCurve) throw refuse(`${alg} needs a ${spec.crv} key`)
    return
  }
  if (key.asymmetricKeyType !== 'ed25519') throw refuse('EdDSA keysets need an Ed25519 key')
}

/** Signs and verifies once, so a JWK with mismatched members cannot become an active key. */
function selfTest(privateKey: KeyObject, alg: Alg): KeyObject {
  const spec = algSpec(alg)
  const publicKey = createPublicKey(privateKey)
  const data = randomBytes(32)
  const options = signatureOptions(alg)
  let valid = false
  try {
    const signature = cryptoSign(spec.hash, data, { key: privateKey, ...options })
    valid = cryptoVerify(spec.hash, data, { key: publicKey, ...options }, signature)
  } catch {
    valid = false
  }
  if (!valid) throw new InvalidRequest('the key fails a sign-and-verify check: its members do not belong together')
  return publicKey
}

export interface ImportDependencies {
  keys: KeyService
  /** The software backend, which envelope-encrypts the key. */
  software: KeyBackend
}

/**
 * Imports a key into keyset `name`: parse, check against the keyset, encrypt,
 * and add it as pending (activating after prepublish) or, with
 * `activate: "immediate"`, as the active key. Its kid is its RFC 7638
 * thumbprint; a kid that exists anywhere (even revoked) is refused with 409.
 */
export async function importKey(deps: ImportDependencies, name: string, input: ImportInput, actor: string): Promise<KeyRecord> {
  const mode: RotationMode = input.activate ?? 'scheduled'
  const { keyset } = await deps.keys.getKeyset(name)
  checkImportTarget(keyset)
  const privateKey = parsePrivateKey(input)
  checkKeyFits(privateKey, keyset.alg, keyset.name)
  const publicKey = selfTest(privateKey, keyset.alg)
  if (!(deps.software instanceof SoftwareBackend)) throw new TypeError('import needs the software backend')
  const fresh = await deps.software.wrap(keyset.name, keyset.alg, { privateKey, publicKey })
  return deps.keys.addImportedKey(keyset, fresh, mode, actor)
}

/**
 * The import input for a key file (`signet keys import FILE`): a JSON object is a
 * JWK, text with a PEM header is a PEM, anything else is taken as a binary
 * PKCS#12 file. `secret` is the passphrase of an encrypted PEM or the password of a
 * PKCS#12 file (an absent one is the empty password for PKCS#12). The caller
 * checks the result against the import body's schema.
 */
export function importInputFromFile(content: Buffer, secret: string | undefined, format?: ImportFormat): Record<string, unknown> {
  const text = content.toString('utf8')
  const kind = format ?? (/^\s*\{/.test(text) ? 'jwk' : text.includes('-----BEGIN ') ? 'pem' : 'pkcs12')
  if (kind === 'jwk') {
    let jwk: unknown
    try {
      jwk = JSON.parse(text)
    } catch {
      throw new InvalidRequest('the file is not a JSON Web Key (it does not parse as JSON)')
    }
    return { jwk }
  }
  if (kind === 'pem') return secret === undefined ? { pem: text } : { pem: text, passphrase: secret }
  return { pkcs12: content.toString('base64'), password: secret ?? '' }
}

/** Only software keysets take imported keys (see the module comment). */
function checkImportTarget(keyset: Keyset): void {
  if (keyset.backend !== 'software') {
    throw new InvalidRequest(`keyset ${keyset.name} keeps its keys inside an HSM (backend ${keyset.backend}), where every key is generated and never leaves; import into a software keyset instead`)
  }
}
