import { describe, expect, it } from 'vitest'
import { activate, nextDueAt, nextKeyDueAt, nextRotationAt, planDue, revoke, rotationDueAt, writeOrder } from '../../src/keys/lifecycle.js'
import type { KeyRecord, Keyset } from '../../src/keys/model.js'

const S = 1000
const keyset: Keyset = {
  name: 'ks', alg: 'ES256', rsaBits: 2048, issuer: null, defaultTtl: 60, maxTtl: 600, rotationPeriod: 1000,
  prepublish: 100, x5c: false, backend: 'software', createdAt: 0, updatedAt: 0,
}

function key(kid: string, state: KeyRecord['state'], fields: Partial<KeyRecord> = {}): KeyRecord {
  return {
    kid, keyset: 'ks', alg: 'ES256', state, publicJwk: {} as never, certificate: null, privateKey: Buffer.from('x'), hsmId: null,
    createdAt: 0, activatesAt: null, activatedAt: null, retiredAt: null, publishedUntil: null, destroyedAt: null,
    revokedAt: null, revokeReason: null, maxTtlSeen: 600, ...fields,
  }
}

describe('key lifecycle planning', () => {
  it('asks for a pending key prepublish before the rotation is due, never earlier', () => {
    const active = key('a', 'active', { activatedAt: 0 })
    expect(planDue(keyset, [active], 899 * S, 100).newKeyActivatesAt).toBeNull()
    expect(planDue(keyset, [active], 900 * S, 100).newKeyActivatesAt).toBe(1000 * S)
  })

  it('never schedules activation sooner than prepublish from now, even when the rotation is overdue', () => {
    const active = key('a', 'active', { activatedAt: 0 })
    expect(planDue(keyset, [active], 5000 * S, 100).newKeyActivatesAt).toBe(5100 * S)
  })

  it('does not rotate with rotationPeriod 0 or when a key is already pending', () => {
    const active = key('a', 'active', { activatedAt: 0 })
    expect(planDue({ ...keyset, rotationPeriod: 0 }, [active], 10_000 * S, 100).newKeyActivatesAt).toBeNull()
    expect(planDue(keyset, [active, key('p', 'pending', { activatesAt: 20_000 * S })], 10_000 * S, 100).newKeyActivatesAt).toBeNull()
  })

  it('activates due pending keys in order, each retiring the one before, leaving one active', () => {
    const keys = [key('a', 'active', { activatedAt: 0 }), key('p1', 'pending', { activatesAt: 10 * S, createdAt: 1 }), key('p2', 'pending', { activatesAt: 20 * S, createdAt: 2 })]
    const plan = planDue(keyset, keys, 30 * S, 100)
    const after = keys.map((k) => plan.updated.get(k.kid) ?? k)
    expect(after.map((k) => k.state)).toEqual(['retired', 'retired', 'active'])
    expect(plan.transitions.map((t) => `${t.kid}:${t.from}->${t.to}`)).toEqual(['a:active->retired', 'p1:pending->active', 'p1:active->retired', 'p2:pending->active'])
    expect(after[0]!.publishedUntil).toBe(30 * S + (600 + 60) * S)
    // Writing the active key last keeps the one-active-key index satisfied after every statement.
    expect(writeOrder(plan.updated.values()).at(-1)!.kid).toBe('p2')
  })

  it('destroys retired keys at publishedUntil and drops their private material', () => {
    const keys = [key('a', 'active', { activatedAt: 0 }), key('r', 'retired', { publishedUntil: 50 * S })]
    expect(planDue(keyset, keys, 49 * S, 100).transitions).toEqual([])
    const plan = planDue(keyset, keys, 50 * S, 100)
    expect(plan.updated.get('r')).toMatchObject({ state: 'destroyed', destroyedAt: 50 * S, privateKey: null })
  })

  it('promotes a pending key, or asks for one, when a keyset has no active key', () => {
    const pending = key('p', 'pending', { activatesAt: 10_000 * S })
    expect(planDue(keyset, [pending], 1 * S, 100).updated.get('p')!.state).toBe('active')
    expect(planDue(keyset, [key('x', 'revoked')], 1 * S, 100).needsActiveKey).toBe(true)
  })

  it('uses the longest maxTtl seen for publishedUntil', () => {
    const keys = [key('a', 'active', { activatedAt: 0, maxTtlSeen: 7200 }), key('b', 'pending')]
    const changes = activate(keyset, keys, 'b', 100 * S)
    expect(changes.updated.get('a')!.publishedUntil).toBe(100 * S + (7200 + 60) * S)
  })

  it('revokes with reason and time, dropping private material', () => {
    const changes = revoke([key('a', 'active')], 'a', 'compromise', 5 * S)
    expect(changes.updated.get('a')).toMatchObject({ state: 'revoked', revokedAt: 5 * S, revokeReason: 'compromise', privateKey: null })
  })
})

