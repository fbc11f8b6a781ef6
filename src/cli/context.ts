import { existsSync } from 'node:fs'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import pino, { type Logger } from 'pino'
import { loadConfig, type Config } from '../config.js'
import { isLegacyCheckValue } from '../crypto/master-key.js'
import { ConfigError, KeysetNotFound } from '../errors.js'
import type { KeyRecord, Keyset } from '../keys/model.js'
import { checkMasterKey, MASTER_KEY_CHECK, requireMasterKeySource } from '../keys/master-key-check.js'
import { masterKeyVariable } from '../keys/master-key-source.js'
import { DEV_DATA_DIR } from '../ops/dev-state.js'
import type { Signet } from '../runtime.js'
import { openStorage } from '../storage/open.js'
import type { IntegrityKeys } from '../storage/row-integrity.js'
import type { Storage } from '../storage/types.js'

/**
 * How commands reach Signet: the same configuration, storage and services as the
 * server, used directly on the database. A running server sees each change within
 * a poll interval (it watches the storage generation).
 */

/** The configuration from the environment, checked exactly as `signet serve` checks it. */
export function readConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return loadConfig(env)
}

/**
 * Logs of a command go to stderr and, unless SIGNET_LOG_LEVEL asks for more, only
 * when something goes wrong, so stdout holds nothing but the command's answer.
 */
export function commandLogger(env: NodeJS.ProcessEnv = process.env): Logger {
  return pino({ level: env.SIGNET_LOG_LEVEL ?? 'error' }, pino.destination(2))
}

/** Who made a change, as the audit log records it: `cli:<os user>`. */
export function cliActor(): string {
  try {
    return `cli:${userInfo().username}`
  } catch {
    return 'cli' // a container user without a passwd entry
  }
}

/** Names the database in messages, without ever printing a connection URL (it may hold a password). */
export function describeDatabase(config: Pick<Config, 'dbPath' | 'databaseUrl'>): string {
  return config.databaseUrl ? 'the PostgreSQL database of SIGNET_DATABASE_URL' : config.dbPath
}

/**
 * Why there is no database, and what to do. Next to the data of `signet dev` the
 * answer is that data (or the dev server's API), never a second `signet init`.
 */
function missingDatabase(config: Pick<Config, 'dbPath' | 'databaseUrl'>): string {
  const where = `no Signet database at ${describeDatabase(config)}`
  const dev = join(DEV_DATA_DIR, 'signet.db')
  if (!config.databaseUrl && existsSync(dev)) {
    return `${where}. The data of signet dev is in ${DEV_DATA_DIR}: use it with SIGNET_DB=${dev} SIGNET_MASTER_KEY_FILE=${join(DEV_DATA_DIR, 'master.key')}, or its running server with --url <its url> and SIGNET_ADMIN_TOKEN_FILE=${join(DEV_DATA_DIR, 'admin.token')}`
  }
  return `${where}: create one with signet init, or administer a running Signet with --url (SIGNET_URL) and SIGNET_ADMIN_TOKEN`
}

export interface OpenOptions {
  /** Apply pending schema migrations (commands that write). */
  migrate: boolean
  /** When SIGNET_MASTER_KEY is set, refuse a database it does not belong to (an HSM key is checked by Signet.open). */
  checkMasterKey?: boolean
}

/**
 * Opens an existing, initialised database. A missing database is an error here:
 * only `init`, `dev` and `serve` create one. Nothing is written unless `migrate`.
 */
export async function openExisting(config: Config, options: OpenOptions): Promise<Storage> {
  const storage = await openStorage(config)
  try {
    const check = await storage.getMeta(MASTER_KEY_CHECK)
    if (check === null) throw new ConfigError(missingDatabase(config))
    if ((options.checkMasterKey ?? true) && config.masterKey) checkMasterKey(config.masterKey, check, masterKeyVariable(config))
    if (options.migrate) await storage.migrate()
    return storage
  } catch (error) {
    await storage.close().catch(() => {})
    throw error
  }
}

