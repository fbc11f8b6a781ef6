import { appendAudit } from '../audit/recorder.js'
import { isLegacyCheckValue } from '../crypto/master-key.js'
import { MASTER_KEY_CHECK } from '../keys/master-key-check.js'
import type { AuditEvent } from '../keys/model.js'
import { INTEGRITY_META, rewriteSealedRows, type IntegrityKeys } from './row-integrity.js'
import { writeStateManifest } from './state-manifest.js'
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
  // Keyed: the head of the log is recorded with the event.
  const event = await appendAudit(tx, { at, actor: 'system', action: 'integrity.upgrade', target: 'storage', details: counts }, keys.audit)
  await tx.setMeta(INTEGRITY_META, keys.sealMarker({ version: 2, keyedFrom: event.id }))
  await tx.setMeta(MASTER_KEY_CHECK, keys.sealedCheckValue())
  await writeStateManifest(tx, keys)
  return event
}
