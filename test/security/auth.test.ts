import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Authenticator } from '../../src/auth/authenticate.js'
import { hashToken } from '../../src/auth/tokens.js'
import { loadConfig } from '../../src/config.js'
import type { Client } from '../../src/keys/model.js'
import { createHarness, type Harness } from '../helpers/harness.js'
import { expectProblem } from './helpers.js'

/** Every near miss of a token an attacker might try. */
function nearMisses(token: string): [string, string][] {
  const flip = (index: number) => {
    const chars = [...token]
    const code = chars[index]!.charCodeAt(0)
    chars[index] = String.fromCharCode(code === 0x41 ? 0x42 : 0x41) // A<->B, anything else -> A
    return chars.join('')
  }
  return [
    ['the first byte changed', flip(0)],
    ['the first secret byte changed', flip(7)],
    ['a middle byte changed', flip(Math.floor(token.length / 2))],
    ['the last byte changed', flip(token.length - 1)],
    ['the case of one letter changed', token.replace(/[a-z]/, (c) => c.toUpperCase())],
    ['truncated by one byte', token.slice(0, -1)],
    ['truncated to half', token.slice(0, token.length / 2)],
    ['only the prefix', token.slice(0, 7)],
    ['prefixed', `x${token}`],
    ['suffixed', `${token}x`],
    ['doubled', `${token}${token}`],
    ['with a trailing NUL-like byte', `${token}\u007f`],
  ]
}

