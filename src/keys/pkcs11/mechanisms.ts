import { createHash, createPublicKey, type KeyObject } from 'node:crypto'
import { algSpec, signatureOptions, type Alg } from '../../crypto/algorithms.js'
import { unwrapOctetString } from './der.js'

/**
 * What each JWS algorithm needs from a PKCS#11 token: the key-pair generation
 * mechanism and its template members, the signing mechanism, and how the signing
 * input is prepared in Node before C_Sign.
 *
 * The digest is always computed in Node (the token gets 32 to 64 bytes, not the
 * whole token): RSA PKCS#1 v1.5 signs a DigestInfo with CKM_RSA_PKCS, PSS uses
 * CKM_RSA_PKCS_PSS over the digest with MGF1 of the same hash and a salt as long as
 * the hash (RFC 7518 section 3.5), ECDSA uses CKM_ECDSA over the digest and gets raw
 * R||S back, which is already the JWS form. EdDSA (pure Ed25519) signs the whole
 * input with CKM_EDDSA.
 */

/** Constants of PKCS#11 3.0 that pkcs11js 2 does not export. */
export const CKK_EC_EDWARDS = 0x40
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055
export const CKM_EDDSA = 0x1057

/** Mechanism and constant numbers from PKCS#11 2.40, so this file needs no binding. */
const CKM = {
  RSA_PKCS_KEY_PAIR_GEN: 0x0,
  RSA_PKCS: 0x1,
  RSA_PKCS_PSS: 0xd,
  EC_KEY_PAIR_GEN: 0x1040,
  ECDSA: 0x1041,
  SHA256: 0x250,
  SHA384: 0x260,
  SHA512: 0x270,
} as const
const CKG_MGF1 = { sha256: 0x2, sha384: 0x3, sha512: 0x4 } as const
const CKM_HASH = { sha256: CKM.SHA256, sha384: CKM.SHA384, sha512: CKM.SHA512 } as const
/** pkcs11js' tag for CK_RSA_PKCS_PSS_PARAMS (its CK_PARAMS_RSA_PSS). */
const CK_PARAMS_RSA_PSS = 5

/** DER of the curve OIDs placed in CKA_EC_PARAMS. */
const EC_PARAMS: Record<string, Buffer> = {
  'P-256': Buffer.from('06082a8648ce3d030107', 'hex'),
  'P-384': Buffer.from('06052b81040022', 'hex'),
  'P-521': Buffer.from('06052b81040023', 'hex'),
  // PKCS#11 3.0 names Edwards curves with a PrintableString; every token reads it.
  Ed25519: Buffer.from('130c656477617264733235353139', 'hex'),
}

/** DigestInfo prefixes of EMSA-PKCS1-v1_5 (RFC 8017 section 9.2, note 1). */
const DIGEST_INFO = {
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
} as const

/** Byte length of one coordinate of each curve. */
const COORDINATE = { 'P-256': 32, 'P-384': 48, 'P-521': 66, Ed25519: 32 } as const

export interface Mechanism {
  mechanism: number
  parameter?: { type: number; hashAlg: number; mgf: number; saltLen: number }
}

export interface AlgMechanisms {
  /** C_GenerateKeyPair mechanism. */
  generate: number
  /** C_Sign mechanism for JWS signatures. */
  sign: Mechanism
  /** C_Sign mechanism for the self-signed certificate (PKCS#1 v1.5 for every RSA key). */
  certificate: Mechanism
  /** Every mechanism the token must offer for this alg. */
  required: number[]
}

export function mechanismsFor(alg: Alg): AlgMechanisms {
  const spec = algSpec(alg)
  if (spec.kty === 'RSA') {
    const hash = spec.hash!
    const pkcs1 = { mechanism: CKM.RSA_PKCS }
    const sign: Mechanism = spec.pss
      ? { mechanism: CKM.RSA_PKCS_PSS, parameter: { type: CK_PARAMS_RSA_PSS, hashAlg: CKM_HASH[hash], mgf: CKG_MGF1[hash], saltLen: signatureOptions(alg).saltLength! } }
      : pkcs1
    return { generate: CKM.RSA_PKCS_KEY_PAIR_GEN, sign, certificate: pkcs1, required: [CKM.RSA_PKCS_KEY_PAIR_GEN, CKM.RSA_PKCS, sign.mechanism] }
  }
  if (spec.kty === 'EC') {
    const ecdsa = { mechanism: CKM.ECDSA }
    return { generate: CKM.EC_KEY_PAIR_GEN, sign: ecdsa, certificate: ecdsa, required: [CKM.EC_KEY_PAIR_GEN, CKM.ECDSA] }
  }
  const eddsa = { mechanism: CKM_EDDSA }
  return { generate: CKM_EC_EDWARDS_KEY_PAIR_GEN, sign: eddsa, certificate: eddsa, required: [CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA] }
}

