import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { SoftwareMasterKey, sealedCheckValue } from '../../src/crypto/master-key.js'
import { ConfigError } from '../../src/errors.js'
import { checkMasterKey, isDatabaseMasterKey, MasterKeyMismatch, wrongMasterKey } from '../../src/keys/master-key-check.js'

describe('the master-key check', () => {
  const key = SoftwareMasterKey.fromBase64(randomBytes(32).toString('base64'))
  const other = SoftwareMasterKey.fromBase64(randomBytes(32).toString('base64'))

  it('knows a database by its check value, in the sealed and the plain (earlier) form', () => {
    for (const stored of [sealedCheckValue(key), key.checkValue()]) {
      expect(isDatabaseMasterKey(key, stored)).toBe(true)
      expect(isDatabaseMasterKey(other, stored)).toBe(false)
    }
    // Before initialisation there is no check value: any key may create the database.
    expect(isDatabaseMasterKey(other, null)).toBe(true)
    expect(isDatabaseMasterKey(other, undefined)).toBe(true)
  })

  it('refuses another key with the one message, naming where the key came from', () => {
    expect(() => checkMasterKey(key, sealedCheckValue(key), 'SIGNET_MASTER_KEY')).not.toThrow()
    const refusal = (() => {
      try {
        checkMasterKey(other, sealedCheckValue(key), 'SIGNET_MASTER_KEY_PKCS11')
      } catch (error) {
        return error
      }
      return null
    })()
    expect(refusal).toBeInstanceOf(MasterKeyMismatch)
    expect(refusal).toBeInstanceOf(ConfigError)
    expect((refusal as Error).message).toBe('SIGNET_MASTER_KEY_PKCS11 is not the master key of this database: nothing was changed')
    expect(wrongMasterKey('SIGNET_MASTER_KEY', 'SIGNET_NEW_MASTER_KEY').message)
      .toBe('neither SIGNET_MASTER_KEY nor SIGNET_NEW_MASTER_KEY is the master key of this database: nothing was changed')
  })
})