/**
 * Runs `work` on an existing database, read-only. With SIGNET_MASTER_KEY, on a
 * database whose rows are authenticated, `work` sees only rows that pass their
 * check, as the server does (the others are logged at error); without it, rows
 * as stored: `signet check` says whether they can be trusted.
 */
export async function withStorage<T>(config: Config, work: (storage: Storage) => Promise<T>, options: OpenOptions = { migrate: false }): Promise<T> {
  const storage = await openExisting(config, options)
  try {
    return await work(await checkedRows(config, storage))
  } finally {
    await storage.close()
  }
}

async function checkedRows(config: Config, storage: Storage): Promise<Storage> {
  const masterKey = config.masterKey
  if (!masterKey) return storage
  const { INTEGRITY_META, IntegrityKeys } = await import('../storage/row-integrity.js')
  // Rows as stored only in a database of an earlier version, not yet upgraded: an
  // upgraded one keeps its sealed check value even when its marker is deleted.
  const check = await storage.getMeta(MASTER_KEY_CHECK)
  if ((await storage.getMeta(INTEGRITY_META)) === null && (check === null || isLegacyCheckValue(check))) return storage
  const { IntegrityFailures, sealStorage } = await import('../storage/sealed-storage.js')
  const logger = commandLogger()
  const failures = new IntegrityFailures((failure) => logger.error({ integrity: failure }, `integrity check failed: ${failure.table} row ${failure.id} is ignored: ${failure.reason} (see signet check)`))
  return sealStorage(storage, new IntegrityKeys(masterKey), failures)
}

/**
 * Runs `work` on an existing database, read-only, rows as stored, with the keys
 * that authenticate its rows and audit log: commands that check them need
 * SIGNET_MASTER_KEY.
 */
export async function withIntegrityKeys<T>(config: Config, command: string, work: (storage: Storage, keys: IntegrityKeys) => Promise<T>): Promise<T> {
  requireMasterKeySource(config, ` by signet ${command}: rows and the audit log are authenticated under it`)
  const { IntegrityKeys } = await import('../storage/row-integrity.js')
  const { openMasterKey } = await import('../keys/master-key-source.js')
  // The master key may live in a PKCS#11 token: opened here, closed when done.
  const opened = await openMasterKey(config)
  try {
    const storage = await openExisting({ ...config, masterKey: opened.masterKey }, { migrate: false })
    try {
      return await work(storage, new IntegrityKeys(opened.masterKey!))
    } finally {
      await storage.close()
    }
  } finally {
    await opened.close()
  }
}

/** A keyset (default: SIGNET_DEFAULT_KEYSET) and its keys, read from the database; 404 if there is none. */
export async function readKeyset(config: Config, name: string | undefined): Promise<{ keyset: Keyset; keys: KeyRecord[] }> {
  const wanted = name ?? config.defaultKeyset
  const snapshot = await withStorage(config, (storage) => storage.snapshot())
  const keyset = snapshot.keysets.find((k) => k.name === wanted)
  if (!keyset) throw new KeysetNotFound(`no keyset ${wanted}`)
  return { keyset, keys: snapshot.keys.filter((key) => key.keyset === wanted) }
}

/**
 * Runs `work` with a Signet over an existing database, for commands that create or
 * change keys: they need the master key. No keystore is loaded (nothing signs here).
 */
export async function withSignet<T>(config: Config, command: string, work: (signet: Signet) => Promise<T>): Promise<T> {
  requireMasterKeySource(config, ` by signet ${command}`)
  const { Signet } = await import('../runtime.js') // loaded only by commands that change keys
  const storage = await openExisting(config, { migrate: false, checkMasterKey: false })
  // Signet.open checks the master key against the database before it writes anything.
  const signet = await Signet.open({ config, storage, logger: commandLogger(), keystore: false })
  try {
    return await work(signet)
  } finally {
    await signet.close()
  }
}
