/**
 * Where Signet reads the time. Everything that depends on time (token `iat`/`exp`,
 * the key lifecycle, the scheduler) takes a Clock, so tests move a ManualClock
 * instead of waiting.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  #now: number

  constructor(start: number = Date.UTC(2030, 0, 1)) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  /** Moves the clock forward by `ms` milliseconds. */
  advance(ms: number): void {
    if (ms < 0) throw new TypeError('a clock only moves forward')
    this.#now += ms
  }

  advanceSeconds(seconds: number): void {
    this.advance(seconds * 1000)
  }

  set(epochMs: number): void {
    this.#now = epochMs
  }
}

/** A time that is always set, in ISO 8601 UTC. */
export const iso = (ms: number): string => new Date(ms).toISOString()

export const isoOrNull = (ms: number | null | undefined): string | null =>
  ms === null || ms === undefined ? null : new Date(ms).toISOString()
