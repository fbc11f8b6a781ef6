import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { AuditEvent, AuditInput } from '../keys/model.js'

/** prevHash of the first row. */
export const GENESIS_HASH = '0'.repeat(64)

/**
 * The meta row naming the newest audit event (`id:hash`), written in the same
 * transaction as the event. The chain alone cannot show that its last rows were
 * deleted; the head can.
 */
export const AUDIT_HEAD = 'audit_head'

/** What the next event chains to: the id and hash of the newest one. */
export type AuditLink = Pick<AuditEvent, 'id' | 'hash'>

export const auditHead = (event: AuditLink): string => `${event.id}:${event.hash}`

/** JSON with object keys sorted at every level, so the same event always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`)
    return `{${entries.join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

/**
 * The hash of an audit row over the previous row's hash and this row's content,
 * id included, so a row cannot be edited, dropped or moved without every later
 * hash changing. With `key` (the audit key derived from the master key) it is an
 * HMAC-SHA256, which whoever writes the database without the master key cannot
 * recompute; without, the plain SHA-256 of logs written before the keyed chain.
 */
export function auditHash(prevHash: string, id: number, event: AuditInput, key: Buffer | null): string {
  const content = canonicalJson({ id, at: event.at, actor: event.actor, action: event.action, target: event.target, details: event.details })
  const digest = key ? createHmac('sha256', key) : createHash('sha256')
  return digest.update(`${prevHash}\n${content}`).digest('hex')
}

/** `event` as the link after `prev` (null: the first event of the log). */
export function chainEvent(prev: AuditLink | null, event: AuditInput, key: Buffer | null): AuditEvent {
  const id = (prev?.id ?? 0) + 1
  const prevHash = prev?.hash ?? GENESIS_HASH
  return { ...event, id, prevHash, hash: auditHash(prevHash, id, event, key) }
}

/** The MAC that authenticates a head value, so the head cannot be moved back to an earlier event. */
function headMac(id: number, hash: string, key: Buffer): string {
  return createHmac('sha256', key).update(`${AUDIT_HEAD}\n${id}:${hash}`).digest('hex')
}

/** The head of a keyed log: `id:hash:mac`. */
export const sealedAuditHead = (event: AuditLink, key: Buffer): string => `${auditHead(event)}:${headMac(event.id, event.hash, key)}`

/** The event id a head value names (0 when it names none), without checking its MAC. */
export function auditHeadId(value: string | null): number {
  const id = value?.split(':')[0]
  return id && /^[0-9]+$/.test(id) ? Number(id) : 0
}

/** The event a head value names, if its MAC holds under `key`. */
export function openAuditHead(value: string, key: Buffer): AuditLink | null {
  const [id, hash, mac] = value.split(':')
  if (!id || !hash || !mac || auditHeadId(value) === 0) return null
  const expected = Buffer.from(headMac(Number(id), hash, key), 'hex')
  const given = Buffer.from(mac, 'hex')
  return given.length === expected.length && timingSafeEqual(given, expected) ? { id: Number(id), hash } : null
}

export type ChainCheck = { ok: true; rows: number } | { ok: false; rows: number; brokenId: number; reason: string }

/**
 * Checks rows in id order, starting after `prev` (null: from the first row). Rows
 * with an id from `keyedFrom` on are checked as HMACs under `key`, earlier ones as
 * plain SHA-256 (written before the keyed chain: see docs/security.md).
 */
export function verifyChain(rows: Iterable<AuditEvent>, prev: AuditLink | null, key: Buffer | null, keyedFrom = 1): ChainCheck {
  let last = prev
  let count = 0
  for (const row of rows) {
    count++
    const expectedPrev = last?.hash ?? GENESIS_HASH
    if (last ? row.id !== last.id + 1 : row.id !== 1) return { ok: false, rows: count, brokenId: row.id, reason: `row ${row.id} follows row ${last?.id ?? 0}: a row is missing` }
    if (row.prevHash !== expectedPrev) return { ok: false, rows: count, brokenId: row.id, reason: `row ${row.id} does not chain to the row before it` }
    if (row.hash !== auditHash(row.prevHash, row.id, row, row.id >= keyedFrom ? key : null)) return { ok: false, rows: count, brokenId: row.id, reason: `row ${row.id} was changed after it was written` }
    last = row
  }
  return { ok: true, rows: count }
}
