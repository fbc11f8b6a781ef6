/**
 * The few DER shapes the PKCS#11 backend reads and writes: the OCTET STRING that
 * wraps CKA_EC_POINT, and ECDSA signatures, which PKCS#11 gives as raw R||S while
 * X.509 wants an ECDSA-Sig-Value SEQUENCE (RFC 5480 section 2.2.3).
 */

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length])
  const bytes: number[] = []
  for (let rest = length; rest > 0; rest >>= 8) bytes.unshift(rest & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

function tlv(tag: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(value.length), value])
}

/** A non-negative big-endian integer as a DER INTEGER. */
function derInteger(unsigned: Buffer): Buffer {
  let start = 0
  while (start < unsigned.length - 1 && unsigned[start] === 0) start++
  let body = unsigned.subarray(start)
  if (body[0]! & 0x80) body = Buffer.concat([Buffer.from([0]), body])
  return tlv(0x02, body)
}

/** Raw R||S (two halves of equal length) to a DER ECDSA-Sig-Value. */
export function rawEcdsaToDer(raw: Buffer): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0) throw new TypeError('an ECDSA signature is R||S of even length')
  const half = raw.length / 2
  return tlv(0x30, Buffer.concat([derInteger(raw.subarray(0, half)), derInteger(raw.subarray(half))]))
}

/**
 * The content of a DER OCTET STRING, or null when `value` is not exactly one.
 * CKA_EC_POINT is specified as a DER OCTET STRING, but some tokens return the raw
 * point; the caller falls back to the value as it is.
 */
export function unwrapOctetString(value: Buffer): Buffer | null {
  if (value.length < 2 || value[0] !== 0x04) return null
  let length = value[1]!
  let offset = 2
  if (length & 0x80) {
    const count = length & 0x7f
    if (count === 0 || count > 2 || value.length < 2 + count) return null
    length = 0
    for (let i = 0; i < count; i++) length = (length << 8) | value[2 + i]!
    offset = 2 + count
  }
  return offset + length === value.length ? value.subarray(offset) : null
}
