import { createHash } from 'node:crypto'
import { describe, expect, it, vi } from 'vitest'

/**
 * Token comparison is constant-time, shown on the code path rather than by timing
 * (timing assertions are flaky on shared machines): node:crypto's timingSafeEqual
 * is wrapped to record its arguments, and the admin token, the one secret held to
 * compare against, must be compared as SHA-256 digests through it. Client tokens
 * are never compared: they are looked up by their digest.
 */
const spy = vi.hoisted(() => ({ calls: [] as [Buffer, Buffer][] }))

vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>()
  const timingSafeEqual = (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
    spy.calls.push([Buffer.from(a as Uint8Array), Buffer.from(b as Uint8Array)])
    return actual.timingSafeEqual(a, b)
  }
  return { ...actual, timingSafeEqual, default: { ...actual, timingSafeEqual } }
})

// Files share a worker's modules (vitest.config.ts, isolate: false): authenticate.js may
// already be loaded with the real node:crypto, so it is loaded again under the mock.
vi.resetModules()
const { Authenticator } = await import('../../src/auth/authenticate.js')
const { hashToken } = await import('../../src/auth/tokens.js')

const sha256 = (text: string) => createHash('sha256').update(text).digest()
const ADMIN = 'admin-token-of-at-least-thirty-two-characters'

describe('constant-time token comparison', () => {
  const client = {
    id: 'c1', name: 'c', keysets: '*' as const, scopes: ['sign' as const], audiences: null, maxTtl: null,
    tokenHash: hashToken('signet_client-token'), createdAt: 0, revokedAt: null,
  }
  const auth = new Authenticator({
    adminToken: ADMIN,
    failureLimit: 0,
    clientByTokenHash: (hash) => (hash === client.tokenHash ? client : undefined),
  })

  it('compares the admin token by its SHA-256 with timingSafeEqual, for right and wrong guesses alike', async () => {
    for (const guess of [ADMIN, `${ADMIN.slice(0, -1)}X`, ADMIN.slice(0, 10), 'x']) {
      spy.calls.length = 0
      await auth.authenticate(`Bearer ${guess}`, '10.0.0.1').catch(() => null)
      expect(spy.calls.length, guess).toBeGreaterThanOrEqual(1)
      const [left, right] = spy.calls[0]!
      // Both sides are 32-byte digests: the guess's length and prefix never meet the secret.
      expect(left.length).toBe(32)
      expect(right.length).toBe(32)
      expect(left.equals(sha256(guess))).toBe(true)
      expect(right.equals(sha256(ADMIN))).toBe(true)
    }
  })

  it('looks a client up by the SHA-256 of the token it presents, never by the token itself', async () => {
    // A map lookup keyed by the digest decides which client it is: whatever its timing
    // says, it says it about a hash of the guess, never about how much of a token was right.
    const looked: string[] = []
    const byHash = new Authenticator({
      adminToken: ADMIN,
      failureLimit: 0,
      clientByTokenHash: (hash) => {
        looked.push(hash)
        return hash === client.tokenHash ? client : undefined
      },
    })
    await expect(byHash.authenticate('Bearer signet_client-token', '10.0.0.1')).resolves.toMatchObject({ kind: 'client', client: { id: 'c1' } })
    await expect(byHash.authenticate('Bearer signet_client-tokeX', '10.0.0.1')).rejects.toMatchObject({ status: 401, code: 'unauthorized' })
    expect(looked).toEqual([sha256('signet_client-token').toString('hex'), sha256('signet_client-tokeX').toString('hex')])
  })
})
