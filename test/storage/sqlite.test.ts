import { existsSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { SqliteStorage } from '../../src/storage/sqlite/index.js'
import { tempDir } from '../helpers/harness.js'
import { storageContract } from './contract.js'

storageContract('sqlite', async () => {
  const dir = tempDir('signet-storage-')
  const path = join(dir.path, 'signet.db')
  const storage = new SqliteStorage(path)
  return {
    storage,
    config: { dbPath: path, databaseUrl: null },
    open: () => new SqliteStorage(path),
    concurrent: () => storage,
    tables: async () => {
      if (!existsSync(path)) return []
      const db = new Database(path, { readonly: true })
      try {
        return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[]).sort()
      } finally {
        db.close()
      }
    },
    destroy: async () => {
      await storage.close()
      dir.remove()
    },
  }
})
