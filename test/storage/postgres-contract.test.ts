import { describe, it } from 'vitest'
import { PostgresStorage } from '../../src/storage/postgres/index.js'
import { storageContract } from './contract.js'
import { createTestSchema, pgBaseUrl, PG_SKIP } from './postgres-fixture.js'

if (pgBaseUrl) {
  storageContract('postgres', async () => {
    const schema = await createTestSchema('signet_contract')
    const storage = new PostgresStorage({ url: schema.url, poolSize: 4 })
    return {
      storage,
      config: { dbPath: '/nonexistent', databaseUrl: schema.url, databasePoolSize: 4 },
      open: () => new PostgresStorage({ url: schema.url, poolSize: 4 }),
      concurrent: () => new PostgresStorage({ url: schema.url, poolSize: 4 }),
      tables: async () => (await schema.query<{ name: string }>('SELECT tablename AS name FROM pg_tables WHERE schemaname = $1 ORDER BY 1', [schema.schema])).rows.map((r) => r.name),
      destroy: async () => {
        await storage.close()
        await schema.drop()
      },
    }
  })
} else {
  describe('storage contract: postgres', () => {
    it.skip(PG_SKIP, () => {})
  })
}
