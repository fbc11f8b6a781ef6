import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'
import { DecryptionError } from '../errors.js'

/**
 * The key-encryption key (KEK) that wraps every data key. What reaches storage is
 * its id (to tell which KEK wrapped a blob) and a check value (to tell a wrong
 * master key apart at start), both one-way derivations.
 *
 * Two sources implement it: SoftwareMasterKey (32 bytes held in memory, from
 * SIGNET_MASTER_KEY) and Pkcs11MasterKey (an AES-256 key that never leaves a
 * PKCS#11 token, from SIGNET_MASTER_KEY_PKCS11; src/keys/pkcs11/master-key.ts).
 */
export interface MasterKey {
  /** 8 bytes that name this key in ciphertexts, derived one-way from it. */
  readonly id: Buffer
  readonly idHex: string
  /** The value stored at initialisation to recognise this key later. */
  checkValue(): string
  /** Whether `checkValue` (from storage) is this key's, compared in constant time. */
  matches(checkValue: string): boolean
  /**
   * Encrypts a 32-byte data key with AES-256-GCM under the master key, bound to
   * `aad`. Returns nonce (12) || ciphertext (32) || tag (16), the layout of
   * src/crypto/envelope.ts.
   */
  wrapDataKey(dataKey: Buffer, aad: Buffer): Buffer
  /** Reverses wrapDataKey; throws DecryptionError naming `what` on any mismatch. */
  unwrapDataKey(wrapped: Buffer, aad: Buffer, what: string): Buffer
  /**
   * A 32-byte key for `purpose` (e.g. row MACs, the audit chain), derived one-way
   * from the master key, the same every time, and unrelated to every other purpose.
   */
  deriveKey(purpose: string): Buffer
}

/** Labels of the id and the check value, shared by every source. */
export const ID_LABEL = 'signet master key id v1'
export const CHECK_LABEL = 'signet master key check v1'

/** Byte sizes of wrapDataKey's output. */
export const WRAP_NONCE = 12
export const WRAP_TAG = 16

/** Compares a stored check value with a key's own, in constant time. */
export function checkValueMatches(own: string, given: string): boolean {
  const expected = Buffer.from(own, 'base64')
  const other = Buffer.from(given, 'base64')
  return other.length === expected.length && timingSafeEqual(other, expected)
}

/**
 * The check value stored in a database whose rows are authenticated under the
 * master key (docs/security.md, "The database is not trusted"): a prefix and a
 * value derived from the key. A database written before rows were authenticated
 * holds the plain check value (checkValue()) instead; only such a database is
 * upgraded (storage/integrity-upgrade.ts). Without the master key nobody can turn
 * a sealed check value back into a plain one, so deleting the integrity marker and
 * stripping MACs cannot make Signet trust rows on first use again.
 */
const SEALED_CHECK_PREFIX = 'sealed:'
const sealedCheckValues = new WeakMap<MasterKey, string>()

export function sealedCheckValue(key: MasterKey): string {
  let value = sealedCheckValues.get(key)
  if (value === undefined) {
    value = SEALED_CHECK_PREFIX + key.deriveKey('signet sealed database check v1').toString('base64')
    sealedCheckValues.set(key, value)
  }
  return value
}

/** Whether a stored check value is the plain one of a database not yet authenticated. */
export function isLegacyCheckValue(stored: string): boolean {
  return !stored.startsWith(SEALED_CHECK_PREFIX)
}

/** Whether `key` is the master key of a database with this stored check value (either form), in constant time. */
export function ownsDatabase(key: MasterKey, stored: string): boolean {
  if (isLegacyCheckValue(stored)) return key.matches(stored)
  return checkValueMatches(sealedCheckValue(key).slice(SEALED_CHECK_PREFIX.length), stored.slice(SEALED_CHECK_PREFIX.length))
}

/** Keeps a master key out of console.log, util.inspect and JSON.stringify. */
export function describeMasterKey(key: Pick<MasterKey, 'idHex'>, kind: string): string {
  return `[MasterKey ${kind} ${key.idHex}]`
}

/** A master key given as 32 bytes (SIGNET_MASTER_KEY), held only in memory. */
export class SoftwareMasterKey implements MasterKey {
  readonly #bytes: Buffer
  readonly id: Buffer

  private constructor(bytes: Buffer) {
    this.#bytes = bytes
    this.id = this.#hmac(ID_LABEL).subarray(0, 8)
  }

  /** Parses 32 bytes given as base64 (or base64url). Throws a message without the value. */
  static fromBase64(text: string): SoftwareMasterKey {
    const trimmed = text.trim()
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) throw new TypeError('is not base64')
    const bytes = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
    if (bytes.length !== 32) throw new TypeError(`must decode to 32 bytes, got ${bytes.length}`)
    return new SoftwareMasterKey(bytes)
  }

  static fromBytes(bytes: Buffer): SoftwareMasterKey {
    if (bytes.length !== 32) throw new TypeError('a master key is 32 bytes')
    return new SoftwareMasterKey(Buffer.from(bytes))
  }

  /** The raw key. Never log, print or store it. */
  get bytes(): Buffer {
    return this.#bytes
  }

  get idHex(): string {
    return this.id.toString('hex')
  }

  checkValue(): string {
    return this.#hmac(CHECK_LABEL).toString('base64')
  }

  matches(checkValue: string): boolean {
    return checkValueMatches(this.checkValue(), checkValue)
  }

  wrapDataKey(dataKey: Buffer, aad: Buffer): Buffer {
    const nonce = randomBytes(WRAP_NONCE)
    const cipher = createCipheriv('aes-256-gcm', this.#bytes, nonce)
    cipher.setAAD(aad)
    const ciphertext = Buffer.concat([cipher.update(dataKey), cipher.final()])
    return Buffer.concat([nonce, ciphertext, cipher.getAuthTag()])
  }

  unwrapDataKey(wrapped: Buffer, aad: Buffer, what: string): Buffer {
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#bytes, wrapped.subarray(0, WRAP_NONCE))
      decipher.setAAD(aad)
      decipher.setAuthTag(wrapped.subarray(wrapped.length - WRAP_TAG))
      return Buffer.concat([decipher.update(wrapped.subarray(WRAP_NONCE, wrapped.length - WRAP_TAG)), decipher.final()])
    } catch {
      throw new DecryptionError(what)
    }
  }

  /** HKDF-SHA256 (RFC 5869) of the master key, no salt, info = purpose. */
  deriveKey(purpose: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#bytes, Buffer.alloc(0), purpose, 32))
  }

  // The id and check value predate deriveKey; they stay HMAC-SHA256 so existing databases still open.
  #hmac(label: string): Buffer {
    return createHmac('sha256', this.#bytes).update(label).digest()
  }

  toJSON(): string {
    return describeMasterKey(this, 'software')
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toJSON()
  }
}

/** Existing call sites build software keys as MasterKey.fromBase64 / fromBytes. */
export const MasterKey = {
  fromBase64: (text: string): SoftwareMasterKey => SoftwareMasterKey.fromBase64(text),
  fromBytes: (bytes: Buffer): SoftwareMasterKey => SoftwareMasterKey.fromBytes(bytes),
}
