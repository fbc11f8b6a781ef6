import { appendAudit } from '../audit/recorder.js'
import { isLegacyCheckValue } from '../crypto/master-key.js'
import { MASTER_KEY_CHECK } from '../keys/master-key-check.js'
import type { AuditEvent } from '../keys/model.js'
import { INTEGRITY_META, rewriteSealedRows, type IntegrityKeys } from './row-integrity.js'
import { auditMeta, checkAuditLog } from './integrity-check.js'
import { committedState, STATE_META, writeStateManifest } from './state-manifest.js'
import type { Tx } from './types.js'

/**
 * Upgrades a database written before rows were authenticated, in `tx` (a
 * transaction of the storage itself, not the sealed one): every keyset, key and
 * client gets its MAC as it is now (trust on first use: what the database holds
 * at this moment is taken as genuine), and the audit log goes on as a keyed chain
 * from an `integrity.upgrade` event, whose HMAC covers the plain hash of the
 * event before it. Only a database whose master-key check value is still the
 * plain one of earlier versions is upgraded, and the upgrade replaces it with the
 * sealed form (crypto/master-key.ts), which nobody can undo without the master key:
 * deleting the marker and the MACs of an upgraded database makes its rows fail,
 * never trusted again on first use. (A copy taken before the upgrade can still be
 * put back: the rollback limit, docs/security.md.)
 *
 * Returns the event it appended, or null when the database was already upgraded.
 */
export async function sealExistingRows(tx: Tx, keys: IntegrityKeys, at: number): Promise<AuditEvent | null> {
  const check = await tx.getMeta(MASTER_KEY_CHECK)
  if (check === null || !isLegacyCheckValue(check)) return null
  const counts = await rewriteSealedRows(tx, async (table, row) => keys.seal(table, row))
  // Keyed: the head of the log is recorded with the event, which also records that the database has a state manifest.
  const event = await appendAudit(tx, { at, actor: 'system', action: 'integrity.upgrade', target: 'storage', details: { ...counts, [MANIFEST_RECORDED]: true } }, keys.audit)
  await tx.setMeta(INTEGRITY_META, keys.sealMarker({ version: 2, keyedFrom: event.id }))
  await tx.setMeta(MASTER_KEY_CHECK, keys.sealedCheckValue())
  await writeStateManifest(tx, keys)
  return event
}

/**
 * The audit detail saying that from this event on the database has a state
 * manifest (storage/state-manifest.ts): set on `storage.init` and on each upgrade
 * event. A database whose log holds it is never given a manifest on first use
 * again: an earlier integrity marker (version 1) put back is refused, not adopted.
 */
export const MANIFEST_RECORDED = 'stateManifest'

/** What adoptStateManifest did: appended its event, kept the manifest in place, refused (why), or nothing to do (null). */
type Adoption = { event: AuditEvent } | { kept: string } | { refused: string } | null

/**
 * A database sealed by the release before the state manifest (integrity marker
 * version 1, no manifest) gets its manifest from its rows as they are now, and the
 * marker moves to version 2, in `tx` (a transaction of the storage itself): trust on
 * first use, as the first upgrade. Refused when its log records that it had a
 * manifest, or does not verify, or a manifest is stored that is not authentic or
 * not current: then an earlier marker was put back to have rows trusted again, and
 * every row keeps failing until the database is restored. Beside a current
 * manifest the marker is only set back to version 2.
 */
export async function adoptStateManifest(tx: Tx, keys: IntegrityKeys, at: number): Promise<Adoption> {
  const stored = await tx.getMeta(INTEGRITY_META)
  const marker = stored === null ? null : keys.openMarker(stored)
  if (marker?.version !== 1) return null
  const putBack = 'the integrity marker is an earlier one (version 1) put back'
  if ((await tx.getMeta(STATE_META)) !== null) {
    // Rows are judged by the manifest, never by the marker: beside a current manifest, the marker changes nothing.
    if ((await committedState(tx, keys)).rows === null) return { refused: `${putBack}, and the state manifest is not authentic or not current` }
    await tx.setMeta(INTEGRITY_META, keys.sealMarker({ version: 2, keyedFrom: marker.keyedFrom }))
    return { kept: `${putBack}; the state manifest is current and stays in use (the marker is version 2 again)` }
  }
  // One pass over the log: the check reads every event, and each page read is looked at for the record.
  let recorded = false
  const read = async (after: number, limit: number) => {
    const page = await tx.listAudit(after, limit)
    recorded ||= page.some((event) => event.details?.[MANIFEST_RECORDED] === true)
    return page
  }
  const log = await checkAuditLog(read, await auditMeta(tx), keys, { manifestRequired: false })
  if (recorded) return { refused: `${putBack}: the audit log records that the database had a state manifest` }
  if (log.failures.length > 0) return { refused: `${putBack}, or the audit log was changed: ${log.failures[0]!.reason}` }
  await tx.setMeta(INTEGRITY_META, keys.sealMarker({ version: 2, keyedFrom: marker.keyedFrom }))
  const event = await appendAudit(tx, { at, actor: 'system', action: 'integrity.upgrade', target: 'storage', details: { [MANIFEST_RECORDED]: true } }, keys.audit)
  await writeStateManifest(tx, keys)
  return { event }
}
