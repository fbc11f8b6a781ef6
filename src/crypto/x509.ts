import { randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto'
import forge from 'node-forge'
import { algSpec, type Alg } from './algorithms.js'

/**
 * A self-signed X.509 v3 certificate for a signing key, published as `x5c` (RFC 7517
 * section 4.7). node-forge can sign certificates with RSA keys only, so the
 * certificate is assembled with forge's ASN.1 encoder and signed with node:crypto,
 * which works for RSA, ECDSA and Ed25519 alike.
 */
const { asn1 } = forge
const { Class, Type } = asn1

const OID = {
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  sha384WithRSA: '1.2.840.113549.1.1.12',
  sha512WithRSA: '1.2.840.113549.1.1.13',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecdsaWithSha512: '1.2.840.10045.4.3.4',
  ed25519: '1.3.101.112',
}

type Asn1 = forge.asn1.Asn1

const seq = (items: Asn1[]): Asn1 => asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, items)
const oid = (id: string): Asn1 => asn1.create(Class.UNIVERSAL, Type.OID, false, asn1.oidToDer(id).getBytes())
const bin = (buffer: Buffer): string => buffer.toString('binary')

function time(date: Date): Asn1 {
  return date.getUTCFullYear() < 2050
    ? asn1.create(Class.UNIVERSAL, Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(Class.UNIVERSAL, Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date))
}

function name(commonName: string): Asn1 {
  const attribute = seq([oid(OID.commonName), asn1.create(Class.UNIVERSAL, Type.UTF8, false, forge.util.encodeUtf8(commonName))])
  return seq([asn1.create(Class.UNIVERSAL, Type.SET, true, [attribute])])
}

/** The certificate's own signature: the key's hash, PKCS#1 v1.5 for every RSA key. */
function signatureAlgorithm(alg: Alg): { identifier: Asn1; hash: string | null } {
  const spec = algSpec(alg)
  if (spec.kty === 'OKP') return { identifier: seq([oid(OID.ed25519)]), hash: null }
  const hash = spec.hash ?? 'sha256'
  if (spec.kty === 'EC') {
    const id = { sha256: OID.ecdsaWithSha256, sha384: OID.ecdsaWithSha384, sha512: OID.ecdsaWithSha512 }[hash]
    return { identifier: seq([oid(id)]), hash }
  }
  const id = { sha256: OID.sha256WithRSA, sha384: OID.sha384WithRSA, sha512: OID.sha512WithRSA }[hash]
  return { identifier: seq([oid(id), asn1.create(Class.UNIVERSAL, Type.NULL, false, '')]), hash }
}

function extensions(): Asn1 {
  const basicConstraints = seq([
    oid(OID.basicConstraints),
    asn1.create(Class.UNIVERSAL, Type.BOOLEAN, false, String.fromCharCode(0xff)),
    asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, asn1.toDer(seq([])).getBytes()),
  ])
  // keyUsage = digitalSignature: a BIT STRING with 7 unused bits and the first bit set.
  const keyUsageBits = asn1.create(Class.UNIVERSAL, Type.BITSTRING, false, String.fromCharCode(7, 0x80))
  const keyUsage = seq([
    oid(OID.keyUsage),
    asn1.create(Class.UNIVERSAL, Type.BOOLEAN, false, String.fromCharCode(0xff)),
    asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, asn1.toDer(keyUsageBits).getBytes()),
  ])
  return asn1.create(Class.CONTEXT_SPECIFIC, 3, true, [seq([basicConstraints, keyUsage])])
}

/** Signs the to-be-signed bytes with the certificate's own private key (DER for ECDSA). */
export type TbsSigner = (tbs: Buffer, hash: string | null) => Promise<Buffer> | Buffer

/** A TbsSigner over a node:crypto private key. */
export const keyObjectTbsSigner = (privateKey: KeyObject): TbsSigner => (tbs, hash) => cryptoSign(hash, tbs, privateKey)

export interface CertificateOptions {
  alg: Alg
  sign: TbsSigner
  publicKey: KeyObject
  commonName: string
  notBefore: Date
  notAfter: Date
}

/** DER bytes of a self-signed certificate for the key pair. */
export async function selfSignedCertificate(options: CertificateOptions): Promise<Buffer> {
  const serial = randomBytes(16)
  serial[0] = (serial[0]! & 0x7f) | 0x01 // positive and without a leading zero byte
  const { identifier, hash } = signatureAlgorithm(options.alg)
  const spki = asn1.fromDer(forge.util.createBuffer(bin(options.publicKey.export({ type: 'spki', format: 'der' }))))
  const subject = name(options.commonName)
  const tbs = seq([
    asn1.create(Class.CONTEXT_SPECIFIC, 0, true, [asn1.create(Class.UNIVERSAL, Type.INTEGER, false, String.fromCharCode(2))]),
    asn1.create(Class.UNIVERSAL, Type.INTEGER, false, bin(serial)),
    identifier,
    subject,
    seq([time(options.notBefore), time(options.notAfter)]),
    name(options.commonName),
    spki,
    extensions(),
  ])
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary')
  const signature = await options.sign(tbsDer, hash)
  const certificate = seq([
    tbs,
    signatureAlgorithm(options.alg).identifier,
    asn1.create(Class.UNIVERSAL, Type.BITSTRING, false, String.fromCharCode(0) + bin(signature)),
  ])
  return Buffer.from(asn1.toDer(certificate).getBytes(), 'binary')
}
