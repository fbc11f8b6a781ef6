import { randomBytes } from 'node:crypto'
import { CHECK_LABEL, checkValueMatches, describeMasterKey, ID_LABEL, WRAP_NONCE, type MasterKey } from '../../crypto/master-key.js'
import { ConfigError, DecryptionError, HsmUnavailable, SignetError } from '../../errors.js'
import { describePkcs11Error, flags, Pkcs11Fault, Pkcs11Library, pkcs11Binding, pkcs11Code, type Api, type Handle } from './library.js'
import { findTokenSlot, SettingsProblem } from './token.js'

/**
 * The master key as an AES-256 secret key inside a PKCS#11 token
 * (SIGNET_MASTER_KEY_PKCS11, docs/hsm.md). Its value never enters this process:
 *
 * - data keys are wrapped and unwrapped inside the token with CKM_AES_GCM
 *   (C_Encrypt / C_Decrypt), with the same nonce || ciphertext || tag layout and
 *   additional authenticated data as the software key, so envelope.ts is the same
 *   for both;
 * - the id, the check value and deriveKey come from a KDF in counter mode with
 *   AES-CMAC as its PRF (NIST SP 800-108r1 section 4.1; CMAC: NIST SP 800-38B,
 *   RFC 4493), computed by the token through C_Sign with CKM_AES_CMAC:
 *     K(i) = CMAC(master, [i]32 || label || 0x00 || context || [L]32),  L = 256 bits.
 *   SoftHSM2 and common HSMs support CKM_AES_CMAC; few support CKM_SP800_108_COUNTER_KDF.
 *
 * pkcs11js calls are synchronous, so every operation is too: one session of its
 * own, opened again when the module was reset or the session was lost.
 */

export interface Pkcs11MasterKeyOptions {
  /** SIGNET_PKCS11_MODULE, SIGNET_PKCS11_TOKEN_LABEL, SIGNET_PKCS11_SLOT, SIGNET_PKCS11_PIN. */
  module: string
  tokenLabel: string | null
  slot: number | null
  pin: string | null
  /** CKA_LABEL of the AES key (SIGNET_MASTER_KEY_PKCS11). */
  label: string
}

const AES_BLOCK = 16
const KEY_BYTES = 32

const ID_CONTEXT = 'signet master key'
const DERIVE_CONTEXT = 'signet derived key'

/** Errors after which the session (or the whole connection) is gone, not the operation refused. */
const CONNECTION_LOST = new Set([
  0x30, // CKR_DEVICE_ERROR
  0x31, // CKR_DEVICE_MEMORY
  0x32, // CKR_DEVICE_REMOVED
  0x60, // CKR_KEY_HANDLE_INVALID
  0x82, // CKR_OBJECT_HANDLE_INVALID
  0xb0, // CKR_SESSION_CLOSED
  0xb3, // CKR_SESSION_HANDLE_INVALID
  0xe0, // CKR_TOKEN_NOT_PRESENT
  0xe1, // CKR_TOKEN_NOT_RECOGNIZED
  0x101, // CKR_USER_NOT_LOGGED_IN
  0x190, // CKR_CRYPTOKI_NOT_INITIALIZED
])

/**
 * Errors after which the module itself may need a reset (C_Finalize, C_Initialize):
 * a lost connection, and the catch-all failures SoftHSM2 answers with, once its
 * token came back, until the module is initialized again.
 */
const RESET_AFTER = new Set([
  ...CONNECTION_LOST,
  0x05, // CKR_GENERAL_ERROR
  0x06, // CKR_FUNCTION_FAILED
])

interface Connection {
  generation: number
  slot: Handle
  session: Handle
  key: Handle
  /** When the token was last seen in its slot (Date.now()). */
  checkedAt: number
}

/**
 * Least time between two checks that the token is still in its slot. Some modules
 * (SoftHSM2) go on using cached keys after the token is gone; the check makes
 * them fail as a real device would. Master-key operations are rare (a key loaded
 * or made), so one C_GetTokenInfo a second costs nothing.
 */
const PRESENCE_CHECK_MS = 1000

const u32 = (value: number) => {
  const buffer = Buffer.alloc(4)
  buffer.writeUInt32BE(value)
  return buffer
}

