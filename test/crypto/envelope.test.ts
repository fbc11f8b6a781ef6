import { randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import { describe, expect, it } from 'vitest'
import { open, rewrap, seal, wrapOf, wrappedBy } from '../../src/crypto/envelope.js'
import { MasterKey } from '../../src/crypto/master-key.js'
import { DecryptionError } from '../../src/errors.js'

const binding = { kid: 'kid-one', keyset: 'default', alg: 'ES256' }
const newKey = () => MasterKey.fromBytes(randomBytes(32))

describe('envelope encryption', () => {
  it('opens what it sealed, and the blob holds neither the plaintext nor the data key in the clear', () => {
    const mk = newKey()
    const secret = randomBytes(120)
    const blob = seal(mk, secret, binding)
    expect(open(mk, blob, binding).equals(secret)).toBe(true)
    expect(blob.includes(secret.subarray(0, 16))).toBe(false)
    expect(blob[0]).toBe(1)
    expect(wrappedBy(blob)?.equals(mk.id)).toBe(true)
  })

  it('uses a fresh data key and nonce every time', () => {
    const mk = newKey()
    const secret = randomBytes(64)
    const a = seal(mk, secret, binding)
    const b = seal(mk, secret, binding)
    expect(a.subarray(9, 69).equals(b.subarray(9, 69))).toBe(false)
    expect(a.subarray(69).equals(b.subarray(69))).toBe(false)
  })

  it.each([
    ['kid', { ...binding, kid: 'kid-two' }],
    ['keyset', { ...binding, keyset: 'other' }],
    ['alg', { ...binding, alg: 'ES384' }],
  ])('refuses a ciphertext moved to another %s', (_field, other) => {
    const mk = newKey()
    const blob = seal(mk, randomBytes(48), binding)
    expect(() => open(mk, blob, other)).toThrow(DecryptionError)
  })

  it('refuses a blob with any single bit flipped', () => {
    const mk = newKey()
    const blob = seal(mk, randomBytes(48), binding)
    for (let byte = 0; byte < blob.length; byte++) {
      const tampered = Buffer.from(blob)
      tampered[byte]! ^= 1 << (byte % 8)
      expect(() => open(mk, tampered, binding), `byte ${byte}`).toThrow(/wrong master key or tampered ciphertext/)
    }
  })

  it('refuses the wrong master key, and truncated or empty blobs', () => {
    const blob = seal(newKey(), randomBytes(48), binding)
    expect(() => open(newKey(), blob, binding)).toThrow(DecryptionError)
    expect(() => open(newKey(), blob.subarray(0, 90), binding)).toThrow(DecryptionError)
    expect(() => open(newKey(), Buffer.alloc(0), binding)).toThrow(DecryptionError)
  })

  it('tells a rewrap apart by its wrap (wrapOf), the encrypted key itself kept as it is', () => {
    const blob = seal(newKey(), randomBytes(48), binding)
    const oldKey = newKey()
    const original = seal(oldKey, randomBytes(48), binding)
    const moved = rewrap(original, oldKey, newKey(), binding)
    expect(wrapOf(moved).equals(wrapOf(original))).toBe(false)
    expect(moved.subarray(wrapOf(moved).length).equals(original.subarray(wrapOf(original).length))).toBe(true)
    expect(wrapOf(blob).subarray(1, 9).equals(wrappedBy(blob)!)).toBe(true)
  })

  it('rewraps the data key for a new master key: only the new key opens it', () => {
    const oldKey = newKey()
    const nextKey = newKey()
    const secret = randomBytes(80)
    const blob = seal(oldKey, secret, binding)
    const moved = rewrap(blob, oldKey, nextKey, binding)
    expect(open(nextKey, moved, binding).equals(secret)).toBe(true)
    expect(() => open(oldKey, moved, binding)).toThrow(DecryptionError)
    expect(wrappedBy(moved)?.equals(nextKey.id)).toBe(true)
    // The private key ciphertext itself is untouched: only the 32-byte data key moved.
    expect(moved.subarray(69).equals(blob.subarray(69))).toBe(true)
    expect(() => rewrap(blob, nextKey, oldKey, binding)).toThrow(DecryptionError)
  })
})

describe('master key', () => {
  it('parses 32 bytes of base64 or base64url and refuses anything else without echoing it', () => {
    const bytes = randomBytes(32)
    expect(MasterKey.fromBase64(bytes.toString('base64')).id.equals(MasterKey.fromBase64(bytes.toString('base64url')).id)).toBe(true)
    const short = randomBytes(16).toString('base64')
    expect(() => MasterKey.fromBase64(short)).toThrow(/32 bytes, got 16/)
    try {
      MasterKey.fromBase64(short)
    } catch (error) {
      expect((error as Error).message).not.toContain(short)
    }
    expect(() => MasterKey.fromBase64('not base64 at all!')).toThrow(/not base64/)
  })

  it('recognises itself by its check value and tells another key apart', () => {
    const mk = newKey()
    expect(mk.matches(mk.checkValue())).toBe(true)
    expect(newKey().matches(mk.checkValue())).toBe(false)
    expect(mk.matches('')).toBe(false)
  })

  it('never shows its bytes when logged or serialised', () => {
    const bytes = randomBytes(32)
    const mk = MasterKey.fromBytes(bytes)
    const shown = `${JSON.stringify({ mk })} ${inspect(mk)}`
    expect(shown).not.toContain(bytes.toString('base64'))
    expect(shown).not.toContain(bytes.toString('hex'))
  })
})