/** A readable name for the mechanisms a token lacks, for refusals. */
export function mechanismName(mechanism: number): string {
  const names: Record<number, string> = {
    [CKM.RSA_PKCS_KEY_PAIR_GEN]: 'CKM_RSA_PKCS_KEY_PAIR_GEN',
    [CKM.RSA_PKCS]: 'CKM_RSA_PKCS',
    [CKM.RSA_PKCS_PSS]: 'CKM_RSA_PKCS_PSS',
    [CKM.EC_KEY_PAIR_GEN]: 'CKM_EC_KEY_PAIR_GEN',
    [CKM.ECDSA]: 'CKM_ECDSA',
    [CKM_EC_EDWARDS_KEY_PAIR_GEN]: 'CKM_EC_EDWARDS_KEY_PAIR_GEN',
    [CKM_EDDSA]: 'CKM_EDDSA',
  }
  return names[mechanism] ?? `0x${mechanism.toString(16)}`
}

/** CKA_EC_PARAMS for an EC or Edwards alg. */
export function ecParams(alg: Alg): Buffer {
  const crv = algSpec(alg).crv
  const params = crv ? EC_PARAMS[crv] : undefined
  if (!params) throw new TypeError(`${alg} has no curve`)
  return params
}

/**
 * The bytes handed to C_Sign for a signing input (a JWS signing input, or the
 * to-be-signed part of a certificate) under `mechanism`.
 */
export function signedData(alg: Alg, mechanism: Mechanism, input: Buffer): Buffer {
  const spec = algSpec(alg)
  if (spec.kty === 'OKP') return input
  const digest = createHash(spec.hash!).update(input).digest()
  if (mechanism.mechanism === CKM.RSA_PKCS) return Buffer.concat([DIGEST_INFO[spec.hash!], digest])
  return digest
}

/** The signature length a JWS of this alg must have, given the RSA modulus size. */
export function signatureLength(alg: Alg, modulusBytes: number | null): number {
  const spec = algSpec(alg)
  if (spec.kty === 'RSA') return modulusBytes ?? 0
  return spec.signatureLength!
}

/** The public key from CKA_MODULUS and CKA_PUBLIC_EXPONENT. */
export function rsaPublicKey(modulus: Buffer, exponent: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'RSA', n: stripZeros(modulus).toString('base64url'), e: stripZeros(exponent).toString('base64url') }, format: 'jwk' })
}

/** The public key from CKA_EC_POINT (a DER OCTET STRING, or the raw point on some tokens). */
export function ecPublicKey(alg: Alg, ecPoint: Buffer): KeyObject {
  const crv = algSpec(alg).crv!
  const size = COORDINATE[crv]
  const rawLength = crv === 'Ed25519' ? size : 1 + 2 * size
  const point = ecPoint.length === rawLength ? ecPoint : unwrapOctetString(ecPoint)
  if (!point || point.length !== rawLength) throw new TypeError(`the token returned an EC point of unexpected size for ${crv}`)
  if (crv === 'Ed25519') return createPublicKey({ key: { kty: 'OKP', crv, x: point.toString('base64url') }, format: 'jwk' })
  if (point[0] !== 0x04) throw new TypeError('the token returned a compressed EC point')
  const x = point.subarray(1, 1 + size).toString('base64url')
  const y = point.subarray(1 + size).toString('base64url')
  return createPublicKey({ key: { kty: 'EC', crv, x, y }, format: 'jwk' })
}

function stripZeros(value: Buffer): Buffer {
  let start = 0
  while (start < value.length - 1 && value[start] === 0) start++
  return value.subarray(start)
}