describe('authentication attacks', () => {
  let h: Harness
  let signer: { id: string; token: string }

  beforeAll(async () => {
    // Failure counting is tested below with its own limit; here every attempt is answered.
    h = await createHarness({ env: { SIGNET_AUTH_FAILURE_LIMIT: '0' } })
    signer = await h.createClient({ scopes: ['sign'] })
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  const signWith = (authorization: string | undefined) =>
    h.request('POST', '/v1/sign', { body: { claims: {} }, headers: authorization === undefined ? {} : { authorization } })

  it('the right token signs (control)', async () => {
    expect((await signWith(`Bearer ${signer.token}`)).statusCode).toBe(200)
    expect((await signWith(`bearer ${signer.token}`)).statusCode).toBe(200) // the scheme is case-insensitive (RFC 9110 section 11.1)
  })

  it('a client token that differs in one byte, or is truncated, prefixed or suffixed, gets 401', async () => {
    for (const [label, guess] of nearMisses(signer.token)) {
      expect(guess).not.toBe(signer.token)
      const response = await signWith(`Bearer ${guess}`)
      expect(response.statusCode, label).toBe(401)
      expectProblem(response, 401, 'unauthorized')
    }
  })

  it('the admin token that differs in one byte, or is truncated, prefixed or suffixed, gets 401', async () => {
    expect((await h.request('GET', '/v1/admin/keysets', { token: h.adminToken })).statusCode).toBe(200)
    for (const [label, guess] of nearMisses(h.adminToken)) {
      const response = await h.request('GET', '/v1/admin/keysets', { headers: { authorization: `Bearer ${guess}` } })
      expect(response.statusCode, label).toBe(401)
    }
  })

  it('an empty or missing token gets 401', async () => {
    for (const authorization of [undefined, '', 'Bearer', 'Bearer ', 'Bearer    ', ' ', 'Bearer ""']) {
      expectProblem(await signWith(authorization), 401, 'unauthorized')
    }
  })

  it('schemes other than Bearer get 401, even carrying the right token', async () => {
    const token = signer.token
    for (const authorization of [
      `Basic ${Buffer.from(`${token}:`).toString('base64')}`,
      `Basic ${Buffer.from(`client:${token}`).toString('base64')}`,
      `Token ${token}`,
      `Digest username="x", response="${token}"`,
      `Bearer:${token}`,
      `Bearer\t${token}`,
      `Bearer${token}`,
      `${token}`,
      `Bearer ${token} extra`,
      `Bearer ${token},Bearer ${token}`,
    ]) {
      expectProblem(await signWith(authorization), 401, 'unauthorized')
    }
    // A token anywhere but the Authorization header is not looked at.
    // (The query string is not logged with its values, so the mistake leaks nothing: afterAll checks.)
    expectProblem(await h.request('POST', `/v1/sign?access_token=${token}`, { body: { claims: {} } }), 401, 'unauthorized')
    expectProblem(await h.request('POST', '/v1/sign', { body: { claims: {} }, headers: { cookie: `token=${token}`, 'x-api-key': token } }), 401, 'unauthorized')
  })

  it('a revoked client token gets 401 at once, and so does every near miss of it', async () => {
    const client = await h.createClient({ scopes: ['sign'] })
    expect((await signWith(`Bearer ${client.token}`)).statusCode).toBe(200)
    expect((await h.admin('DELETE', `/v1/admin/clients/${client.id}`)).statusCode).toBe(200)
    expectProblem(await signWith(`Bearer ${client.token}`), 401, 'unauthorized')
  })
})

describe('token comparison', () => {
  const client: Client = {
    id: 'c1', name: 'c', keysets: '*', scopes: ['sign'], audiences: null, maxTtl: null,
    tokenHash: hashToken('signet_the-right-token'), createdAt: 0, revokedAt: null,
  }

  it('client tokens are looked up by their SHA-256, never by the token text', async () => {
    const seen: string[] = []
    const auth = new Authenticator({ adminToken: null, failureLimit: 0, clientByTokenHash: (hash) => (seen.push(hash), hash === client.tokenHash ? client : undefined) })
    await expect(auth.authenticate('Bearer signet_the-right-token', '1.1.1.1')).resolves.toMatchObject({ kind: 'client' })
    await expect(auth.authenticate('Bearer signet_the-right-tokeX', '1.1.1.1')).rejects.toMatchObject({ code: 'unauthorized' })
    await expect(auth.authenticate('Bearer signet_the-right-toke', '1.1.1.1')).rejects.toMatchObject({ code: 'unauthorized' })
    // Each lookup key is a 256-bit hash: a near miss shares no prefix with the right key,
    // so the time a map lookup takes says nothing about how close a guess was.
    expect(seen).toEqual([hashToken('signet_the-right-token'), hashToken('signet_the-right-tokeX'), hashToken('signet_the-right-toke')])
    for (const key of seen) expect(key).toMatch(/^[0-9a-f]{64}$/)
    expect(seen[1]!.slice(0, 8)).not.toBe(seen[0]!.slice(0, 8))
  })
})

describe('failed-authentication rate limit', () => {
  let h: Harness
  let signer: string

  beforeAll(async () => {
    h = await createHarness({ env: { SIGNET_AUTH_FAILURE_LIMIT: '20' } })
    signer = (await h.createClient({ scopes: ['sign'] })).token
  })
  afterAll(async () => {
    h.watch.assertClean()
    await h.close()
  })

  const attempt = (remoteAddress: string, token: string, headers: Record<string, string> = {}) =>
    h.app.inject({
      method: 'POST', url: '/v1/sign', remoteAddress,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
      payload: '{"claims":{}}',
    })

  it('1,000 failed attempts from one address: 20 get 401, the rest 429 with Retry-After, while other clients sign as usual', async () => {
    const counts = { 401: 0, 429: 0 } as Record<number, number>
    const others: number[] = []
    for (let i = 0; i < 1000; i++) {
      const response = await attempt('203.0.113.7', `signet_guess-${i}`)
      counts[response.statusCode] = (counts[response.statusCode] ?? 0) + 1
      if (response.statusCode === 429) {
        expect(Number(response.headers['retry-after'])).toBeGreaterThanOrEqual(1)
        expect(Number(response.headers['retry-after'])).toBeLessThanOrEqual(60)
        expect(response.json().code).toBe('rate_limited')
      }
      // Every 50 guesses, a legitimate client elsewhere signs.
      if (i % 50 === 0) others.push((await attempt(`198.51.100.${(i / 50) % 250}`, signer)).statusCode)
    }
    expect(counts).toEqual({ 401: 20, 429: 980 })
    expect(others.every((status) => status === 200)).toBe(true)
    // A valid token from that address is still served: app servers behind one NAT must
    // not be locked out by one of them guessing (src/auth/authenticate.ts).
    expect((await attempt('203.0.113.7', signer)).statusCode).toBe(200)
    expect((await attempt('203.0.113.7', 'signet_guess-again')).statusCode).toBe(429)
    // Another address that failed a few times is not limited.
    for (let i = 0; i < 5; i++) expect((await attempt('192.0.2.1', 'signet_wrong')).statusCode).toBe(401)
    expect((await attempt('192.0.2.1', signer)).statusCode).toBe(200)
  })

  it('a spoofed X-Forwarded-For does not escape the limit (the proxy is not trusted)', async () => {
    for (const forwarded of ['1.2.3.4', '5.6.7.8', '203.0.113.8']) {
      expect((await attempt('203.0.113.7', 'signet_guess', { 'x-forwarded-for': forwarded, 'x-real-ip': forwarded })).statusCode).toBe(429)
    }
  })
})

describe('per-client sign rate limit', () => {
  it('counts tokens, not requests: a batch of n uses n points', async () => {
    const limited = await createHarness({ env: { SIGNET_SIGN_RATE_LIMIT: '999' } })
    try {
      const token = (await limited.createClient({ scopes: ['sign'] })).token
      const batch = (size: number) => limited.request('POST', '/v1/sign/batch', { token, body: { items: Array.from({ length: size }, () => ({ claims: {} })) } })
      // 1,000 tokens in one request are over a limit of 999 per second, whatever the timing.
      const refused = await batch(1000)
      expectProblem(refused, 429, 'rate_limited')
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1)
      const other = await createHarness({ env: { SIGNET_SIGN_RATE_LIMIT: '1000' } })
      try {
        const own = (await other.createClient({ scopes: ['sign'] })).token
        const accepted = await other.request('POST', '/v1/sign/batch', { token: own, body: { items: Array.from({ length: 1000 }, () => ({ claims: {} })) } })
        expect(accepted.statusCode).toBe(200)
        expect(accepted.json().results).toHaveLength(1000)
      } finally {
        await other.close()
      }
    } finally {
      await limited.close()
    }
  })

  it('SIGNET_SIGN_RATE_LIMIT caps each client on its own; 0 turns it off', async () => {
    const limited = await createHarness({ env: { SIGNET_SIGN_RATE_LIMIT: '5' } })
    try {
      const [a, b] = [(await limited.createClient({ scopes: ['sign'] })).token, (await limited.createClient({ scopes: ['sign'] })).token]
      const burst = (token: string) => Promise.all(Array.from({ length: 20 }, () => limited.request('POST', '/v1/sign', { token, body: { claims: {} } })))
      const [fromA, fromB] = await Promise.all([burst(a), burst(b)])
      for (const answers of [fromA, fromB]) {
        const ok = answers.filter((r) => r.statusCode === 200).length
        const refused = answers.filter((r) => r.statusCode === 429)
        // 5 per second each; a burst may straddle a second boundary, never more.
        expect(ok).toBeGreaterThanOrEqual(5)
        expect(ok).toBeLessThanOrEqual(10)
        expect(refused.length).toBe(20 - ok)
        for (const response of refused) {
          expectProblem(response, 429, 'rate_limited')
          expect(Number(response.headers['retry-after'])).toBeGreaterThanOrEqual(1)
        }
      }
      // Batches count against the same budget.
      const batch = await limited.request('POST', '/v1/sign/batch', { token: a, body: { items: [{ claims: {} }] } })
      expect([200, 429]).toContain(batch.statusCode)
      limited.watch.assertClean()
    } finally {
      await limited.close()
    }

    const unlimited = await createHarness()
    try {
      expect(unlimited.config.signRateLimit).toBe(0)
      const token = (await unlimited.createClient({ scopes: ['sign'] })).token
      const answers = await Promise.all(Array.from({ length: 50 }, () => unlimited.request('POST', '/v1/sign', { token, body: { claims: {} } })))
      expect(answers.every((r) => r.statusCode === 200)).toBe(true)
    } finally {
      await unlimited.close()
    }
  })

  it('a malformed limit stops the start naming the variable', () => {
    for (const value of ['-1', 'ten', '1.5']) {
      expect(() => loadConfig({ SIGNET_SIGN_RATE_LIMIT: value })).toThrow(/SIGNET_SIGN_RATE_LIMIT/)
      expect(() => loadConfig({ SIGNET_AUTH_FAILURE_LIMIT: value })).toThrow(/SIGNET_AUTH_FAILURE_LIMIT/)
    }
  })
})
