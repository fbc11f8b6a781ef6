import { existsSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, it } from 'vitest'
import { SQLITE_MIGRATIONS } from '../../src/storage/sqlite/migrations.js'
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

describe('migration 3 (client claim policy) on a database made before it', () => {
  it('adds the columns and keeps existing clients, with no claim policy', async () => {
    const dir = tempDir('signet-storage-')
    const path = join(dir.path, 'signet.db')
    const old = new Database(path)
    old.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)')
    for (const migration of SQLITE_MIGRATIONS.filter((m) => m.version < 3)) {
      old.exec(migration.sql)
      old.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)').run(migration.version)
    }
    old.prepare("INSERT INTO clients (id, name, keysets, scopes, audiences, max_ttl, token_hash, created_at) VALUES ('old', 'old app', '[\"default\"]', '[\"sign\"]', '[\"api\"]', NULL, 'h', 1)").run()
    old.close()
    const storage = new SqliteStorage(path)
    try {
      await storage.migrate()
      const client = await storage.transaction((tx) => tx.clients.get('old'))
      expect(client).toMatchObject({ id: 'old', audiences: ['api'] })
      expect(client).not.toHaveProperty('subjects')
      expect(client).not.toHaveProperty('requiredClaims')
      await storage.transaction((tx) => tx.clients.update({ ...client!, subjects: ['user-*'] }))
      expect((await storage.transaction((tx) => tx.clients.get('old')))?.subjects).toEqual(['user-*'])
    } finally {
      await storage.close()
      dir.remove()
    }
  })
})
