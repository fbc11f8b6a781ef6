import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { DecryptionError } from '../errors.js'
import type { MasterKey } from './master-key.js'

/**
 * Envelope encryption of private keys at rest (docs/guarantees.md, points 2 and 3).
 *
 * Each private key is encrypted with AES-256-GCM under its own random data key and
 * nonce; the data key is itself encrypted (wrapped) with AES-256-GCM under the
 * master key. Both encryptions carry additional authenticated data that names the
 * key's kid, keyset and alg, so a ciphertext moved to another row fails to open.
 *
 * Layout of format version 1 (all offsets in bytes):
 *
 *   0   1   format version (1)
 *   1   8   master key id (MasterKey.id) of the KEK that wrapped the data key
 *   9   12  nonce of the data-key wrap
 *   21  32  wrapped data key
 *   53  16  GCM tag of the wrap
 *   69  12  nonce of the private-key encryption
 *   81  16  GCM tag of the private-key encryption
 *   97  ..  encrypted private key (PKCS#8 DER)
 *
 * Because the private key is encrypted under the data key, a master-key rotation
 * (`signet rewrap`) re-wraps only the 32-byte data key.
 */
export const FORMAT_VERSION = 1
/** Offsets of the layout above: master key id, the data-key wrap, the private-key encryption. */
const MASTER_KEY_ID_AT = 1
const WRAP_AT = 9
const BODY_AT = 69
const HEADER = 97

/** What a ciphertext is bound to. */
export interface Binding {
  kid: string
  keyset: string
  alg: string
}

function aad(purpose: 'dek' | 'key', binding: Binding): Buffer {
  return Buffer.from(`signet/v${FORMAT_VERSION}/${purpose}\0${binding.kid}\0${binding.keyset}\0${binding.alg}`, 'utf8')
}

function gcmSeal(key: Buffer, plaintext: Buffer, additional: Buffer): { nonce: Buffer; ciphertext: Buffer; tag: Buffer } {
  const nonce = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  cipher.setAAD(additional)
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return { nonce, ciphertext, tag: cipher.getAuthTag() }
}

function gcmOpen(key: Buffer, nonce: Buffer, ciphertext: Buffer, tag: Buffer, additional: Buffer, what: string): Buffer {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce)
    decipher.setAAD(additional)
    decipher.setAuthTag(tag)
    return Buffer.concat([decipher.update(ciphertext), decipher.final()])
  } catch {
    throw new DecryptionError(what)
  }
}

/** The data key's wrap happens wherever the master key lives: in memory or inside an HSM. */
function wrap(masterKey: MasterKey, dataKey: Buffer, binding: Binding): Buffer {
  return Buffer.concat([Buffer.from([FORMAT_VERSION]), masterKey.id, masterKey.wrapDataKey(dataKey, aad('dek', binding))])
}

/** Encrypts `plaintext` (a PKCS#8 DER private key) for storage. */
export function seal(masterKey: MasterKey, plaintext: Buffer, binding: Binding): Buffer {
  const dataKey = randomBytes(32)
  try {
    const header = wrap(masterKey, dataKey, binding)
    const body = gcmSeal(dataKey, plaintext, aad('key', binding))
    return Buffer.concat([header, body.nonce, body.tag, body.ciphertext])
  } finally {
    dataKey.fill(0)
  }
}

interface Parsed {
  masterKeyId: Buffer
  /** Nonce, wrapped data key and tag, as MasterKey.wrapDataKey made them. */
  wrapped: Buffer
  rest: Buffer
}

function parse(blob: Buffer, what: string): Parsed {
  if (blob.length <= HEADER || blob[0] !== FORMAT_VERSION) throw new DecryptionError(what)
  return {
    masterKeyId: blob.subarray(MASTER_KEY_ID_AT, WRAP_AT),
    wrapped: blob.subarray(WRAP_AT, BODY_AT),
    rest: blob.subarray(BODY_AT),
  }
}

function unwrap(masterKey: MasterKey, parsed: Parsed, binding: Binding, what: string): Buffer {
  if (!parsed.masterKeyId.equals(masterKey.id)) throw new DecryptionError(what)
  return masterKey.unwrapDataKey(parsed.wrapped, aad('dek', binding), what)
}

/** Decrypts a blob made by `seal`; throws DecryptionError on any mismatch. */
export function open(masterKey: MasterKey, blob: Buffer, binding: Binding): Buffer {
  const what = `private key ${binding.kid}`
  const parsed = parse(blob, what)
  const dataKey = unwrap(masterKey, parsed, binding, what)
  try {
    const nonce = parsed.rest.subarray(0, 12)
    const tag = parsed.rest.subarray(12, 28)
    return gcmOpen(dataKey, nonce, parsed.rest.subarray(28), tag, aad('key', binding), what)
  } finally {
    dataKey.fill(0)
  }
}

/** The id of the master key that wrapped `blob`, without opening it. */
export function wrappedBy(blob: Buffer): Buffer | null {
  return blob.length > HEADER && blob[0] === FORMAT_VERSION ? Buffer.from(blob.subarray(MASTER_KEY_ID_AT, WRAP_AT)) : null
}

/**
 * The part of `blob` that a rewrap changes (format version, master key id and the
 * wrapped data key), as a view of it: two wraps of one private key differ here
 * even though the encrypted key itself is kept as it is.
 */
export function wrapOf(blob: Buffer): Buffer {
  return blob.subarray(0, BODY_AT)
}

/**
 * Re-wraps the data key of `blob` from `from` to `to`; the encrypted private key is
 * kept as it is. Throws DecryptionError if `from` did not wrap it.
 */
export function rewrap(blob: Buffer, from: MasterKey, to: MasterKey, binding: Binding): Buffer {
  const what = `private key ${binding.kid}`
  const parsed = parse(blob, what)
  const dataKey = unwrap(from, parsed, binding, what)
  try {
    return Buffer.concat([wrap(to, dataKey, binding), parsed.rest])
  } finally {
    dataKey.fill(0)
  }
}
