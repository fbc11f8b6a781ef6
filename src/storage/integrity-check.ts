import { AUDIT_HEAD, openAuditHead, verifyChain } from '../audit/chain.js'
import type { AuditEvent } from '../keys/model.js'
import { INTEGRITY_META, SEALED_TABLE_NAMES, rowIdOf, type IntegrityFailure, type IntegrityKeys, type SealedTable } from './row-integrity.js'
import { auditHeadFreshness, freshnessOf, STATE_META } from './state-manifest.js'
import type { Storage, Stored } from './types.js'

/** Audit events read per page while checking the chain. */
const PAGE = 1000

export interface AuditLogCheck {
  failures: IntegrityFailure[]
  events: number
  /** Events chained with plain SHA-256 before the upgrade; sealed by the first keyed event after them. */
  legacy: number
  keyedFrom: number | null
}

/** The stored meta values the audit log is checked against (null when absent). */
export interface AuditMeta {
  head: string | null
  marker: string | null
  /** The state manifest, which records the head committed with the rows. */
  state: string | null
}

/** AuditMeta as `source` (a storage or a transaction) holds it. */
export async function auditMeta(source: { getMeta(name: string): Promise<string | null> }): Promise<AuditMeta> {
  return { head: await source.getMeta(AUDIT_HEAD), marker: await source.getMeta(INTEGRITY_META), state: await source.getMeta(STATE_META) }
}

/**
 * Checks the audit log: the marker saying where the keyed chain starts, every
 * event's chain hash (plain SHA-256 before that point, HMAC under the audit key
 * from it on), the authenticated head, which must name the last event, and the
 * state manifest, which must record that head (else the log was cut back to an
 * earlier head). Stops at the first broken event: nothing after it can be trusted.
 */
export async function checkAuditLog(
  read: (after: number, limit: number) => Promise<AuditEvent[]>,
  meta: AuditMeta,
  keys: IntegrityKeys,
  options: { manifestRequired?: boolean } = {},
): Promise<AuditLogCheck> {
  const failures: IntegrityFailure[] = []
  const marker = meta.marker === null ? null : keys.openMarker(meta.marker)
  if (meta.marker === null) failures.push({ table: 'meta', id: INTEGRITY_META, reason: 'missing: rows and the audit log are not authenticated (start signet once with the master key to upgrade)' })
  else if (marker === null) failures.push({ table: 'meta', id: INTEGRITY_META, reason: 'the integrity marker is not authentic' })
  // Without a trusted marker, every event must be keyed.
  const keyedFrom = marker?.keyedFrom ?? 1

  // Signet numbers events from 1: one below, which no page from 0 reaches, was put there.
  const [lowest] = await read(Number.MIN_SAFE_INTEGER, 1)
  if (lowest && lowest.id < 1) failures.push({ table: 'audit', id: String(lowest.id), reason: `an event numbered ${lowest.id}, below the first: inserted outside Signet` })

  let last: { id: number; hash: string } | null = null
  let events = 0
  for (;;) {
    const page = await read(last?.id ?? 0, PAGE)
    if (page.length === 0) break
    const check = verifyChain(page, last, keys.audit, keyedFrom)
    if (!check.ok) {
      failures.push({ table: 'audit', id: String(check.brokenId), reason: check.reason })
      return { failures, events: events + check.rows - 1, legacy: Math.min(events + check.rows - 1, keyedFrom - 1), keyedFrom: marker?.keyedFrom ?? null }
    }
    events += page.length
    const end = page[page.length - 1]!
    last = { id: end.id, hash: end.hash }
  }

  const lastId = last?.id ?? 0
  if (marker && lastId < marker.keyedFrom) {
    failures.push({ table: 'audit', id: String(marker.keyedFrom), reason: `the keyed chain starts at event ${marker.keyedFrom}, but the log ends at event ${lastId}: events were removed` })
  }
  if (meta.head === null) {
    if (last) failures.push({ table: 'meta', id: AUDIT_HEAD, reason: `the log has events up to ${lastId} but no head: the head was removed` })
  } else {
    const head = openAuditHead(meta.head, keys.audit)
    if (!head) failures.push({ table: 'meta', id: AUDIT_HEAD, reason: 'the head of the audit log is not authentic' })
    else if (head.id > lastId) failures.push({ table: 'audit', id: String(head.id), reason: `the log ends at event ${lastId}, but event ${head.id} was written: events were removed from its end` })
    else if (head.id < lastId) failures.push({ table: 'audit', id: String(head.id + 1), reason: `the head names event ${head.id}, but the log goes on to event ${lastId}: events were added after it` })
    else if (head.hash !== last?.hash) failures.push({ table: 'audit', id: String(head.id), reason: `event ${head.id} is not the event the head names` })
  }
  // Not while a database sealed before the manifest is given one (integrity-upgrade.ts).
  const stale = options.manifestRequired === false ? null : auditHeadFreshness(meta, keys)
  if (stale) failures.push(stale)
  return { failures, events, legacy: Math.min(events, keyedFrom - 1), keyedFrom: marker?.keyedFrom ?? null }
}

