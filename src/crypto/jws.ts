import { sign as cryptoSign, type KeyObject } from 'node:crypto'
import { algSpec, signatureOptions, type Alg } from './algorithms.js'

/**
 * Something that makes JWS signatures with one private key. The software backend
 * holds a decrypted KeyObject; an HSM backend (PKCS#11) signs inside the token.
 */
export interface SigningKey {
  readonly kid: string
  readonly alg: Alg
  /** The JWS signature (RFC 7515 section 5.1) over the ASCII signing input. */
  sign(signingInput: Buffer): Promise<Buffer>
}

/**
 * A SigningKey over a node:crypto private KeyObject, decrypted once and kept.
 *
 * Every signature is made through the callback form of crypto.sign, which runs on
 * the libuv thread pool, so signing uses every core and never blocks the event
 * loop. That matters for RSA (about 0.3 ms a signature) and, measured under load
 * with `npm run bench`, for ECDSA too: signing ES256 inline held the event loop
 * for about twice the time of the signature alone and halved the requests served.
 * ECDSA signatures are IEEE P1363 (raw R||S of fixed length) as RFC 7518 section
 * 3.4 requires, never DER.
 */
export function softwareSigningKey(kid: string, alg: Alg, privateKey: KeyObject): SigningKey {
  const spec = algSpec(alg)
  if (privateKey.type !== 'private') throw new TypeError('a signing key must be private')
  const options = { key: privateKey, ...signatureOptions(alg) }
  const hash = spec.hash
  const offThread = (input: Buffer) =>
    new Promise<Buffer>((resolve, reject) => {
      cryptoSign(hash, input, options, (error, signature) => (error ? reject(error) : resolve(signature)))
    })
  return { kid, alg, sign: offThread }
}

export const base64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url')

/** Protected header of a token Signet signs: only what docs/api.md (POST /v1/sign) allows. */
export interface TokenHeader {
  typ: string
  cty?: string
}

/** Encodes the protected header; `alg` and `kid` always come from the key. */
export function encodeHeader(key: Pick<SigningKey, 'alg' | 'kid'>, header: TokenHeader): string {
  const full: Record<string, string> = { alg: key.alg, typ: header.typ, kid: key.kid }
  if (header.cty !== undefined) full.cty = header.cty
  return base64url(JSON.stringify(full))
}

/** Signs a compact JWS: BASE64URL(header) . BASE64URL(payload) . BASE64URL(signature). */
export async function signCompact(key: SigningKey, encodedHeader: string, payloadJson: string): Promise<string> {
  const signingInput = `${encodedHeader}.${base64url(payloadJson)}`
  const signature = await key.sign(Buffer.from(signingInput, 'ascii'))
  return `${signingInput}.${signature.toString('base64url')}`
}