/** Opens a session on the configured token and logs in. A refused PIN is a settings problem. */
function openSession(api: Api, options: Pkcs11MasterKeyOptions, slot = findTokenSlot(api, options.tokenLabel, options.slot)): Handle {
  const pkcs11 = pkcs11Binding()
  const loginRequired = (api.C_GetTokenInfo(slot).flags & pkcs11.CKF_LOGIN_REQUIRED) !== 0
  const session = api.C_OpenSession(slot, pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION)
  if (!loginRequired) return session
  try {
    if (options.pin === null) throw new SettingsProblem('no PIN is configured', 'set SIGNET_PKCS11_PIN or SIGNET_PKCS11_PIN_FILE')
    api.C_Login(session, pkcs11.CKU_USER, options.pin)
  } catch (error) {
    const code = pkcs11Code(error)
    // PKCS#11 logs in per application: another user of the module may have done it.
    if (code === pkcs11.CKR_USER_ALREADY_LOGGED_IN) return session
    closeQuietly(api, session)
    if (code === pkcs11.CKR_PIN_INCORRECT || code === pkcs11.CKR_PIN_LEN_RANGE) throw new SettingsProblem('the token refused the PIN', `C_Login: ${describePkcs11Error(error)}`)
    if (code === pkcs11.CKR_PIN_LOCKED) throw new SettingsProblem('the user PIN is locked', `C_Login: ${describePkcs11Error(error)}`)
    throw error
  }
  return session
}

function closeQuietly(api: Api, session: Handle): void {
  try {
    api.C_CloseSession(session)
  } catch {
    // The session goes with the failed attempt.
  }
}

/** Every secret key labelled `label` in the token. */
function findSecretKeys(api: Api, session: Handle, label: string): Handle[] {
  const pkcs11 = pkcs11Binding()
  api.C_FindObjectsInit(session, [
    { type: pkcs11.CKA_CLASS, value: pkcs11.CKO_SECRET_KEY },
    { type: pkcs11.CKA_LABEL, value: label },
  ])
  try {
    return api.C_FindObjects(session, 2)
  } finally {
    api.C_FindObjectsFinal(session)
  }
}

/** Refuses a key that is not an AES-256 key kept inside the token and usable for our operations. */
function checkKeyAttributes(api: Api, session: Handle, key: Handle, label: string): void {
  const pkcs11 = pkcs11Binding()
  const read = (type: number) => api.C_GetAttributeValue(session, key, [{ type }])[0]!.value as Buffer
  const flag = (type: number) => read(type)[0] === 1
  const ulong = (type: number) => {
    const value = read(type)
    return value.length >= 8 ? Number(value.readBigUInt64LE(0)) : value.readUInt32LE(0)
  }
  const where = `SIGNET_MASTER_KEY_PKCS11=${label}`
  if (ulong(pkcs11.CKA_KEY_TYPE) !== pkcs11.CKK_AES || ulong(pkcs11.CKA_VALUE_LEN) !== KEY_BYTES) throw new ConfigError(`${where}: the key is not an AES-256 key`)
  if (!flag(pkcs11.CKA_SENSITIVE) || flag(pkcs11.CKA_EXTRACTABLE)) {
    throw new ConfigError(`${where}: the key is extractable or not sensitive; a master key must never leave the token (make one with signet init --master-key-pkcs11)`)
  }
  for (const [attribute, name] of [[pkcs11.CKA_ENCRYPT, 'CKA_ENCRYPT'], [pkcs11.CKA_DECRYPT, 'CKA_DECRYPT'], [pkcs11.CKA_SIGN, 'CKA_SIGN']] as const) {
    if (!flag(attribute)) throw new ConfigError(`${where}: the key does not allow ${name}`)
  }
}

/** Turns a failure to reach the token or its key into the message a start-up or a command gives. */
function openError(error: unknown, label: string): Error {
  if (error instanceof ConfigError) return error
  const reason = error instanceof Pkcs11Fault ? `${error.summary} (${error.detail})` : error instanceof SignetError ? error.message : describePkcs11Error(error)
  return new ConfigError(`SIGNET_MASTER_KEY_PKCS11=${label}: the master key cannot be used: ${reason}; nothing was changed`)
}

/** An AES-256 master key that stays inside a PKCS#11 token. */
export class Pkcs11MasterKey implements MasterKey {
  readonly #options: Pkcs11MasterKeyOptions
  readonly #library: Pkcs11Library
  #connection: Connection | null = null
  #refused: string | null = null
  #closed = false
  #opened = false
  readonly id: Buffer
  readonly #checkValue: string

  private constructor(options: Pkcs11MasterKeyOptions, library: Pkcs11Library) {
    this.#options = options
    this.#library = library
    this.id = this.#kdf(ID_LABEL, ID_CONTEXT).subarray(0, 8)
    this.#checkValue = this.#kdf(CHECK_LABEL, ID_CONTEXT).toString('base64')
    this.#opened = true
  }

