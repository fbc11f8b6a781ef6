import type { KeyRecord, KeyState, Keyset } from './model.js'
import { SKEW_SECONDS } from './policy.js'

/**
 * The key lifecycle (docs/key-lifecycle.md) as pure functions over a keyset's keys:
 *
 *   pending --(activatesAt)--> active --(next key activates)--> retired --(publishedUntil)--> destroyed
 *   any of the first three --(admin revoke)--> revoked
 *
 * Each function takes the current records and returns the records it changed, so
 * the caller writes them in one transaction. Nothing here reads a clock or storage.
 */

export interface Transition {
  kid: string
  from: KeyState
  to: KeyState
}

export interface Changes {
  /** Changed records, keyed by kid, in their final state. */
  updated: Map<string, KeyRecord>
  transitions: Transition[]
}

const SECOND = 1000

export function emptyChanges(): Changes {
  return { updated: new Map(), transitions: [] }
}

/** The keys as they are after `changes`. */
function current(keys: KeyRecord[], changes: Changes): KeyRecord[] {
  return keys.map((key) => changes.updated.get(key.kid) ?? key)
}

function change(changes: Changes, before: KeyRecord, after: KeyRecord): void {
  changes.updated.set(after.kid, after)
  if (before.state !== after.state) changes.transitions.push({ kid: after.kid, from: before.state, to: after.state })
}

export function activeKey(keys: KeyRecord[]): KeyRecord | undefined {
  return keys.find((key) => key.state === 'active')
}

/** Retires the active key (if any) and activates `kid`, at `now`. */
export function activate(keyset: Keyset, keys: KeyRecord[], kid: string, now: number, changes: Changes = emptyChanges()): Changes {
  const live = current(keys, changes)
  const previous = activeKey(live)
  if (previous && previous.kid !== kid) {
    change(changes, previous, {
      ...previous,
      state: 'retired',
      retiredAt: now,
      // Every token the key signed expires by now + maxTtl; skew covers clock drift.
      publishedUntil: now + (Math.max(previous.maxTtlSeen, keyset.maxTtl) + SKEW_SECONDS) * SECOND,
    })
  }
  const next = live.find((key) => key.kid === kid)
  if (!next) throw new TypeError(`no key ${kid} in keyset ${keyset.name}`)
  change(changes, next, {
    ...next,
    state: 'active',
    activatesAt: next.activatesAt ?? now,
    activatedAt: now,
    maxTtlSeen: Math.max(next.maxTtlSeen, keyset.maxTtl),
  })
  return changes
}

/** Revokes `kid`: it leaves the JWK Set now and its private material is dropped. */
export function revoke(keys: KeyRecord[], kid: string, reason: string, now: number, changes: Changes = emptyChanges()): Changes {
  const key = current(keys, changes).find((k) => k.kid === kid)
  if (!key) throw new TypeError(`no key ${kid}`)
  change(changes, key, { ...key, state: 'revoked', revokedAt: now, revokeReason: reason, privateKey: null })
  return changes
}

/** The pending key to promote when the active key is revoked: the one due first. */
export function nextPending<K extends Pick<KeyRecord, 'state' | 'activatesAt' | 'createdAt'>>(keys: K[]): K | undefined {
  return keys
    .filter((key) => key.state === 'pending')
    .sort((a, b) => (a.activatesAt ?? 0) - (b.activatesAt ?? 0) || a.createdAt - b.createdAt)[0]
}

export interface DuePlan extends Changes {
  /**
   * When automatic rotation needs a new pending key: the time it should activate.
   * The caller generates the key (slow for RSA) and adds it as pending.
   */
  newKeyActivatesAt: number | null
  /** The keyset has no active key and nothing pending: make one and activate it now. */
  needsActiveKey: boolean
}

/**
 * The rotation schedule: the one rule for "when is rotation due", used by the
 * scheduler (planDue), the keystore (when to wake the scheduler), the metrics and
 * `signet status`. (The browser console mirrors it in console/web/schedule.ts: it
 * cannot import server code.)
 *
 * An active key's rotation period starts at its `activatedAt`. A key with no
 * `activatedAt` (Signet records it whenever it activates a key, so only a row
 * written or restored by other means lacks it) counts from its `createdAt`: a key
 * cannot have started signing before it existed, so its rotation is never due
 * later than it really is.
 */
export function rotationStart(active: Pick<KeyRecord, 'activatedAt' | 'createdAt'>): number {
  return active.activatedAt ?? active.createdAt
}

/** When the active key's rotation period runs out; null for a keyset rotated by hand only (period 0). */
export function rotationDueAt(keyset: Pick<Keyset, 'rotationPeriod'>, active: Pick<KeyRecord, 'activatedAt' | 'createdAt'>): number | null {
  return keyset.rotationPeriod > 0 ? rotationStart(active) + keyset.rotationPeriod * SECOND : null
}

/**
 * When automatic rotation asks for the next key: `prepublish` seconds before the
 * rotation is due, so the key is published before it signs. Null when rotation is by hand only.
 */