export interface IntegrityReport {
  failures: IntegrityFailure[]
  /** Rows checked, by table. */
  rows: Record<SealedTable, number>
  audit: Omit<AuditLogCheck, 'failures'>
}

/**
 * `signet check`: every authenticated row (MAC, each key's kid against its public
 * JWK, and that it is the version the state manifest records), rows the manifest
 * records that are missing, and the audit log, read from `storage` as stored (not
 * sealed).
 */
export async function checkIntegrity(storage: Storage, keys: IntegrityKeys): Promise<IntegrityReport> {
  return whileSettled(storage, () => checkIntegrityOnce(storage, keys))
}

/**
 * The audit log of `storage` checked (`signet audit verify`, GET
 * /v1/admin/audit/verify), its meta values and events read while no writer
 * changes them.
 */
export async function verifyAuditLog(storage: Storage, keys: IntegrityKeys): Promise<AuditLogCheck> {
  return whileSettled(storage, async () => checkAuditLog((after, limit) => storage.listAudit(after, limit), await auditMeta(storage), keys))
}

/**
 * A check reads the database in several steps (a snapshot, then the log page by
 * page), so a writer committing meanwhile can make it see a head and a log, or a
 * manifest and a log, of two different moments: a failure that is not there. A
 * check that failed while the generation moved is run again: at most 5 runs in all.
 */
export async function whileSettled<T extends { failures: unknown[] }>(storage: Pick<Storage, 'generation'>, check: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const before = await storage.generation()
    const result = await check()
    if (result.failures.length === 0 || attempt === 5 || (await storage.generation()) === before) return result
  }
}

async function checkIntegrityOnce(storage: Storage, keys: IntegrityKeys): Promise<IntegrityReport> {
  const snapshot = await storage.snapshot()
  const freshness = freshnessOf(snapshot, keys)
  const failures: IntegrityFailure[] = []
  const rows = {} as Record<SealedTable, number>
  for (const table of SEALED_TABLE_NAMES) {
    rows[table] = snapshot[table].length
    for (const row of snapshot[table] as Stored<object>[]) {
      const reason = (await keys.check(table, row as never)) ?? freshness.stale(table, row)
      if (reason !== null) failures.push({ table, id: rowIdOf(table, row as never), reason })
    }
  }
  const { failures: auditFailures, ...audit } = await checkAuditLog(
    (after, limit) => storage.listAudit(after, limit),
    { head: snapshot.meta[AUDIT_HEAD] ?? null, marker: snapshot.meta[INTEGRITY_META] ?? null, state: snapshot.meta[STATE_META] ?? null },
    keys,
  )
  return { failures: [...failures, ...freshness.failures, ...auditFailures], rows, audit }
}
