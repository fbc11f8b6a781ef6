import { randomBytes, type KeyObject } from 'node:crypto'
import { algSpec, isRsa, type Alg } from '../../crypto/algorithms.js'
import type { SigningKey } from '../../crypto/jws.js'
import type { TbsSigner } from '../../crypto/x509.js'
import { HsmUnavailable, InvalidRequest } from '../../errors.js'
import { describeKeyPair, type KeyBackend, type NewKey } from '../backend.js'
import type { KeyRecord, Keyset } from '../model.js'
import { rawEcdsaToDer } from './der.js'
import { flags, pkcs11Binding, type Api, type Handle } from './library.js'
import { CKK_EC_EDWARDS, ecParams, ecPublicKey, mechanismName, mechanismsFor, rsaPublicKey, signatureLength, signedData, type Mechanism } from './mechanisms.js'
import { Pkcs11Token, type TokenOptions } from './token.js'

/** Prefix of the CKA_LABEL of every object Signet makes: `signet:<keyset>:<kid>`. */
export const LABEL_PREFIX = 'signet:'

/** The CKA_LABEL of both objects of a pair: `signet:<keyset>:<kid>` (`pending` until the kid is known). */
const objectLabel = (keysetName: string, kid: string): string => `${LABEL_PREFIX}${keysetName}:${kid}`

/** Largest signature any supported key makes (RSA 16384 bits), for C_Sign's output buffer. */
const SIGNATURE_BUFFER = 2048

export type Pkcs11BackendOptions = TokenOptions

/**
 * Keys generated and kept inside a PKCS#11 token (backend `pkcs11`,
 * docs/hsm.md). The private key is made with CKA_SENSITIVE true and CKA_EXTRACTABLE
 * false and never leaves the token; Signet stores only its public JWK, its
 * certificate and its CKA_ID (`hsmId`, the kid's 32 bytes in hex). Both objects
 * of the pair carry CKA_ID = kid bytes and CKA_LABEL = `signet:<keyset>:<kid>`.
 *
 * Signing goes through C_Sign on a pooled session (see Pkcs11Token); the digest is
 * computed in Node (see mechanisms.ts). Destroying a key destroys both token objects.
 */
export class Pkcs11Backend implements KeyBackend {
  readonly name = 'pkcs11' as const
  readonly #token: Pkcs11Token
  /** Private key handles by hsmId, for the connection generation they were found in. */
  #handles = new Map<string, Handle>()
  #handlesEpoch = -1
  /** hsmIds whose objects could not be destroyed because the token was away. */
  readonly #pendingDestroy = new Set<string>()

  constructor(options: Pkcs11BackendOptions) {
    this.#token = new Pkcs11Token(options)
  }

  unavailableReason(): string | null {
    const problem = this.#token.problem
    return problem ? `the PKCS#11 token is unavailable: ${problem.summary}` : null
  }

  /** Checks or reconnects the token, then finishes deletions it missed while away. */
  async probe(): Promise<void> {
    await this.#token.probe()
    if (this.#token.problem || this.#pendingDestroy.size === 0) return
    for (const hsmId of [...this.#pendingDestroy]) await this.#destroyObjects(hsmId).catch(() => {})
  }

  async close(): Promise<void> {
    await this.#token.close()
  }

  /**
   * Generates a key pair inside the token for the keyset's alg. A token without
   * the mechanisms the alg needs (EdDSA on many HSMs), or without the RSA size,
   * is refused with 400 before anything is made.
   */
  async generate(keyset: Keyset): Promise<NewKey> {
    const { alg } = keyset
    const mechanisms = mechanismsFor(alg)
    const capabilities = await this.#token.capabilities()
    const missing = mechanisms.required.filter((mechanism) => !capabilities.mechanisms.has(mechanism))
    if (missing.length > 0) {
      throw new InvalidRequest(`the HSM token cannot do ${alg}: it lacks ${missing.map(mechanismName).join(', ')}`)
    }
    if (isRsa(alg) && capabilities.rsaBits && (keyset.rsaBits < capabilities.rsaBits.min || keyset.rsaBits > capabilities.rsaBits.max)) {
      throw new InvalidRequest(`the HSM token cannot make ${keyset.rsaBits}-bit RSA keys (it makes ${capabilities.rsaBits.min} to ${capabilities.rsaBits.max})`)
    }

    const temporaryId = randomBytes(16)
    const pair = await this.#token.withSession((api, session) =>
      api.C_GenerateKeyPairAsync(session, { mechanism: mechanisms.generate }, publicTemplate(keyset, temporaryId), privateTemplate(keyset, temporaryId)))
    try {
      const publicKey = await this.#token.withSession((api, session) => readPublicKey(api, session, pair.publicKey, alg))
      const sign: TbsSigner = async (tbs) => {
        const signature = await this.#sign(pair.privateKey, alg, mechanisms.certificate, tbs)
        // X.509 wants ECDSA signatures in DER; PKCS#11 gives raw R||S.
        return algSpec(alg).kty === 'EC' ? rawEcdsaToDer(signature) : signature
      }
      const { publicJwk, certificate } = await describeKeyPair(keyset.name, alg, publicKey, sign)
      const id = await this.#token.withSession((api, session) => nameObjects(api, session, pair, temporaryId, publicJwk.kid, objectLabel(keyset.name, publicJwk.kid)))
      return { kid: publicJwk.kid, keyset: keyset.name, alg, publicJwk, certificate, privateKey: null, hsmId: id.toString('hex') }
    } catch (error) {
      await this.#token.withSession((api, session) => {
        for (const object of [pair.privateKey, pair.publicKey]) api.C_DestroyObject(session, object)
      }).catch(() => {})
      throw error
    }
  }

