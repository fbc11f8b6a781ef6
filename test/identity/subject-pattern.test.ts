import { describe, expect, it } from 'vitest'
import { IdentityDirectory } from '../../src/identity/directory.js'
import { matchesSubject } from '../../src/identity/subject-pattern.js'
import type { Client, Issuer } from '../../src/keys/model.js'

describe('subject patterns', () => {
  it('* matches any run of characters, everything else only itself', () => {
    const cases: [string, string, boolean][] = [
      ['system:serviceaccount:billing:api', 'system:serviceaccount:billing:api', true],
      ['system:serviceaccount:billing:api', 'system:serviceaccount:billing:apix', false],
      ['system:serviceaccount:billing:*', 'system:serviceaccount:billing:api', true],
      ['system:serviceaccount:billing:*', 'system:serviceaccount:billing:', true],
      ['system:serviceaccount:billing:*', 'system:serviceaccount:billingx:api', false],
      ['spiffe://example.org/ns/*/sa/db', 'spiffe://example.org/ns/a/b/sa/db', true],
      ['spiffe://example.org/ns/*/sa/db', 'spiffe://example.org/ns/a/sa/dbx', false],
      ['repo:acme/*:ref:refs/heads/main', 'repo:acme/billing:ref:refs/heads/main', true],
      ['repo:acme/*:ref:refs/heads/main', 'repo:acme/billing:ref:refs/heads/mainx', false],
      ['a.c', 'abc', false], // no regular-expression meaning
      ['a?c', 'abc', false],
      ['[ab]', 'a', false],
      ['a**b', 'ab', true],
      ['*a*a*a*a*b', 'a'.repeat(2000), false], // linear-ish, no catastrophic backtracking
    ]
    for (const [pattern, subject, expected] of cases) expect(matchesSubject(pattern, subject), `${pattern} ~ ${subject}`).toBe(expected)
  })
})

describe('bindings', () => {
  const issuer = { name: 'spire', issuer: 'https://spire' } as Issuer
  const client = (id: string, subject: string, revoked = false, issuerName = 'spire') =>
    ({ id, revokedAt: revoked ? 1 : null, identity: { issuer: issuerName, subject } }) as Client
  const directory = IdentityDirectory.from([issuer], [
    client('pattern', 'spiffe://x/ns/billing/*'),
    client('exact', 'spiffe://x/ns/billing/sa/api'),
    client('shared', 'spiffe://x/ns/shared/*'),
    client('db', 'spiffe://x/ns/*/sa/db'),
    client('revoked', 'spiffe://x/ns/gone/*', true),
    client('elsewhere', 'spiffe://x/ns/other/*', false, 'deleted-issuer'),
  ])
  const bound = (subject: string) => {
    const result = directory.bind('spire', subject)
    return 'client' in result ? result.client.id : result.refused
  }

  it('an exact binding wins; one pattern binds; two patterns bind none; revoked clients and unknown issuers bind nothing', () => {
    expect(bound('spiffe://x/ns/billing/sa/api')).toBe('exact')
    expect(bound('spiffe://x/ns/billing/sa/worker')).toBe('pattern')
    expect(bound('spiffe://x/ns/shared/sa/db')).toBe('ambiguous_client')
    expect(bound('spiffe://x/ns/shared/sa/web')).toBe('shared')
    expect(bound('spiffe://x/ns/gone/sa/a')).toBe('no_client')
    expect(bound('spiffe://x/ns/other/sa/a')).toBe('no_client')
    expect(directory.bind('deleted-issuer', 'spiffe://x/ns/other/sa/a')).toEqual({ refused: 'no_client' })
  })
})
