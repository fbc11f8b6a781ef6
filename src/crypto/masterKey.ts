import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'

/**
 * The key-encryption key (KEK) that wraps every data key. It is held only in
 * memory; what reaches storage is its id (to tell which KEK wrapped a blob) and a
 * check value (to tell a wrong master key apart at start), both one-way HMACs.
 */
export class MasterKey {
  readonly #bytes: Buffer
  /** 8 bytes that name this key in ciphertexts, derived one-way from it. */
  readonly id: Buffer

  private constructor(bytes: Buffer) {
    this.#bytes = bytes
    this.id = this.#derive('signet master key id v1').subarray(0, 8)
  }

  /** Parses 32 bytes given as base64 (or base64url). Throws a message without the value. */
  static fromBase64(text: string): MasterKey {
    const trimmed = text.trim()
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) throw new TypeError('is not base64')
    const bytes = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
    if (bytes.length !== 32) throw new TypeError(`must decode to 32 bytes, got ${bytes.length}`)
    return new MasterKey(bytes)
  }

  static fromBytes(bytes: Buffer): MasterKey {
    if (bytes.length !== 32) throw new TypeError('a master key is 32 bytes')
    return new MasterKey(Buffer.from(bytes))
  }

  /** The raw key, for AES-GCM only. Never log, print or store it. */
  get bytes(): Buffer {
    return this.#bytes
  }

  get idHex(): string {
    return this.id.toString('hex')
  }

  /** The value stored at initialisation to recognise this key later. */
  checkValue(): string {
    return this.#derive('signet master key check v1').toString('base64')
  }

  matches(checkValue: string): boolean {
    const expected = Buffer.from(this.checkValue(), 'base64')
    const given = Buffer.from(checkValue, 'base64')
    return given.length === expected.length && timingSafeEqual(given, expected)
  }

  /**
   * A 32-byte key for one purpose ('signet row integrity v1', 'signet audit chain
   * v1'), derived with HKDF-SHA256 (RFC 5869), the purpose as `info`: keys for
   * different purposes are independent of each other and of the KEK itself.
   */
  deriveKey(purpose: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#bytes, Buffer.alloc(0), purpose, 32))
  }

  #derive(label: string): Buffer {
    return createHmac('sha256', this.#bytes).update(label).digest()
  }

  /** Keeps the key out of console.log, util.inspect and JSON.stringify. */
  toJSON(): string {
    return `[MasterKey ${this.idHex}]`
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toJSON()
  }
}