  /** A SigningKey that signs inside the token; fails with 503 while the token is away. */
  async load(key: KeyRecord): Promise<SigningKey> {
    const hsmId = key.hsmId
    if (!hsmId) throw new HsmUnavailable(`key ${key.kid} has no HSM object`)
    await this.#privateKey(hsmId, key.kid) // the key must be in the token now
    const { alg, kid } = key
    const mechanism = mechanismsFor(alg).sign
    const modulusBytes = key.publicJwk.n ? Buffer.from(key.publicJwk.n, 'base64url').length : null
    const expected = signatureLength(alg, modulusBytes)
    return {
      kid,
      alg,
      sign: async (input) => {
        const signature = await this.#sign(await this.#privateKey(hsmId, kid), alg, mechanism, input)
        if (signature.length !== expected) throw new HsmUnavailable('the HSM returned a signature of the wrong length')
        return signature
      },
    }
  }

  /**
   * Destroys both token objects of the key (CKA_ID = hsmId). When the token is
   * away, the deletion is remembered and done by `probe` once it is back (a
   * restart in between forgets it: see docs/hsm.md).
   */
  async destroy(key: KeyRecord): Promise<void> {
    if (!key.hsmId) return
    this.#handles.delete(key.hsmId)
    try {
      await this.#destroyObjects(key.hsmId)
    } catch (error) {
      this.#pendingDestroy.add(key.hsmId)
      throw error
    }
  }

  async #destroyObjects(hsmId: string): Promise<void> {
    const id = Buffer.from(hsmId, 'hex')
    await this.#token.withSession((api, session) => {
      for (const object of findObjects(api, session, [{ type: pkcs11Binding().CKA_ID, value: id }])) api.C_DestroyObject(session, object)
    })
    this.#pendingDestroy.delete(hsmId)
  }

  async #privateKey(hsmId: string, kid: string): Promise<Handle> {
    const cached = this.#token.epoch === this.#handlesEpoch ? this.#handles.get(hsmId) : undefined
    if (cached) return cached
    const pkcs11 = pkcs11Binding()
    let epoch = -1
    const found = await this.#token.withSession((api, session) => {
      epoch = this.#token.epoch
      return findObjects(api, session, [
        { type: pkcs11.CKA_CLASS, value: pkcs11.CKO_PRIVATE_KEY },
        { type: pkcs11.CKA_ID, value: Buffer.from(hsmId, 'hex') },
      ])
    })
    if (found.length !== 1) throw new HsmUnavailable(`the HSM token does not hold the private key of ${kid}`)
    // Handles die with the connection they were found on.
    if (epoch !== this.#handlesEpoch) {
      this.#handles.clear()
      this.#handlesEpoch = epoch
    }
    this.#handles.set(hsmId, found[0]!)
    return found[0]!
  }

  async #sign(key: Handle, alg: Alg, mechanism: Mechanism, input: Buffer): Promise<Buffer> {
    const data = signedData(alg, mechanism, input)
    const pkcs11 = pkcs11Binding()
    // The PSS parameter tag is pkcs11js' own number.
    const mech = mechanism.parameter ? { ...mechanism, parameter: { ...mechanism.parameter, type: pkcs11.CK_PARAMS_RSA_PSS } } : mechanism
    try {
      return await this.#token.withSession(async (api, session) => {
        api.C_SignInit(session, mech, key)
        return api.C_SignAsync(session, data, Buffer.alloc(SIGNATURE_BUFFER))
      })
    } catch (error) {
      // A handle can go stale (token re-initialised, object deleted): look it up again next time.
      for (const [hsmId, handle] of this.#handles) if (handle.equals(key)) this.#handles.delete(hsmId)
      throw error
    }
  }
}

type Attribute = { type: number; value?: number | boolean | string | Buffer }

