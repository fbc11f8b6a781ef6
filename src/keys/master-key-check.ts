import { ownsDatabase, type MasterKey } from '../crypto/master-key.js'
import { ConfigError } from '../errors.js'

/**
 * Whether a master key is the one of a database: the one check behind every
 * refusal of a wrong key (start-up, CLI commands, rewrap) and behind sealing a
 * running instance whose database was re-keyed by another process.
 */

/** The meta row holding the master key's check value (crypto/master-key.ts derives it). */
export const MASTER_KEY_CHECK = 'master_key_check'

/** A master key that is not the one of the database it was given; nothing was written. */
export class MasterKeyMismatch extends ConfigError {}

/** Why a running instance is sealed when its database now belongs to another master key. */
export const REKEYED_DATABASE = 'the master key does not match this database (was it rewrapped?)'

/**
 * Whether `key` is the master key of a database whose MASTER_KEY_CHECK row holds
 * `stored`; a database not yet initialised (no row) belongs to any key. Constant time.
 */
export function isDatabaseMasterKey(key: MasterKey, stored: string | null | undefined): boolean {
  return stored === null || stored === undefined || ownsDatabase(key, stored)
}

/** The refusal of keys none of which is the database's, named by the variables they came from. */
export function wrongMasterKey(...variables: [string] | [string, string]): MasterKeyMismatch {
  const which = variables.length === 1 ? `${variables[0]} is not` : `neither ${variables[0]} nor ${variables[1]} is`
  return new MasterKeyMismatch(`${which} the master key of this database: nothing was changed`)
}

/** Refuses, before anything is written, a master key that is not the database's; `variable` names where it came from. */
export function checkMasterKey(key: MasterKey, stored: string | null | undefined, variable: string): void {
  if (!isDatabaseMasterKey(key, stored)) throw wrongMasterKey(variable)
}

/** The variables that give the master key, as messages name them. */
const MASTER_KEY_SOURCES = 'SIGNET_MASTER_KEY (or SIGNET_MASTER_KEY_FILE, or SIGNET_MASTER_KEY_PKCS11)'

/** The refusal when no master key is configured; `why` says who needs it (": this database holds encrypted keys"). */
export function masterKeyRequired(why: string): ConfigError {
  return new ConfigError(`${MASTER_KEY_SOURCES} is required${why}`)
}

/** Refuses, naming both sources and `why`, when the configuration gives no master key at all. */
export function requireMasterKeySource(config: { masterKey: unknown; masterKeyPkcs11: string | null }, why: string): void {
  if (!config.masterKey && config.masterKeyPkcs11 === null) throw masterKeyRequired(why)
}
