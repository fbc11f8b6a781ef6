import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/clock.js'
import { OutageGrace } from '../../src/keys/outage-grace.js'

describe('the storage-outage grace', () => {
  it('signs on for the grace after storage last answered, then stops until it answers again', () => {
    const clock = new ManualClock()
    const start = clock.now()
    const grace = new OutageGrace(clock, 60)
    expect(grace.outage()).toBeNull()
    expect(grace.notReadyReason()).toBeNull()

    clock.advance(10_000)
    expect(grace.failed()).toBe(true)
    expect(grace.failed()).toBe(false) // reported once per outage
    expect(grace.storageAnswers).toBe(false)
    expect(grace.outage()).toEqual({ lastContactAt: start, signingUntil: start + 60_000, signingStopped: false })
    expect(grace.signingStopped()).toBeNull()
    expect(grace.notReadyReason()).toContain('signing continues from memory until')

    clock.advance(50_000)
    expect(grace.signingStopped()?.code).toBe('storage_unavailable')
    expect(grace.notReadyReason()).toContain('signing stopped at')

    grace.answered()
    expect(grace.storageAnswers).toBe(true)
    expect(grace.outage()).toBeNull()
    expect(grace.signingStopped()).toBeNull()
    // A later outage counts from the last answer.
    clock.advance(5_000)
    expect(grace.failed()).toBe(true)
    expect(grace.outage()?.signingUntil).toBe(clock.now() - 5_000 + 60_000)
  })

  it('defaults to 300 seconds', () => {
    const clock = new ManualClock()
    const grace = new OutageGrace(clock)
    grace.failed()
    expect(grace.outage()?.signingUntil).toBe(clock.now() + 300_000)
  })
})