export function nextKeyDueAt(keyset: Pick<Keyset, 'rotationPeriod'>, active: Pick<KeyRecord, 'activatedAt' | 'createdAt'>, prepublishSeconds: number): number | null {
  const rotationDue = rotationDueAt(keyset, active)
  return rotationDue === null ? null : keyDueBefore(rotationDue, prepublishSeconds)
}

/** The next key of a rotation due at `rotationDue` is made `prepublish` seconds before it. */
function keyDueBefore(rotationDue: number, prepublishSeconds: number): number {
  return rotationDue - prepublishSeconds * SECOND
}

/** When an automatic rotation due at `rotationDue` activates its key: never sooner than prepublish from now, so a key is seen before it signs. */
function scheduledActivation(rotationDue: number, now: number, prepublishSeconds: number): number {
  return Math.max(rotationDue, now + prepublishSeconds * SECOND)
}

/**
 * When the keyset's next key starts signing, as the scheduler will do it: the
 * first pending key's activation, else the automatic rotation of the active key;
 * null when neither will happen (manual rotation only, nothing pending).
 */
export function nextRotationAt(
  keyset: Pick<Keyset, 'rotationPeriod'>,
  keys: Pick<KeyRecord, 'state' | 'activatedAt' | 'activatesAt' | 'createdAt'>[],
  now: number,
  prepublishSeconds: number,
): number | null {
  const pending = nextPending(keys)
  if (pending) return pending.activatesAt ?? now
  const active = keys.find((key) => key.state === 'active')
  const rotationDue = active ? rotationDueAt(keyset, active) : null
  return rotationDue === null ? null : scheduledActivation(rotationDue, now, prepublishSeconds)
}

/**
 * The earliest time at which planDue has something to do for this keyset: a
 * pending key to activate, a retired key to destroy, a next key to ask for
 * (nextKeyDueAt), or, with no active key, now (0). Null when nothing is scheduled.
 */
export function nextDueAt(
  keyset: Pick<Keyset, 'rotationPeriod'>,
  keys: readonly Pick<KeyRecord, 'state' | 'activatedAt' | 'activatesAt' | 'createdAt' | 'publishedUntil'>[],
  prepublishSeconds: number,
): number | null {
  const times: number[] = []
  let active: (typeof keys)[number] | undefined
  let pending = false
  for (const key of keys) {
    if (key.state === 'pending') {
      pending = true
      if (key.activatesAt !== null) times.push(key.activatesAt)
    } else if (key.state === 'retired' && key.publishedUntil !== null) {
      times.push(key.publishedUntil)
    } else if (key.state === 'active') {
      active = key
    }
  }
  if (!active) times.push(0)
  else if (!pending) {
    const nextKeyDue = nextKeyDueAt(keyset, active, prepublishSeconds)
    if (nextKeyDue !== null) times.push(nextKeyDue)
  }
  return times.length === 0 ? null : Math.min(...times)
}

/**
 * Everything due at `now` for one keyset: pending keys whose time has come are
 * activated in order (each retiring the one before), retired keys past
 * publishedUntil are destroyed, and a new pending key is asked for when the next
 * automatic rotation is `prepublish` seconds away.
 */
export function planDue(keyset: Keyset, keys: KeyRecord[], now: number, prepublishSeconds: number): DuePlan {
  const changes = emptyChanges()
  const due = keys
    .filter((key) => key.state === 'pending' && key.activatesAt !== null && key.activatesAt <= now)
    .sort((a, b) => a.activatesAt! - b.activatesAt! || a.createdAt - b.createdAt)
  for (const key of due) activate(keyset, keys, key.kid, now, changes)

  for (const key of current(keys, changes)) {
    if (key.state === 'retired' && key.publishedUntil !== null && key.publishedUntil <= now) {
      change(changes, key, { ...key, state: 'destroyed', destroyedAt: now, privateKey: null })
    }
  }

  // A keyset left without an active key (it should not happen) promotes its next pending key.
  const promote = activeKey(current(keys, changes)) ? undefined : nextPending(current(keys, changes))
  if (promote) activate(keyset, keys, promote.kid, now, changes)

  const live = current(keys, changes)
  const active = activeKey(live)
  const hasPending = live.some((key) => key.state === 'pending')
  let newKeyActivatesAt: number | null = null
  if (active && !hasPending) {
    const rotationDue = rotationDueAt(keyset, active)
    if (rotationDue !== null && now >= keyDueBefore(rotationDue, prepublishSeconds)) newKeyActivatesAt = scheduledActivation(rotationDue, now, prepublishSeconds)
  }
  return { ...changes, newKeyActivatesAt, needsActiveKey: !active && !hasPending }
}

/**
 * The order to write changed records in: the active key last, so the unique index
 * "one active key per keyset" holds after every statement.
 */
export function writeOrder(records: Iterable<KeyRecord>): KeyRecord[] {
  return [...records].sort((a, b) => Number(a.state === 'active') - Number(b.state === 'active'))
}
