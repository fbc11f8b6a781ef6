import { afterEach, describe, expect, it } from 'vitest'
import { ALGORITHMS as SERVER_ALGORITHMS } from '../../src/crypto/algorithms.js'
import { rotationDueAt } from '../../src/keys/lifecycle.js'
import { effectivePrepublish as serverPrepublish } from '../../src/keys/policy.js'
import { ALGORITHMS } from '../../src/console/web/model.js'
import type { Key, Keyset } from '../../src/console/web/model.js'
import { nextRotation } from '../../src/console/web/schedule.js'
import { absolute, duration, parseDuration, relative } from '../../src/console/web/time.js'
import { effectivePrepublish, policyWarnings, type PolicyChange } from '../../src/console/web/warnings.js'
import { createHarness, type Harness } from '../helpers/harness.js'

/** The console's pure modules (src/console/web), run in Node: no DOM needed. */

describe('console times', () => {
  const now = Date.UTC(2030, 0, 1)
  it('shows instants in UTC to the second and relative to now', () => {
    expect(absolute(now + 1500)).toBe('2030-01-01T00:00:01Z')
    expect(relative(now + 3 * 86_400_000 + 5000, now)).toBe('in 3 d')
    expect(relative(now - 2 * 3_600_000 - 1, now)).toBe('2 h ago')
    expect(relative(now + 90_000, now)).toBe('in 1 min')
    expect(relative(now - 4000, now)).toBe('4 s ago')
    expect(relative(now + 400, now)).toBe('now')
  })
  it('reads and writes durations as people type them', () => {
    expect(parseDuration('90s')).toBe(90)
    expect(parseDuration('15m')).toBe(900)
    expect(parseDuration('12H')).toBe(43_200)
    expect(parseDuration(' 30d ')).toBe(2_592_000)
    expect(parseDuration('600')).toBe(600)
    for (const bad of ['', '-5', '1.5h', '10 weeks', 'h', '99999999999999999999d']) expect(parseDuration(bad), bad).toBeNull()
    expect(duration(2_592_000)).toBe('30 d')
    expect(duration(5400)).toBe('1 h 30 min')
    expect(duration(0)).toBe('0 s')
  })
})

describe('the console agrees with the server', () => {
  it('offers the same algorithms', () => {
    expect([...ALGORITHMS].sort()).toEqual([...SERVER_ALGORITHMS].sort())
  })
  it('resolves the default prepublish the same way', () => {
    for (const maxAge of [0, 300, 1800, 7200]) {
      expect(effectivePrepublish(null, maxAge)).toBe(serverPrepublish({ prepublish: null }, maxAge))
      expect(effectivePrepublish(42, maxAge)).toBe(serverPrepublish({ prepublish: 42 }, maxAge))
    }
  })
})