/**
 * Ties both objects of a new pair to the kid: CKA_ID = the kid's 32 bytes,
 * CKA_LABEL = `signet:<keyset>:<kid>`. A token that will not change CKA_ID after
 * generation keeps the temporary id (and gets the label only, if it takes that);
 * the id the objects end up with is returned and stored as hsmId.
 */
function nameObjects(api: Api, session: Handle, pair: { privateKey: Handle; publicKey: Handle }, temporaryId: Buffer, kid: string, label: string): Buffer {
  const pkcs11 = pkcs11Binding()
  const id = Buffer.from(kid, 'base64url')
  const attempts: [Buffer, Attribute[]][] = [
    [id, [{ type: pkcs11.CKA_ID, value: id }, { type: pkcs11.CKA_LABEL, value: label }]],
    [temporaryId, [{ type: pkcs11.CKA_LABEL, value: label }]],
  ]
  for (const [finalId, template] of attempts) {
    try {
      api.C_SetAttributeValue(session, pair.privateKey, template)
      api.C_SetAttributeValue(session, pair.publicKey, template)
      return finalId
    } catch {
      // Put both objects back on the temporary id before the next, smaller attempt.
      for (const object of [pair.privateKey, pair.publicKey]) {
        try {
          api.C_SetAttributeValue(session, object, [{ type: pkcs11.CKA_ID, value: temporaryId }])
        } catch {
          // It kept the temporary id.
        }
      }
    }
  }
  return temporaryId
}

function findObjects(api: Api, session: Handle, template: Attribute[]): Handle[] {
  api.C_FindObjectsInit(session, template)
  try {
    const found: Handle[] = []
    for (;;) {
      const batch = api.C_FindObjects(session, 32)
      found.push(...batch)
      if (batch.length < 32) return found
    }
  } finally {
    api.C_FindObjectsFinal(session)
  }
}

function keyType(alg: Alg): number {
  const pkcs11 = pkcs11Binding()
  const kty = algSpec(alg).kty
  return kty === 'RSA' ? pkcs11.CKK_RSA : kty === 'EC' ? pkcs11.CKK_EC : CKK_EC_EDWARDS
}

/**
 * What both halves of a new pair are: a token object of their class and the keyset's
 * key type, private (CKA_PRIVATE) only for the private half, with `usage` (what the
 * half may do), the temporary CKA_ID and a pending label (nameObjects sets both once
 * the kid is known).
 */
function pairTemplate(keyset: Keyset, id: Buffer, half: 'public' | 'private', usage: Attribute[]): Attribute[] {
  const pkcs11 = pkcs11Binding()
  return [
    { type: pkcs11.CKA_CLASS, value: half === 'private' ? pkcs11.CKO_PRIVATE_KEY : pkcs11.CKO_PUBLIC_KEY },
    { type: pkcs11.CKA_KEY_TYPE, value: keyType(keyset.alg) },
    ...flags({ CKA_TOKEN: true, CKA_PRIVATE: half === 'private' }),
    ...usage,
    { type: pkcs11.CKA_ID, value: id },
    { type: pkcs11.CKA_LABEL, value: objectLabel(keyset.name, 'pending') },
  ]
}

/** The public half: verify only, with the key's size (RSA) or curve (EC, EdDSA). */
function publicTemplate(keyset: Keyset, id: Buffer): Attribute[] {
  const pkcs11 = pkcs11Binding()
  const template = pairTemplate(keyset, id, 'public', flags({ CKA_VERIFY: true, CKA_ENCRYPT: false, CKA_WRAP: false }))
  if (isRsa(keyset.alg)) {
    template.push({ type: pkcs11.CKA_MODULUS_BITS, value: keyset.rsaBits }, { type: pkcs11.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) })
  } else {
    template.push({ type: pkcs11.CKA_EC_PARAMS, value: ecParams(keyset.alg) })
  }
  return template
}

/** The private half: signs only, sensitive and never extractable. */
function privateTemplate(keyset: Keyset, id: Buffer): Attribute[] {
  return pairTemplate(keyset, id, 'private', flags({ CKA_SENSITIVE: true, CKA_EXTRACTABLE: false, CKA_SIGN: true, CKA_DECRYPT: false, CKA_UNWRAP: false, CKA_DERIVE: false }))
}

function readPublicKey(api: Api, session: Handle, handle: Handle, alg: Alg): KeyObject {
  const pkcs11 = pkcs11Binding()
  if (isRsa(alg)) {
    const [modulus, exponent] = api.C_GetAttributeValue(session, handle, [{ type: pkcs11.CKA_MODULUS }, { type: pkcs11.CKA_PUBLIC_EXPONENT }])
    return rsaPublicKey(modulus!.value, exponent!.value)
  }
  const [point] = api.C_GetAttributeValue(session, handle, [{ type: pkcs11.CKA_EC_POINT }])
  return ecPublicKey(alg, point!.value)
}
