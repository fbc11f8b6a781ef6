import { describe, expect, it } from 'vitest'
import { formatSubject, normaliseSubject, parseSubject, peerSubject, sameSubject } from '../../src/tls/subject.js'

describe('certificate subjects', () => {
  it('parse the RFC 4514, OpenSSL and slash forms alike', () => {
    const expected = [['CN', 'billing-api'], ['O', 'Acme']]
    expect(parseSubject('CN=billing-api,O=Acme')).toEqual(expected)
    expect(parseSubject('CN = billing-api, O = Acme')).toEqual(expected)
    expect(parseSubject('cn=billing-api,o=Acme')).toEqual(expected)
    expect(parseSubject('/CN=billing-api/O=Acme')).toEqual(expected)
    expect(parseSubject('CN=billing-api+O=Acme')).toEqual(expected)
  })

  it('undo escapes and write them back', () => {
    expect(parseSubject('CN=Acme\\, Inc.,O=x\\2By')).toEqual([['CN', 'Acme, Inc.'], ['O', 'x+y']])
    expect(normaliseSubject('CN = Acme\\, Inc. , O = R&D')).toBe('CN=Acme\\, Inc.,O=R&D')
    expect(parseSubject(formatSubject([['CN', 'a,b=c+d\\e"']]))).toEqual([['CN', 'a,b=c+d\\e"']])
  })

  it('match the same attributes in any order, names in any case, values exactly', () => {
    expect(sameSubject(parseSubject('CN=a,O=b'), parseSubject('o=b, cn=a'))).toBe(true)
    expect(sameSubject(parseSubject('CN=a,O=b'), parseSubject('CN=A,O=b'))).toBe(false)
    expect(sameSubject(parseSubject('CN=a'), parseSubject('CN=a,O=b'))).toBe(false)
    expect(sameSubject(parseSubject('CN=a,O=b'), parseSubject('CN=a'))).toBe(false)
    expect(sameSubject(parseSubject('OU=x,OU=y'), parseSubject('OU=y,OU=x'))).toBe(true)
    expect(sameSubject(parseSubject('OU=x,OU=x'), parseSubject('OU=x,OU=y'))).toBe(false)
  })

  it('refuse what is not a distinguished name', () => {
    for (const bad of ['', '   ', 'billing', 'CN=', '=x', 'C N=x', 'CN=x,', 'CN=x\\', `CN=${'x'.repeat(1100)}`]) {
      expect(() => parseSubject(bad), bad).toThrow(TypeError)
    }
  })

  it('read no subject from a connection that is not verified mutual TLS', () => {
    expect(peerSubject(undefined)).toBeNull()
    expect(peerSubject({} as never)).toBeNull()
  })
})
