import { auditedTransaction, type AuditSink } from '../audit/recorder.js'
import type { Clock } from '../clock.js'
import { rewrap } from '../crypto/envelope.js'
import type { MasterKey } from '../crypto/masterKey.js'
import { ConfigError } from '../errors.js'
import { MASTER_KEY_CHECK } from '../keys/keystore.js'
import type { Storage } from '../storage/types.js'

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
 * private key from `from` to `to` and replaces the master-key check value, all in
 * ONE storage transaction. Killed at any moment, the transaction either committed
 * (every key and the check value belong to `to`) or left nothing (all still
 * `from`); there is no state in between. Only each key's 32-byte data key is
 * re-encrypted (envelope.rewrap); the encrypted private key bytes are kept as they are.
 *
 * Written over the Tx interface, so it works on every storage. HSM keys hold no
 * material in storage and are left alone. A key that `from` cannot open (a
 * tampered row) fails the whole transaction, naming the key.
 */
export async function rewrapMasterKey(storage: Storage, from: MasterKey, to: MasterKey, options: RewrapOptions): Promise<RewrapResult> {
  if (from.id.equals(to.id)) throw new ConfigError('SIGNET_NEW_MASTER_KEY is the same as SIGNET_MASTER_KEY: make a new one with: openssl rand -base64 32')
  // Refusals are thrown from inside the transaction, which rolls it back; storages
  // pass the work's own errors through unchanged.
  return auditedTransaction(storage, options.auditSink ?? null, () => options.clock.now(), async (tx, audit) => {
    const check = await tx.getMeta(MASTER_KEY_CHECK)
    if (check === null) throw new ConfigError('this database has no master key yet: create it with signet init')
    if (to.matches(check)) return { rewrapped: 0, alreadyDone: true, masterKeyId: to.idHex }
    if (!from.matches(check)) throw new ConfigError('SIGNET_MASTER_KEY is not the master key of this database: nothing was changed')

    let rewrapped = 0
    for (const key of await tx.listKeys()) {
      if (key.privateKey === null) continue // destroyed, revoked, or kept in an HSM
      // A key `from` cannot open throws a DecryptionError naming it: the whole transaction rolls back.
      const privateKey = rewrap(key.privateKey, from, to, { kid: key.kid, keyset: key.keyset, alg: key.alg })
      await tx.updateKey({ ...key, privateKey })
      rewrapped++
    }
    await tx.setMeta(MASTER_KEY_CHECK, to.checkValue())
    await audit({ actor: options.actor, action: 'master_key.rewrap', target: 'master_key', details: { from: from.idHex, to: to.idHex, keys: rewrapped } })
    return { rewrapped, alreadyDone: false, masterKeyId: to.idHex }
  })
}
