import type { Config } from '../config.js'
import { ConfigError } from '../errors.js'
import { SqliteStorage } from './sqlite/index.js'
import type { Storage } from './types.js'

/** The storage the configuration names: PostgreSQL with SIGNET_DATABASE_URL, else SQLite. */
export async function openStorage(config: Pick<Config, 'dbPath' | 'databaseUrl'>): Promise<Storage> {
  if (config.databaseUrl) {
    throw new ConfigError('SIGNET_DATABASE_URL: PostgreSQL storage is not available in this build')
  }
  return new SqliteStorage(config.dbPath)
}
