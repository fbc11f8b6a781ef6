import { chainEvent } from '../audit/chain.js'
import { appendAudit, type AuditSink } from '../audit/recorder.js'
import type { Clock } from '../clock.js'
import { rewrap } from '../crypto/envelope.js'
import { sealedCheckValue, type MasterKey } from '../crypto/master-key.js'
import { ConfigError } from '../errors.js'
import { checkMasterKey, isDatabaseMasterKey, MASTER_KEY_CHECK } from '../keys/master-key-check.js'
import type { AuditEvent, KeyRecord } from '../keys/model.js'
import { auditMeta, checkAuditLog } from '../storage/integrity-check.js'
import { adoptStateManifest, sealExistingRows } from '../storage/integrity-upgrade.js'
import { INTEGRITY_META, IntegrityKeys, rewriteSealedRows, rowIdOf } from '../storage/row-integrity.js'
import { unsealed } from '../storage/sealed-storage.js'
import { carryStateManifest, changeKey, committedState } from '../storage/state-manifest.js'
import type { Storage, Stored, Tx } from '../storage/types.js'

export interface RewrapOptions {
  clock: Clock
  /** Who runs it, for the audit log (`cli:<user>`). */
  actor: string
  auditSink?: AuditSink | null
}

export interface RewrapResult {
  /** Private keys whose data key was re-wrapped. */
  rewrapped: number
  /** The database was already under the new master key (an earlier run completed): nothing changed. */
  alreadyDone: boolean
  /** The new master key's id (hex), as ciphertexts name it. */
  masterKeyId: string
}

/**
 * Master-key rotation (`signet rewrap`): re-wraps the data key of every stored
 * private key from `from` to `to`, re-authenticates every row and re-keys the
 * audit chain under keys derived from `to`, and replaces the master-key check
 * value, all in ONE storage transaction. Killed at any moment, the transaction
 * either committed (everything belongs to `to`) or left nothing (all still
 * `from`); there is no state in between. Only each key's 32-byte data key is
 * re-encrypted (envelope.rewrap); the encrypted private key bytes are kept as they are.
 *
 * Written over the Tx interface, so it works on every storage. HSM keys hold no
 * material in storage and are left alone. A key that `from` cannot open fails the
 * whole transaction, naming the key. A row whose MAC does not hold under `from`
 * keeps its old MAC, so it fails under `to` as well: a rewrap never makes a
 * tampered row genuine. An audit log that does not verify under `from` stops the
 * rewrap (see signet check), for the same reason.
 */
export async function rewrapMasterKey(storage: Storage, from: MasterKey, to: MasterKey, options: RewrapOptions): Promise<RewrapResult> {
  if (from.id.equals(to.id)) throw new ConfigError('SIGNET_NEW_MASTER_KEY is the same as SIGNET_MASTER_KEY: make a new one with: openssl rand -base64 32')
  const fromKeys = new IntegrityKeys(from)
  const toKeys = new IntegrityKeys(to)
  const at = options.clock.now()
  const events: AuditEvent[] = []
  // Refusals are thrown from inside the transaction, which rolls it back; storages
  // pass the work's own errors through unchanged. The rows are read as stored, MACs included.
  const result = await unsealed(storage).transaction(async (tx): Promise<RewrapResult> => {
    const check = await tx.getMeta(MASTER_KEY_CHECK)
    if (check === null) throw new ConfigError('this database has no master key yet: create it with signet init')
    if (isDatabaseMasterKey(to, check)) return { rewrapped: 0, alreadyDone: true, masterKeyId: to.idHex }
    checkMasterKey(from, check, 'SIGNET_MASTER_KEY')

    // A database of an earlier version is upgraded under `from` first.
    const upgrade = await sealExistingRows(tx, fromKeys, at)
    if (upgrade) events.push(upgrade)
    const adoption = await adoptStateManifest(tx, fromKeys, at)
    if (adoption && 'refused' in adoption) throw new ConfigError(`${adoption.refused}: run signet check; nothing was changed`)
    if (adoption && 'event' in adoption) events.push(adoption.event)

    // A row that holds under `from` (its MAC, and it is the version the state manifest
    // records) is sealed under `to`; one that does not keeps its old MAC.
    const committed = await committedState(tx, fromKeys)
    const resealed = new Map<string, string>()
    let rewrapped = 0
    await rewriteSealedRows(tx, async (table, row) => {
      let next = row
      if (table === 'keys') {
        const key = row as unknown as Stored<KeyRecord>
        // A key `from` cannot open throws a DecryptionError naming it: the whole transaction rolls back.
        if (key.privateKey !== null) { // null: destroyed, revoked, or kept in an HSM
          next = { ...key, privateKey: rewrap(key.privateKey, from, to, { kid: key.kid, keyset: key.keyset, alg: key.alg }) } as unknown as typeof row
          rewrapped++
        }
      }
      if ((await fromKeys.check(table, row)) !== null || committed.stale(table, row) !== null) return next
      const sealed = toKeys.seal(table, next)
      resealed.set(changeKey(table, rowIdOf(table, row)), sealed.mac)
      return sealed
    })

    const keyedFrom = await rekeyAuditLog(tx, fromKeys, toKeys)
    await tx.setMeta(INTEGRITY_META, toKeys.sealMarker({ version: 2, keyedFrom }))
    await tx.setMeta(MASTER_KEY_CHECK, sealedCheckValue(to))
    // Keyed under `to`: the head of the log is recorded with the event.
    const event = await appendAudit(tx, { at, actor: options.actor, action: 'master_key.rewrap', target: 'master_key', details: { from: from.idHex, to: to.idHex, keys: rewrapped } }, toKeys.audit)
    events.push(event)
    // The rows resealed under `to` are current; any other keeps its entry, and fails.
    await carryStateManifest(tx, committed, resealed, toKeys)
    return { rewrapped, alreadyDone: false, masterKeyId: to.idHex }
  })
  options.auditSink?.write(events)
  return result
}

/**
 * Checks the audit log under `from`, then recomputes every keyed event's HMAC under
 * `to` (events before the keyed chain keep their plain hashes). Returns where the
 * keyed chain starts.
 */
async function rekeyAuditLog(tx: Tx, from: IntegrityKeys, to: IntegrityKeys): Promise<number> {
  const check = await checkAuditLog((after, limit) => tx.listAudit(after, limit), await auditMeta(tx), from)
  const broken = check.failures[0]
  if (broken || check.keyedFrom === null) {
    throw new ConfigError(`the audit log does not verify (${broken ? `${broken.table} ${broken.id}: ${broken.reason}` : 'no integrity marker'}): run signet check; nothing was changed`)
  }
  let prev: AuditEvent | null = null
  for (;;) {
    const page = await tx.listAudit(prev?.id ?? 0, 1000)
    if (page.length === 0) return check.keyedFrom
    for (const event of page) {
      const next: AuditEvent = event.id < check.keyedFrom ? event : chainEvent(prev, event, to.audit)
      if (next !== event) await tx.rechainAudit(next)
      prev = next
    }
  }
}