describe('nextRotation mirrors the scheduler (planDue)', () => {
  let h: Harness
  afterEach(async () => {
    await h.close()
  })

  const view = async () => {
    const keyset = (await h.admin('GET', '/v1/admin/keysets/short')).json() as Keyset
    const keys = (await h.admin('GET', '/v1/admin/keysets/short/keys')).json().keys as Key[]
    return { keyset, keys }
  }

  it('publishes the next key exactly when the console says, activating when it says', async () => {
    h = await createHarness()
    await h.createKeyset({ name: 'short', rotationPeriod: 86_400, prepublish: 3600 })
    const before = await view()
    const next = nextRotation(before.keyset, before.keys, h.clock.now())!
    expect(next.pendingKid).toBeNull()
    expect(next.publishesAt).toBe(h.clock.now() + (86_400 - 3600) * 1000)
    expect(next.activatesAt).toBe(h.clock.now() + 86_400 * 1000)

    h.clock.set(next.publishesAt! - 1000)
    await h.signet.tick()
    expect((await view()).keys.filter((key) => key.state === 'pending')).toEqual([])

    h.clock.set(next.publishesAt!)
    await h.signet.tick()
    const after = await view()
    const pending = after.keys.filter((key) => key.state === 'pending')
    expect(pending).toHaveLength(1)
    expect(Date.parse(pending[0]!.activatesAt!)).toBe(next.activatesAt)
    // With the key pending, the next rotation is its activation.
    expect(nextRotation(after.keyset, after.keys, h.clock.now())).toEqual({ activatesAt: next.activatesAt, pendingKid: pending[0]!.kid, publishesAt: null })
  })

  it('knows a late scheduler still waits out prepublish', async () => {
    h = await createHarness()
    await h.createKeyset({ name: 'short', rotationPeriod: 86_400, prepublish: 3600 })
    h.clock.advance(86_400 * 1000 + 5000) // the scheduler missed the whole window
    const { keyset, keys } = await view()
    const next = nextRotation(keyset, keys, h.clock.now())!
    expect(next.activatesAt).toBe(h.clock.now() + 3600 * 1000)
    await h.signet.tick()
    const pending = (await view()).keys.find((key) => key.state === 'pending')!
    expect(Date.parse(pending.activatesAt!)).toBe(next.activatesAt)
  })

  it('has none when automatic rotation is off', async () => {
    h = await createHarness()
    await h.createKeyset({ name: 'short', rotationPeriod: 0 })
    const { keyset, keys } = await view()
    expect(nextRotation(keyset, keys, h.clock.now())).toBeNull()
  })

  it('counts an active key with no activatedAt from its createdAt, as the server does (rotationDueAt)', async () => {
    h = await createHarness()
    await h.createKeyset({ name: 'short', rotationPeriod: 86_400, prepublish: 3600 })
    h.clock.advance(1000 * 1000) // the rule must not slide with the clock
    const { keyset, keys } = await view()
    const unknown = keys.map((key) => (key.state === 'active' ? { ...key, activatedAt: null } : key))
    const active = keys.find((key) => key.state === 'active')!
    const due = Date.parse(active.createdAt) + 86_400 * 1000
    expect(nextRotation(keyset, unknown, h.clock.now())).toEqual({ activatesAt: due, pendingKid: null, publishesAt: due - 3600 * 1000 })
    expect(rotationDueAt(keyset, { activatedAt: null, createdAt: Date.parse(active.createdAt) })).toBe(due)
  })
})

describe('policy warnings', () => {
  const current: Keyset = {
    name: 'default', alg: 'ES256', rsaBits: null, issuer: 'https://issuer.example', defaultTtl: 900, maxTtl: 3600,
    rotationPeriod: 2_592_000, prepublish: 3600, x5c: false, backend: 'software', activeKid: 'k',
  }
  const same: PolicyChange = { alg: 'ES256', issuer: 'https://issuer.example', defaultTtl: 900, maxTtl: 3600, rotationPeriod: 2_592_000, prepublish: 3600 }

  it('has nothing to say about a harmless change', () => {
    expect(policyWarnings(current, { ...same, defaultTtl: 600 }, 300)).toEqual([])
  })
  it('warns when a new key could sign before cached JWK Sets know it', () => {
    expect(policyWarnings(current, { ...same, prepublish: 500 }, 300).join()).toMatch(/shorter than twice the JWK Set's max-age/)
    expect(policyWarnings(current, { ...same, prepublish: 600 }, 300)).toEqual([])
    // The default prepublish is never too short.
    expect(policyWarnings(current, { ...same, prepublish: null }, 7200)).toEqual([])
  })
  it('warns about an algorithm change, an issuer change, rotation turned off, and tokens outliving rotations', () => {
    expect(policyWarnings(current, { ...same, alg: 'RS256' }, 300).join()).toMatch(/accept only ES256/)
    expect(policyWarnings(current, { ...same, issuer: null }, 300).join()).toMatch(/verifiers that check iss/)
    expect(policyWarnings(current, { ...same, rotationPeriod: 0 }, 300).join()).toMatch(/turns automatic rotation off/)
    expect(policyWarnings(current, { ...same, maxTtl: 86_400, rotationPeriod: 3600 * 6, prepublish: 3600 }, 300).join()).toMatch(/about 4 retired keys/)
  })
})