describe('the next rotation (signet status), by the scheduler\'s rule', () => {
  it('is the first pending key\'s activation when one is pending', () => {
    const keys = [key('a', 'active', { activatedAt: 0 }), key('p2', 'pending', { activatesAt: 300 * S, createdAt: 2 }), key('p1', 'pending', { activatesAt: 200 * S, createdAt: 1 })]
    expect(nextRotationAt(keyset, keys, 10 * S, 100)).toBe(200 * S)
  })

  it('is when the active key\'s period runs out, and the activation planDue will ask for', () => {
    const active = key('a', 'active', { activatedAt: 0 })
    expect(nextRotationAt(keyset, [active], 10 * S, 100)).toBe(1000 * S)
    expect(nextRotationAt(keyset, [active], 900 * S, 100)).toBe(planDue(keyset, [active], 900 * S, 100).newKeyActivatesAt)
    // Overdue (no scheduler ran): never sooner than prepublish from now, as planDue does.
    expect(nextRotationAt(keyset, [active], 5000 * S, 100)).toBe(planDue(keyset, [active], 5000 * S, 100).newKeyActivatesAt)
  })

  it('is none for a keyset rotated by hand only, with nothing pending', () => {
    expect(nextRotationAt({ rotationPeriod: 0 }, [key('a', 'active', { activatedAt: 0 })], 10 * S, 100)).toBeNull()
  })
})

describe('the rotation schedule: one rule for when rotation is due', () => {
  it('counts the rotation period from activatedAt', () => {
    const active = key('a', 'active', { createdAt: 5 * S, activatedAt: 50 * S })
    expect(rotationDueAt(keyset, active)).toBe(1050 * S)
    expect(nextKeyDueAt(keyset, active, 100)).toBe(950 * S)
    expect(rotationDueAt({ rotationPeriod: 0 }, active)).toBeNull()
    expect(nextKeyDueAt({ rotationPeriod: 0 }, active, 100)).toBeNull()
  })

  it('counts a key with no activatedAt from its createdAt, in the scheduler, its wake-up time and the next rotation alike', () => {
    const active = key('a', 'active', { createdAt: 50 * S, activatedAt: null })
    expect(rotationDueAt(keyset, active)).toBe(1050 * S)
    expect(nextKeyDueAt(keyset, active, 100)).toBe(950 * S)
    expect(nextDueAt(keyset, [active], 100)).toBe(950 * S)
    expect(nextRotationAt(keyset, [active], 10 * S, 100)).toBe(1050 * S)
    // The scheduler acts exactly then: not a moment before, and it does not slide with the clock.
    expect(planDue(keyset, [active], 949 * S, 100).newKeyActivatesAt).toBeNull()
    expect(planDue(keyset, [active], 950 * S, 100).newKeyActivatesAt).toBe(1050 * S)
    expect(planDue(keyset, [active], 5000 * S, 100).newKeyActivatesAt).toBe(5100 * S)
  })

  it('wakes the scheduler exactly when planDue has work, and not for a keyset rotated by hand', () => {
    const active = key('a', 'active', { activatedAt: 0 })
    const retired = key('r', 'retired', { publishedUntil: 500 * S })
    expect(nextDueAt(keyset, [active, retired], 100)).toBe(500 * S)
    expect(planDue(keyset, [active, retired], 499 * S, 100).transitions).toEqual([])
    expect(planDue(keyset, [active, retired], 500 * S, 100).transitions).toHaveLength(1)
    // A pending key: its activation, and no new key asked for meanwhile.
    expect(nextDueAt(keyset, [active, key('p', 'pending', { activatesAt: 2000 * S })], 100)).toBe(2000 * S)
    expect(nextDueAt({ rotationPeriod: 0 }, [active], 100)).toBeNull()
    // No active key: now.
    expect(nextDueAt(keyset, [key('x', 'revoked')], 100)).toBe(0)
  })
})
