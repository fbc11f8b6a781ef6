import { AUDIT_HEAD, auditHead, auditHeadId } from '../audit/chain.js'
import { INTEGRITY_META, rowIdOf, sameHex, SEALED_TABLE_NAMES, type IntegrityFailure, type IntegrityKeys, type RowOf, type SealedTable } from './row-integrity.js'
import { MASTER_KEY_CHECK } from '../keys/master-key-check.js'
import type { Snapshot, Stored, Tx, TxTable } from './types.js'

/**
 * The state manifest (docs/security.md, "The database is not trusted"): which
 * version of each authenticated row is the current one, and which audit head goes
 * with them, authenticated as a whole under the row key. A row's own MAC shows that
 * Signet once wrote it; only the manifest shows it is what Signet wrote last. So an
 * earlier copy of a row put back (a revoked client, a revoked key, a narrower
 * policy undone), a row deleted, or the audit log cut back to an earlier
 * authentic head, no longer passes.
 *
 * Every transaction that writes rows or audit events carries the manifest forward
 * before it commits, with the rows it wrote (sealed-storage.ts; the rewrap on the
 * storage itself), so it always describes the committed state and never takes in a
 * row that someone else put there. It is always required, marker or not: a
 * database sealed before it (integrity marker version 1) gets one at its next
 * start with the master key (integrity-upgrade.ts, adoptStateManifest), once, and
 * never again once its audit log records that it had one.
 *
 * Putting back a whole earlier copy of the database, manifest and all, is a
 * restore from a backup and cannot be told from one without state kept outside
 * the database (docs/security.md, "Known limits").
 */
export const STATE_META = 'state'

interface ManifestBody {
  version: 1
  /** The MAC of each row, by table and primary key. */
  rows: Record<SealedTable, Record<string, string>>
  /** The audit head (meta audit_head) committed with these rows; null while the log has no keyed event. */
  auditHead: string | null
}

/** The MAC of each row the manifest records, by table and primary key. */
type ManifestRows = ManifestBody['rows']

/** Changes to a manifest's rows: the new MAC of each row written, null for a row deleted; keyed `table\0id`. */
type RowChanges = ReadonlyMap<string, string | null>
export const changeKey = (table: SealedTable, id: string): string => `${table}\0${id}`

/**
 * Seals and writes the manifest in `tx` (a transaction of the storage itself), with
 * the audit head `tx` holds now. `rows` defaults to every row as stored, which only
 * a step that trusts the rows as they are may use (the upgrades): any other writer
 * carries the manifest forward (carryStateManifest), so that a row put back beside
 * it stays refused.
 */
export async function writeStateManifest(tx: Tx, keys: IntegrityKeys, rows?: ManifestRows): Promise<void> {
  const body: ManifestBody = { version: 1, rows: rows ?? (await storedRows(tx)), auditHead: await tx.getMeta(AUDIT_HEAD) }
  await tx.setMeta(STATE_META, JSON.stringify({ ...body, mac: keys.mac('meta', STATE_META, body) }))
}

/**
 * The manifest after a transaction: `committed` (what the transaction started
 * from) with `changes` applied, sealed under `keys`, so that a row someone else put
 * there is never taken in. Without an authentic, current manifest to start from,
 * none is written: every row keeps failing for the reason it fails now, until the
 * database is restored.
 */
export async function carryStateManifest(tx: Tx, committed: Committed, changes: RowChanges, keys: IntegrityKeys): Promise<void> {
  if (committed.rows === null) return
  const rows = Object.fromEntries(SEALED_TABLE_NAMES.map((table) => [table, { ...committed.rows![table] }])) as ManifestRows
  for (const [key, mac] of changes) {
    const [table, id] = key.split('\0') as [SealedTable, string]
    if (mac === null) delete rows[table][id]
    else rows[table][id] = mac
  }
  await writeStateManifest(tx, keys, rows)
}

async function storedRows(tx: Tx): Promise<ManifestRows> {
  const rows = {} as ManifestRows
  for (const table of SEALED_TABLE_NAMES) {
    const stored = await (tx[table] as TxTable<RowOf<typeof table>>).list()
    rows[table] = Object.fromEntries(stored.map((row) => [rowIdOf(table, row), (row as Stored<object>).mac ?? '']))
  }
  return rows
}

/** Why a row as stored is not the version the manifest records, or null when it is. */
type Staleness = (table: SealedTable, row: Stored<object>) => string | null

/** How current each row of a snapshot is, against its manifest. */
interface Freshness {
  stale: Staleness
  /** Rows the manifest records that the snapshot lacks. */
  failures: IntegrityFailure[]
}

/**
 * The freshness of `snapshot`'s rows (as stored, MACs included), checked with
 * `keys`. Without an authentic manifest, every row fails: the manifest is what
 * would show which of them were put back.
 */
export function freshnessOf(snapshot: Pick<Snapshot, SealedTable | 'meta' | 'lastAuditId'>, keys: IntegrityKeys): Freshness {
  const { stale, rows } = againstManifest(snapshot.meta, snapshot.lastAuditId, keys)
  const failures: IntegrityFailure[] = []
  if (rows === null) return { stale, failures }
  for (const table of SEALED_TABLE_NAMES) {
    const present = new Set(snapshot[table].map((row) => rowIdOf(table, row as never)))
    for (const id of Object.keys(rows[table])) {
      if (!present.has(id)) failures.push({ table, id, reason: 'the state manifest records this row, but it is missing: deleted outside Signet' })
    }
  }
  return { stale, failures }
}

