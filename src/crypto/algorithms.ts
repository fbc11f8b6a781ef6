import { constants } from 'node:crypto'

/**
 * The JWS algorithms Signet signs with (RFC 7518 section 3, RFC 8037 for EdDSA) and
 * what each needs from node:crypto.
 */
export const ALGORITHMS = [
  'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512',
  'EdDSA',
] as const

export type Alg = (typeof ALGORITHMS)[number]

export const RSA_BITS = [2048, 3072, 4096] as const
export type RsaBits = (typeof RSA_BITS)[number]

export interface AlgSpec {
  alg: Alg
  /** JWK key type. */
  kty: 'RSA' | 'EC' | 'OKP'
  /** Digest for crypto.sign; null for EdDSA, which hashes internally. */
  hash: 'sha256' | 'sha384' | 'sha512' | null
  /** RSASSA-PSS instead of PKCS#1 v1.5. */
  pss: boolean
  /** JWK `crv` and the node:crypto curve name for EC/OKP keys. */
  crv?: 'P-256' | 'P-384' | 'P-521' | 'Ed25519'
  namedCurve?: 'prime256v1' | 'secp384r1' | 'secp521r1'
  /** Fixed signature length in bytes for ECDSA (R||S) and EdDSA. */
  signatureLength?: number
}

const table: Record<Alg, AlgSpec> = {
  RS256: { alg: 'RS256', kty: 'RSA', hash: 'sha256', pss: false },
  RS384: { alg: 'RS384', kty: 'RSA', hash: 'sha384', pss: false },
  RS512: { alg: 'RS512', kty: 'RSA', hash: 'sha512', pss: false },
  PS256: { alg: 'PS256', kty: 'RSA', hash: 'sha256', pss: true },
  PS384: { alg: 'PS384', kty: 'RSA', hash: 'sha384', pss: true },
  PS512: { alg: 'PS512', kty: 'RSA', hash: 'sha512', pss: true },
  ES256: { alg: 'ES256', kty: 'EC', hash: 'sha256', pss: false, crv: 'P-256', namedCurve: 'prime256v1', signatureLength: 64 },
  ES384: { alg: 'ES384', kty: 'EC', hash: 'sha384', pss: false, crv: 'P-384', namedCurve: 'secp384r1', signatureLength: 96 },
  ES512: { alg: 'ES512', kty: 'EC', hash: 'sha512', pss: false, crv: 'P-521', namedCurve: 'secp521r1', signatureLength: 132 },
  EdDSA: { alg: 'EdDSA', kty: 'OKP', hash: null, pss: false, crv: 'Ed25519', signatureLength: 64 },
}

export function isAlg(value: unknown): value is Alg {
  return typeof value === 'string' && (ALGORITHMS as readonly string[]).includes(value)
}

export function algSpec(alg: Alg): AlgSpec {
  return table[alg]
}

export function isRsa(alg: Alg): boolean {
  return table[alg].kty === 'RSA'
}

/** Byte length of a SHA-2 digest, the PSS salt length RFC 7518 section 3.5 requires. */
export function hashLength(hash: 'sha256' | 'sha384' | 'sha512'): number {
  return hash === 'sha256' ? 32 : hash === 'sha384' ? 48 : 64
}

/** What node:crypto's sign and verify take besides the key, for one algorithm. */
export interface SignatureOptions {
  /** ECDSA signatures are raw R||S of fixed length (RFC 7518 section 3.4), never DER. */
  dsaEncoding: 'ieee-p1363'
  /** PS*: RSASSA-PSS with MGF1 of the same hash and a salt as long as the digest (RFC 7518 section 3.5). */
  padding?: number
  saltLength?: number
}

const signatureOptionsOf = new Map<Alg, SignatureOptions>(ALGORITHMS.map((alg) => {
  const spec = table[alg]
  return [alg, spec.pss && spec.hash
    ? { dsaEncoding: 'ieee-p1363', padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hashLength(spec.hash) }
    : { dsaEncoding: 'ieee-p1363' }]
}))

/** The node:crypto options of `alg`'s signatures: the one place PSS padding and salt length are chosen. */
export function signatureOptions(alg: Alg): SignatureOptions {
  return signatureOptionsOf.get(alg)!
}
