import type { Socket } from 'node:net'
import { TLSSocket } from 'node:tls'

/**
 * Certificate subjects for client binding. A client may be bound to the subject
 * of the certificate it presents over mutual TLS (`certificateSubject`); a request
 * with its token over a connection without that certificate is refused, so a
 * stolen token alone is not enough.
 *
 * A subject is written as a distinguished name, `CN=billing-api,O=Acme`
 * (RFC 4514 style, as `openssl x509 -noout -subject -nameopt RFC2253` prints it);
 * OpenSSL's `CN = billing-api, O = Acme` and `/O=Acme/CN=billing-api` forms are
 * accepted too. Two subjects match when they hold the same attributes with the
 * same values, in any order; attribute names are case-insensitive, values are not.
 */

/** One attribute of a subject: an upper-case type (CN, O, OU...) and its value. */
export type SubjectAttribute = readonly [type: string, value: string]

const ATTRIBUTE_TYPE = /^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$/

/** Longest subject accepted in a binding. */
export const MAX_SUBJECT_LENGTH = 1024

/** Splits on unescaped separators, undoing RFC 4514 escapes (`\,`, `\+`, `\2C`). */
function splitEscaped(text: string, separators: string): string[] {
  const parts: string[] = []
  let current = ''
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!
    if (char === '\\') {
      const hex = text.slice(i + 1, i + 3)
      if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
        current += String.fromCharCode(Number.parseInt(hex, 16))
        i += 2
      } else if (i + 1 < text.length) {
        current += text[++i]
      } else {
        throw new TypeError('a subject may not end with a backslash')
      }
    } else if (separators.includes(char)) {
      parts.push(current)
      current = ''
    } else {
      current += char
    }
  }
  parts.push(current)
  return parts
}

/**
 * Parses a subject into its attributes, in the order written. Throws TypeError
 * with a message fit for the caller when it is not a distinguished name.
 */
export function parseSubject(text: string): SubjectAttribute[] {
  const trimmed = text.trim()
  if (trimmed.length === 0) throw new TypeError('a subject may not be empty')
  if (trimmed.length > MAX_SUBJECT_LENGTH) throw new TypeError(`a subject may hold at most ${MAX_SUBJECT_LENGTH} characters`)
  // OpenSSL's legacy one-line form: /C=US/O=Acme/CN=name
  const slashed = trimmed.startsWith('/')
  const parts = slashed ? splitEscaped(trimmed.slice(1), '/') : splitEscaped(trimmed, ',+')
  return parts.map((part) => {
    const equals = part.indexOf('=')
    if (equals < 0) throw new TypeError(`"${part.trim().slice(0, 40)}" is not TYPE=value`)
    const type = part.slice(0, equals).trim()
    const value = part.slice(equals + 1).trim()
    if (!ATTRIBUTE_TYPE.test(type)) throw new TypeError(`"${type.slice(0, 40)}" is not an attribute type`)
    if (value.length === 0) throw new TypeError(`attribute ${type} has no value`)
    return [type.toUpperCase(), value] as const
  })
}

const escapeValue = (value: string): string => value.replace(/[\\,+"<>;=]/g, (char) => `\\${char}`)

/** The subject written back in one form: `CN=billing-api,O=Acme` (order kept). */
export function formatSubject(attributes: readonly SubjectAttribute[]): string {
  return attributes.map(([type, value]) => `${type}=${escapeValue(value)}`).join(',')
}

/** Normalises a subject for storage; throws TypeError when it does not parse. */
export function normaliseSubject(text: string): string {
  return formatSubject(parseSubject(text))
}

const sortedKeys = (attributes: readonly SubjectAttribute[]): string[] =>
  attributes.map(([type, value]) => `${type}\u0000${value}`).sort()

/** True when both subjects hold the same attributes and values, in any order. */
export function sameSubject(a: readonly SubjectAttribute[], b: readonly SubjectAttribute[]): boolean {
  if (a.length !== b.length) return false
  const left = sortedKeys(a)
  const right = sortedKeys(b)
  return left.every((key, index) => key === right[index])
}

/**
 * The subject of the certificate the peer presented on this connection, when it
 * is a TLS connection whose client certificate the server verified against the
 * client CA; null otherwise (plain HTTP, no certificate, or not verified).
 */
export function peerSubject(socket: Socket | undefined): SubjectAttribute[] | null {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return null
  const certificate = socket.getPeerCertificate()
  if (!certificate || !certificate.subject || Object.keys(certificate.subject).length === 0) return null
  const attributes: SubjectAttribute[] = []
  for (const [type, value] of Object.entries(certificate.subject as unknown as Record<string, string | string[]>)) {
    for (const one of Array.isArray(value) ? value : [value]) attributes.push([type.toUpperCase(), one])
  }
  return attributes
}