/** What a transaction starts from: how to judge the rows it reads, and the manifest it carries forward. */
export interface Committed {
  stale: Staleness
  /** The current manifest's rows (none on a new database); null when there is no authentic, current manifest. */
  rows: ManifestRows | null
  /** The database is under another master key than `keys` (a rewrap by another process). */
  underAnotherKey: boolean
}

/**
 * The committed state `tx` (a transaction of the storage itself) starts from; read
 * before it appends to the audit log. It carries the manifest forward only when the
 * log ends exactly at the head the manifest records: after events were cut from the
 * log's end, the transaction's own event would chain onto the shortened log and a
 * manifest written with it would make the cut look whole.
 */
export async function committedState(tx: Tx, keys: IntegrityKeys): Promise<Committed> {
  const meta: Record<string, string> = {}
  for (const name of [INTEGRITY_META, STATE_META, MASTER_KEY_CHECK]) {
    const value = await tx.getMeta(name)
    if (value !== null) meta[name] = value
  }
  const last = await tx.lastAudit()
  const { head, ...committed } = againstManifest(meta, last?.id ?? 0, keys)
  const endsAtHead = last === null ? head === null : head?.startsWith(`${auditHead(last)}:`) === true
  return endsAtHead ? committed : { ...committed, rows: null }
}

/**
 * The row check the stored meta values call for: every row failing without an
 * authentic manifest or with one older than the audit log, else each row against
 * its entry. Every transaction that appends an audit event carries the manifest
 * forward with it, so a log that goes past the manifest's head means an earlier
 * manifest was put back (with the rows it lists), which the rows alone cannot
 * show. (A log cut back short of the head is the audit check's failure: the rows
 * are still those of the current manifest.)
 */
function againstManifest(meta: Record<string, string>, lastAuditId: number, keys: IntegrityKeys): Committed & { head: string | null } {
  const underAnotherKey = meta[MASTER_KEY_CHECK] !== undefined && !keys.ownsDatabase(meta[MASTER_KEY_CHECK])
  // A database being created (no master key recorded yet, nothing written) starts
  // from an empty manifest; one emptied since it was created does not.
  const creating = meta[MASTER_KEY_CHECK] === undefined && meta[STATE_META] === undefined && meta[INTEGRITY_META] === undefined && lastAuditId === 0
  const opened = creating ? { version: 1 as const, rows: noRows(), auditHead: null } : openManifest(meta[STATE_META] ?? null, keys)
  if ('unusable' in opened) {
    const reason = `${opened.unusable}: which rows are current cannot be told${meta[STATE_META] === undefined ? ' (a database sealed before it gets it at its next start with the master key)' : ''}`
    return { stale: () => reason, rows: null, head: null, underAnotherKey }
  }
  const manifest = opened
  if (lastAuditId > auditHeadId(manifest.auditHead)) {
    const reason = `the state manifest is older than the audit log (it records event ${auditHeadId(manifest.auditHead)}, the log goes on to ${lastAuditId}): an earlier manifest was put back, or a release before it wrote`
    return { stale: () => reason, rows: null, head: null, underAnotherKey }
  }
  return {
    stale(table, row) {
      const expected = manifest.rows[table][rowIdOf(table, row as never)]
      if (expected === undefined) return 'not in the state manifest: the row was added outside Signet'
      return row.mac === expected ? null : 'not the version the state manifest records: an earlier copy was put back'
    },
    rows: manifest.rows,
    head: manifest.auditHead,
    underAnotherKey,
  }
}

const noRows = (): ManifestRows => Object.fromEntries(SEALED_TABLE_NAMES.map((table) => [table, {}])) as ManifestRows

/**
 * Why the audit head is not the one committed with the rows, or null: the log cut
 * back to an earlier authentic head (its later events deleted) passes the chain
 * and head checks on its own. `meta` holds the stored values (null when absent).
 */
export function auditHeadFreshness(meta: { head: string | null; state: string | null }, keys: IntegrityKeys): IntegrityFailure | null {
  const manifest = openManifest(meta.state, keys)
  if ('unusable' in manifest) return { table: 'meta', id: STATE_META, reason: `${manifest.unusable}: which audit head is current cannot be told` }
  if (meta.head === manifest.auditHead) return null
  return { table: 'meta', id: AUDIT_HEAD, reason: 'the audit head is not the one committed with the rows (state manifest): events were removed from the end of the log, or its head replaced' }
}

/** The manifest a stored value (null: none stored) holds, or why there is none to use. */
function openManifest(value: string | null, keys: IntegrityKeys): ManifestBody | { unusable: string } {
  if (value === null) return { unusable: `the state manifest (meta ${STATE_META}) is missing` }
  const notAuthentic = { unusable: `the state manifest (meta ${STATE_META}) is not authentic` }
  try {
    const { mac, ...body } = JSON.parse(value) as ManifestBody & { mac: unknown }
    if (body.version !== 1 || typeof mac !== 'string' || typeof body.rows !== 'object' || body.rows === null) return notAuthentic
    for (const table of SEALED_TABLE_NAMES) if (typeof body.rows[table] !== 'object' || body.rows[table] === null) return notAuthentic
    return sameHex(mac, keys.mac('meta', STATE_META, body)) ? body : notAuthentic
  } catch {
    return notAuthentic
  }
}
