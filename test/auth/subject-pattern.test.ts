import { describe, expect, it } from 'vitest'
import { compileSubjectPattern } from '../../src/auth/subject-pattern.js'

const matches = (pattern: string, subject: string) => compileSubjectPattern(pattern).matches(subject)

describe('subject patterns', () => {
  it('without * a pattern matches only itself', () => {
    expect(matches('user-42', 'user-42')).toBe(true)
    expect(matches('user-42', 'user-420')).toBe(false)
    expect(matches('user-42', 'xuser-42')).toBe(false)
    expect(matches('user-42', 'USER-42')).toBe(false)
    expect(matches('user-42', '')).toBe(false)
  })

  it('* at the end, the start, in the middle, or alone matches any run, the empty one included', () => {
    expect(matches('user-*', 'user-42')).toBe(true)
    expect(matches('user-*', 'user-')).toBe(true)
    expect(matches('user-*', 'use-42')).toBe(false)
    expect(matches('*@acme.example', 'ann@acme.example')).toBe(true)
    expect(matches('*@acme.example', 'ann@acme.example.evil')).toBe(false)
    expect(matches('tenant-*-user', 'tenant-7-user')).toBe(true)
    expect(matches('tenant-*-user', 'tenant--user')).toBe(true)
    expect(matches('tenant-*-user', 'tenant-7-users')).toBe(false)
    expect(matches('tenant-*-user', 'tenant-user')).toBe(false) // head and tail may not overlap
    expect(matches('*', '')).toBe(true)
    expect(matches('*', 'anything at all')).toBe(true)
    expect(matches('a**b', 'ab')).toBe(true)
  })

  it('several * find their pieces in order, whatever comes between', () => {
    expect(matches('a*b*c', 'aXbYc')).toBe(true)
    expect(matches('a*b*c', 'abc')).toBe(true)
    expect(matches('a*b*c', 'acb')).toBe(false)
    expect(matches('*ab*ab*', 'xabyab')).toBe(true)
    expect(matches('*ab*ab*', 'xaby')).toBe(false)
    expect(matches('a*ba', 'aba')).toBe(true)
    expect(matches('ab*ba', 'aba')).toBe(false)
  })

  it('regular-expression characters are literal', () => {
    expect(matches('svc.billing', 'svc.billing')).toBe(true)
    expect(matches('svc.billing', 'svcXbilling')).toBe(false)
    expect(matches('a+', 'aa')).toBe(false)
    expect(matches('a+', 'a+')).toBe(true)
    expect(matches('(x|y)', 'x')).toBe(false)
    expect(matches('(x|y)', '(x|y)')).toBe(true)
    expect(matches('[a-z]?', 'b')).toBe(false)
    expect(matches('^user$', '^user$')).toBe(true)
    expect(matches('\\d*', '\\d42')).toBe(true)
    expect(matches('\\d*', '42')).toBe(false)
    expect(matches('.*', 'anything')).toBe(false)
    expect(matches('.*', '.anything')).toBe(true)
  })

  it('a pattern built to make a backtracking matcher explode answers at once', () => {
    // (a*)*b-style blow-up: many stars against a long subject that almost matches.
    const pattern = `${'a*'.repeat(100)}b`.slice(0, 256)
    const subject = 'a'.repeat(16_000)
    expect(matches(pattern, subject)).toBe(false)
    expect(matches(pattern, `${subject}b`)).toBe(true)
  })
})