  /**
   * Opens the key labelled `options.label`, checking that it is a sensitive,
   * non-extractable AES-256 key. Throws ConfigError naming the variable when the
   * module, the token, the PIN or the key is missing.
   */
  static async open(options: Pkcs11MasterKeyOptions): Promise<Pkcs11MasterKey> {
    const library = Pkcs11Library.acquire(options.module)
    try {
      return new Pkcs11MasterKey(options, library)
    } catch (error) {
      await library.release()
      throw openError(error, options.label)
    }
  }

  /**
   * Generates the master key inside the token (`signet init --master-key-pkcs11`):
   * sensitive, never extractable, a token object, allowed to encrypt, decrypt and
   * sign (CMAC) only. Refuses a label that a secret key already has.
   */
  static async generate(options: Pkcs11MasterKeyOptions): Promise<void> {
    const library = Pkcs11Library.acquire(options.module)
    try {
      library.runNow((api) => {
        const pkcs11 = pkcs11Binding()
        const session = openSession(api, options)
        try {
          if (findSecretKeys(api, session, options.label).length > 0) {
            throw new ConfigError(`the token already holds a key labelled ${options.label}: signet init never replaces a master key`)
          }
          api.C_GenerateKey(session, { mechanism: pkcs11.CKM_AES_KEY_GEN }, [
            { type: pkcs11.CKA_CLASS, value: pkcs11.CKO_SECRET_KEY },
            { type: pkcs11.CKA_KEY_TYPE, value: pkcs11.CKK_AES },
            { type: pkcs11.CKA_VALUE_LEN, value: KEY_BYTES },
            { type: pkcs11.CKA_LABEL, value: options.label },
            { type: pkcs11.CKA_ID, value: randomBytes(8) },
            ...flags({ CKA_TOKEN: true, CKA_PRIVATE: true, CKA_SENSITIVE: true, CKA_EXTRACTABLE: false }),
            ...flags({ CKA_ENCRYPT: true, CKA_DECRYPT: true, CKA_SIGN: true, CKA_VERIFY: false, CKA_WRAP: false, CKA_UNWRAP: false, CKA_DERIVE: false }),
          ])
        } finally {
          closeQuietly(api, session)
        }
      })
    } catch (error) {
      throw openError(error, options.label)
    } finally {
      await library.release()
    }
  }

  get idHex(): string {
    return this.id.toString('hex')
  }

  checkValue(): string {
    return this.#checkValue
  }

