import { nextRotationAt } from '../keys/lifecycle.js'
import type { KeysetView, KeyView } from './admin-api.js'
import { inWords, printLines, timeAndDistance } from './output.js'

/**
 * `signet status`: what each keyset's keys will do next, from the admin API's
 * views of its keys. The next rotation comes from the scheduler's own rule
 * (keys/lifecycle.ts), so what is printed is what the server will do.
 */

const ms = (iso: string | null): number | null => (iso === null ? null : Date.parse(iso))
const secondsFrom = (now: number, iso: string | null): number | null => (iso === null ? null : Math.round((Date.parse(iso) - now) / 1000))

export function keysetStatus(keyset: KeysetView, keys: KeyView[], now: number) {
  const active = keys.find((key) => key.state === 'active') ?? null
  const lifecycleKeys = keys.map((key) => ({ state: key.state, activatedAt: ms(key.activatedAt), activatesAt: ms(key.activatesAt), createdAt: ms(key.createdAt) ?? 0 }))
  const next = nextRotationAt(keyset, lifecycleKeys, now, keyset.prepublish)
  const nextIso = next === null ? null : new Date(next).toISOString()
  return {
    name: keyset.name,
    alg: keyset.alg,
    rotationPeriod: keyset.rotationPeriod,
    prepublish: keyset.prepublish,
    active: active && { kid: active.kid, alg: active.alg, activatedAt: active.activatedAt, ageSeconds: active.activatedAt === null ? null : -secondsFrom(now, active.activatedAt)! },
    nextRotation: nextIso && { at: nextIso, inSeconds: secondsFrom(now, nextIso) },
    pending: keys.filter((key) => key.state === 'pending').map((key) => ({ kid: key.kid, alg: key.alg, activatesAt: key.activatesAt, inSeconds: secondsFrom(now, key.activatesAt) })),
    retired: keys.filter((key) => key.state === 'retired').map((key) => ({ kid: key.kid, retiredAt: key.retiredAt, leavesJwksAt: key.publishedUntil, inSeconds: secondsFrom(now, key.publishedUntil) })),
  }
}

export type KeysetStatus = ReturnType<typeof keysetStatus>

/** When the next rotation is, in words: for messages of other commands too (`keysets update --alg`). */
export function nextRotationWords(status: KeysetStatus, now: number): string {
  if (!status.nextRotation) return 'no rotation is scheduled (rotation period 0): run signet keys rotate'
  const how = status.pending.length > 0 ? 'when the pending key activates' : `automatic, every ${inWords(status.rotationPeriod)}`
  return `${timeAndDistance(status.nextRotation.at, now)}, ${how}`
}

export function printStatus(statuses: KeysetStatus[], now: number): void {
  const lines: string[] = []
  for (const status of statuses) {
    if (lines.length > 0) lines.push('')
    lines.push(`keyset ${status.name} (${status.alg})`)
    lines.push(status.active
      ? `  active         ${status.active.kid} (${status.active.alg}), activated ${status.active.activatedAt ? timeAndDistance(status.active.activatedAt, now) : '-'}`
      : '  active         none: the keyset cannot sign')
    lines.push(`  next rotation  ${nextRotationWords(status, now)}`)
    for (const key of status.pending) lines.push(`  pending        ${key.kid} (${key.alg}), activates ${key.activatesAt ? timeAndDistance(key.activatesAt, now) : '-'}`)
    for (const key of status.retired) lines.push(`  retired        ${key.kid}, leaves the JWKS ${key.leavesJwksAt ? timeAndDistance(key.leavesJwksAt, now) : '-'}`)
  }
  printLines(...lines)
}
