import type { Key, Keyset } from './model.js'
import { epoch } from './time.js'

/**
 * When the keyset's signing key next changes, by the scheduler's own rule
 * (planDue in src/keys/lifecycle.ts, mirrored here because the browser cannot
 * import server code):
 *
 * - a pending key activates at its `activatesAt` (the earliest one first);
 * - without one, automatic rotation is due at the active key's `activatedAt +
 *   rotationPeriod` (a key with no `activatedAt` counts from its `createdAt`,
 *   as rotationStart in src/keys/lifecycle.ts); the scheduler publishes the next key as pending `prepublish`
 *   seconds before that, and never lets it sign sooner than `prepublish` after it
 *   was published: it activates at max(due, publication + prepublish).
 *
 * `rotationPeriod` 0 turns automatic rotation off: null without a pending key.
 */
export interface NextRotation {
  /** When the next key starts signing. */
  activatesAt: number
  /** The pending key that will, if there is one. */
  pendingKid: string | null
  /** Without a pending key: when the scheduler publishes the next one. */
  publishesAt: number | null
}

export function nextRotation(keyset: Keyset, keys: Key[], now: number): NextRotation | null {
  const pending = keys
    .filter((key) => key.state === 'pending' && key.activatesAt !== null)
    .sort((a, b) => epoch(a.activatesAt)! - epoch(b.activatesAt)! || epoch(a.createdAt)! - epoch(b.createdAt)!)[0]
  if (pending) return { activatesAt: epoch(pending.activatesAt)!, pendingKid: pending.kid, publishesAt: null }
  const active = keys.find((key) => key.state === 'active')
  if (!active || keyset.rotationPeriod <= 0) return null
  const due = (epoch(active.activatedAt) ?? epoch(active.createdAt)!) + keyset.rotationPeriod * 1000
  const publishesAt = due - keyset.prepublish * 1000
  // A scheduler that runs late publishes now, and the key still waits out prepublish.
  const activatesAt = Math.max(due, Math.max(now, publishesAt) + keyset.prepublish * 1000)
  return { activatesAt, pendingKid: null, publishesAt }
}

/** One stretch of a key's life on the timeline. */
export interface Span {
  kid: string
  state: 'pending' | 'active' | 'retired'
  from: number
  /** null: open-ended (an active key with no rotation planned). */
  to: number | null
  /** The end is planned, not yet happened. */
  planned: boolean
}

/** A moment on the timeline: a key revoked or destroyed. */
export interface Mark {
  kid: string
  state: 'revoked' | 'destroyed'
  at: number
}

/**
 * The stretches of each key's life: pending from creation to activation, active
 * until retired (or until the next rotation, planned), retired until it leaves the
 * JWK Set (`publishedUntil`); revocation and destruction are moments.
 */
export function lifeOf(key: Key, next: NextRotation | null): { spans: Span[]; marks: Mark[] } {
  const spans: Span[] = []
  const marks: Mark[] = []
  const created = epoch(key.createdAt)!
  const activated = epoch(key.activatedAt)
  const retired = epoch(key.retiredAt)
  const revoked = epoch(key.revokedAt)
  const ended = revoked ?? epoch(key.destroyedAt)
  const activates = epoch(key.activatesAt)
  if (activated === null) {
    if (key.state === 'pending' || activates !== null) {
      const to = revoked ?? activates
      spans.push({ kid: key.kid, state: 'pending', from: created, to, planned: revoked === null })
    }
  } else {
    if (activated > created) spans.push({ kid: key.kid, state: 'pending', from: created, to: activated, planned: false })
    const plannedEnd = key.state === 'active' ? (next?.activatesAt ?? null) : null
    spans.push({ kid: key.kid, state: 'active', from: activated, to: retired ?? revoked ?? plannedEnd, planned: retired === null && revoked === null })
  }
  if (retired !== null) {
    const leaves = epoch(key.publishedUntil)
    spans.push({ kid: key.kid, state: 'retired', from: retired, to: revoked ?? epoch(key.destroyedAt) ?? leaves, planned: key.state === 'retired' })
  }
  if (key.state === 'revoked' && revoked !== null) marks.push({ kid: key.kid, state: 'revoked', at: revoked })
  if (key.state === 'destroyed' && ended !== null) marks.push({ kid: key.kid, state: 'destroyed', at: ended })
  return { spans, marks }
}
