import type { Clock } from '../clock.js'
import { StorageUnavailable, type SignetError } from '../errors.js'

/** Storage out of reach: since when (last answer), and until when signing goes on. */
export interface StorageOutage {
  lastContactAt: number
  signingUntil: number
  signingStopped: boolean
}

/** SIGNET_STORAGE_OUTAGE_GRACE when not set. */
const DEFAULT_OUTAGE_GRACE_SECONDS = 300

/**
 * The storage-outage grace. While storage does not answer, signing goes on from
 * the keys in memory for `graceSeconds` after storage last answered. Past it, a
 * revocation made elsewhere might have been missed, so signing stops until storage
 * answers again; JWK Sets and verification go on throughout.
 */
export class OutageGrace {
  readonly #clock: Clock
  readonly #graceMs: number
  /** True from a failure until storage answers again. */
  #failing = false
  /** When storage last answered a poll or a refresh. */
  #lastContactAt: number

  constructor(clock: Clock, graceSeconds: number = DEFAULT_OUTAGE_GRACE_SECONDS) {
    this.#clock = clock
    this.#graceMs = graceSeconds * 1000
    this.#lastContactAt = clock.now()
  }

  /** True while storage answers (no failure since its last answer). */
  get storageAnswers(): boolean {
    return !this.#failing
  }

  /** Storage answered: any outage is over. */
  answered(): void {
    this.#failing = false
    this.#lastContactAt = this.#clock.now()
  }

  /** Storage failed. True on the first failure of an outage, so it is reported once, not on every poll. */
  failed(): boolean {
    const first = !this.#failing
    this.#failing = true
    return first
  }

  /** Null while storage answers; else since when it does not and how long signing goes on. */
  outage(): StorageOutage | null {
    if (!this.#failing) return null
    const signingUntil = this.#lastContactAt + this.#graceMs
    return { lastContactAt: this.#lastContactAt, signingUntil, signingStopped: this.#clock.now() >= signingUntil }
  }

  /** The error signing answers with once the grace is over, or null while signing may go on. */
  signingStopped(): SignetError | null {
    const outage = this.outage()
    if (!outage?.signingStopped) return null
    return new StorageUnavailable(`storage has not answered since ${new Date(outage.lastContactAt).toISOString()}: signing stopped after the outage grace`)
  }

  /** Why the service is not ready because of an outage (for /readyz), or null while storage answers. */
  notReadyReason(): string | null {
    const outage = this.outage()
    if (!outage) return null
    const until = new Date(outage.signingUntil).toISOString()
    return outage.signingStopped
      ? `storage does not answer; signing stopped at ${until} (outage grace) and resumes when storage answers`
      : `storage does not answer; signing continues from memory until ${until}`
  }
}
