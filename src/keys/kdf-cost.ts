import forge from 'node-forge'
import { InvalidRequest } from '../errors.js'

/**
 * Password-protected key files name their own key-derivation cost, and deriving
 * runs on the event loop: a crafted file asking for a billion iterations would
 * stall every request. So the counts are read from the structure and refused
 * before anything is derived.
 *
 * Where the counts are: PBKDF2-params (RFC 8018 appendix A.2) and PBEParameter
 * (RFC 8018 appendix A.3) are `SEQUENCE { salt OCTET STRING, iterationCount INTEGER, ... }`,
 * pkcs-12PbeParams (RFC 7292 appendix C) `SEQUENCE { salt, iterations }`, MacData
 * (RFC 7292 section 4) `SEQUENCE { mac, macSalt OCTET STRING, iterations INTEGER }`,
 * and scrypt-params (RFC 7914 section 7.1) `SEQUENCE { salt, costParameter, ... }`.
 * In each, the cost is the INTEGER right after the salt. PKCS#12 nests DER inside
 * OCTET STRINGs (AuthenticatedSafe, SafeContents), which are read too.
 */

/**
 * node-forge derives PKCS#12 keys in JavaScript (about 100,000 iterations a
 * second here), OpenSSL derives PEM keys natively (millions a second). Common
 * tools write 2,048 (OpenSSL) to 10,000 (Java keytool).
 */
export const MAX_KDF_ITERATIONS = { pkcs12: 100_000, pem: 1_000_000 } as const

const { Class, Type } = forge.asn1
const MAX_NESTING = 8

/** The largest key-derivation cost named anywhere in `der`; 0 when none is found or it does not parse. */
export function largestKdfCost(der: Buffer): number {
  try {
    return costIn(forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary'))), 0)
  } catch {
    return 0 // not DER: the parser that comes next says so
  }
}

function costIn(node: forge.asn1.Asn1, depth: number): number {
  if (!Array.isArray(node.value)) return depth < MAX_NESTING && isUniversal(node, Type.OCTETSTRING) ? nestedCost(node.value, depth + 1) : 0
  const children = node.value as forge.asn1.Asn1[]
  let largest = 0
  children.forEach((child, index) => {
    const previous = index > 0 ? children[index - 1] : undefined
    if (previous && isUniversal(previous, Type.OCTETSTRING) && isUniversal(child, Type.INTEGER)) largest = Math.max(largest, integerValue(child.value as string))
    largest = Math.max(largest, costIn(child, depth))
  })
  return largest
}

/** DER carried in an OCTET STRING (PKCS#12 content); anything else (ciphertext, salt) costs nothing. */
function nestedCost(bytes: string, depth: number): number {
  if (bytes.length < 2 || bytes.charCodeAt(0) !== 0x30) return 0
  try {
    return costIn(forge.asn1.fromDer(forge.util.createBuffer(bytes), true), depth)
  } catch {
    return 0
  }
}

function isUniversal(node: forge.asn1.Asn1, type: number): boolean {
  return node.tagClass === Class.UNIVERSAL && node.type === type && !node.constructed
}

/** A DER INTEGER's value; anything beyond 2^48 (or negative) is as good as infinite here. */
function integerValue(bytes: string): number {
  if (bytes.length === 0 || bytes.charCodeAt(0) & 0x80) return Number.POSITIVE_INFINITY
  const digits = bytes.replace(/^\0+/, '')
  if (digits.length > 6) return Number.POSITIVE_INFINITY
  let value = 0
  for (let i = 0; i < digits.length; i++) value = value * 256 + digits.charCodeAt(i)
  return value
}

/** Refuses `der` (the file named `what`) when it asks for more than `limit` key-derivation iterations. */
export function checkKdfCost(der: Buffer, limit: number, what: string): void {
  const cost = largestKdfCost(der)
  if (cost > limit) {
    const named = Number.isFinite(cost) ? cost.toLocaleString('en-US') : 'an enormous number of'
    throw new InvalidRequest(`${what} asks for ${named} key-derivation iterations; at most ${limit.toLocaleString('en-US')} are accepted: export it again with a usual count`)
  }
}
