import type { Config } from '../config.js'
import { ConfigError } from '../errors.js'
import { SqliteStorage } from './sqlite/index.js'
import type { Storage } from './types.js'

export type StorageConfig = Pick<Config, 'dbPath' | 'databaseUrl'> & Partial<Pick<Config, 'databasePoolSize' | 'databaseTimeoutMs'>>

/**
 * The storage the configuration names: PostgreSQL with SIGNET_DATABASE_URL (shared
 * by several replicas), else the SQLite file SIGNET_DB (the embedded default).
 * Nothing connects here; the first query does.
 */
export async function openStorage(config: StorageConfig): Promise<Storage> {
  if (config.databaseUrl) {
    try {
      new URL(config.databaseUrl)
    } catch {
      throw new ConfigError('SIGNET_DATABASE_URL is not a valid URL (postgres://user@host:5432/database)')
    }
    // Loaded only here: pg is not needed by the SQLite default (README, "Start-up cost").
    const { PostgresStorage } = await import('./postgres/index.js')
    return new PostgresStorage({ url: config.databaseUrl, poolSize: config.databasePoolSize, timeoutMs: config.databaseTimeoutMs })
  }
  return new SqliteStorage(config.dbPath)
}