  matches(checkValue: string): boolean {
    return checkValueMatches(this.#checkValue, checkValue)
  }

  wrapDataKey(dataKey: Buffer, aad: Buffer): Buffer {
    const nonce = randomBytes(WRAP_NONCE)
    const sealed = this.#call('wrap a data key', (api, { session, key }) => {
      api.C_EncryptInit(session, gcm(nonce, aad), key)
      return api.C_Encrypt(session, dataKey, Buffer.alloc(dataKey.length + AES_BLOCK))
    })
    return Buffer.concat([nonce, sealed])
  }

  unwrapDataKey(wrapped: Buffer, aad: Buffer, what: string): Buffer {
    const refused = Symbol('refused')
    const result = this.#call('unwrap a data key', (api, { session, key }) => {
      api.C_DecryptInit(session, gcm(wrapped.subarray(0, WRAP_NONCE), aad), key)
      try {
        return api.C_Decrypt(session, wrapped.subarray(WRAP_NONCE), Buffer.alloc(wrapped.length))
      } catch (error) {
        // A tag that does not verify is refused by a token that still answers.
        if (CONNECTION_LOST.has(pkcs11Code(error) ?? -1)) throw error
        return refused
      }
    })
    if (result === refused) throw new DecryptionError(what)
    return result
  }

  deriveKey(purpose: string): Buffer {
    return this.#kdf(purpose, DERIVE_CONTEXT)
  }

  /** Releases the session and the module (the last user finalises it). */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const connection = this.#connection
    this.#connection = null
    if (connection) {
      try {
        this.#library.runNow((api, generation) => {
          if (generation === connection.generation) closeQuietly(api, connection.session)
        })
      } catch {
        // Closing is best effort.
      }
    }
    await this.#library.release()
  }

  /** NIST SP 800-108r1 counter mode with AES-CMAC, computed in the token (see the module comment). */
  #kdf(label: string, context: string): Buffer {
    const fixed = Buffer.concat([Buffer.from(label, 'utf8'), Buffer.from([0]), Buffer.from(context, 'utf8'), u32(KEY_BYTES * 8)])
    return this.#call('derive a key', (api, { session, key }) => {
      const blocks: Buffer[] = []
      for (let i = 1; i * AES_BLOCK <= KEY_BYTES; i++) {
        api.C_SignInit(session, { mechanism: pkcs11Binding().CKM_AES_CMAC }, key)
        blocks.push(api.C_Sign(session, Buffer.concat([u32(i), fixed]), Buffer.alloc(AES_BLOCK)))
      }
      return Buffer.concat(blocks)
    })
  }

  /** When the module was last reset after a failure (Date.now()). */
  #resetAt = 0

  /**
   * Runs one operation on the key, connecting first if needed. A lost session or
   * module reset gets one new connection and one retry; anything else is
   * HsmUnavailable (503), never a raw PKCS#11 error. A refused PIN is not sent again.
   */
  #call<T>(what: string, work: (api: Api, connection: Connection) => T): T {
    if (this.#closed) throw new HsmUnavailable('the master key is closed')
    if (this.#refused) throw new HsmUnavailable(`the HSM master key is unavailable: ${this.#refused}`)
    let seen = this.#library.generation
    try {
      return this.#library.runNow((api, generation) => {
        seen = generation
        for (let attempt = 0; ; attempt++) {
          const connection = this.#connected(api, generation)
          this.#checkPresent(api, connection)
          try {
            return work(api, connection)
          } catch (error) {
            this.#drop(api)
            if (attempt > 0 || !CONNECTION_LOST.has(pkcs11Code(error) ?? -1)) throw error
          }
        }
      })
    } catch (error) {
      if (error instanceof SettingsProblem) this.#refused = error.summary
      // Many modules see a token that came back only after C_Finalize and C_Initialize.
      // At most one reset a PRESENCE_CHECK_MS: calls made while a reset runs fail with a
      // Pkcs11Fault, which would start another reset once it finishes, and so on.
      else if ((error instanceof Pkcs11Fault || RESET_AFTER.has(pkcs11Code(error) ?? -1)) && Date.now() - this.#resetAt >= PRESENCE_CHECK_MS) {
        this.#resetAt = Date.now()
        void this.#library.reset(seen).catch(() => {})
      }
      if (!this.#opened) throw error // open() names the variable and the reason
      const reason = error instanceof ConfigError ? error.message : error instanceof Pkcs11Fault ? error.summary : describePkcs11Error(error)
      throw new HsmUnavailable(`the HSM master key could not ${what}: ${reason}`)
    }
  }

  #connected(api: Api, generation: number): Connection {
    const current = this.#connection
    if (current && current.generation === generation) return current
    this.#connection = null
    const slot = findTokenSlot(api, this.#options.tokenLabel, this.#options.slot)
    const session = openSession(api, this.#options, slot)
    try {
      const keys = findSecretKeys(api, session, this.#options.label)
      if (keys.length === 0) throw new ConfigError(`SIGNET_MASTER_KEY_PKCS11=${this.#options.label}: the token holds no secret key with this label; nothing was changed`)
      if (keys.length > 1) throw new ConfigError(`SIGNET_MASTER_KEY_PKCS11=${this.#options.label}: the token holds several secret keys with this label`)
      checkKeyAttributes(api, session, keys[0]!, this.#options.label)
      this.#connection = { generation, slot, session, key: keys[0]!, checkedAt: Date.now() }
      return this.#connection
    } catch (error) {
      closeQuietly(api, session)
      throw error
    }
  }

  /** Throws (and forgets the connection) when the slot no longer holds the token; at most every PRESENCE_CHECK_MS. */
  #checkPresent(api: Api, connection: Connection): void {
    if (Date.now() - connection.checkedAt < PRESENCE_CHECK_MS) return
    let present: boolean
    try {
      const info = api.C_GetTokenInfo(connection.slot)
      const label = this.#options.tokenLabel
      present = (info.flags & pkcs11Binding().CKF_TOKEN_INITIALIZED) !== 0 && (label === null || info.label.trim() === label)
    } catch {
      present = false
    }
    if (!present) {
      this.#drop(api)
      throw new Pkcs11Fault('the token is not present', 'C_GetTokenInfo no longer shows the token in its slot')
    }
    connection.checkedAt = Date.now()
  }

  /** Forgets the connection after a failure; the next operation opens a fresh session. */
  #drop(api: Api): void {
    if (this.#connection) closeQuietly(api, this.#connection.session)
    this.#connection = null
  }

  toJSON(): string {
    return describeMasterKey(this, 'pkcs11')
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toJSON()
  }
}

/** CKM_AES_GCM with a 96-bit nonce and a 128-bit tag, as the software key uses (NIST SP 800-38D). */
function gcm(iv: Buffer, aad: Buffer) {
  const pkcs11 = pkcs11Binding()
  return { mechanism: pkcs11.CKM_AES_GCM, parameter: { type: pkcs11.CK_PARAMS_AES_GCM, iv, aad, ivBits: iv.length * 8, tagBits: AES_BLOCK * 8 } }
}
