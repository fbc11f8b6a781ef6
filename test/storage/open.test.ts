import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { ConfigError } from '../../src/errors.js'
import { openStorage } from '../../src/storage/open.js'
import { PostgresStorage } from '../../src/storage/postgres/index.js'
import { SqliteStorage } from '../../src/storage/sqlite/index.js'
import { tempDir } from '../helpers/harness.js'

describe('openStorage and the PostgreSQL variables', () => {
  it('opens SQLite by default and PostgreSQL when SIGNET_DATABASE_URL is set, connecting to nothing yet', async () => {
    const sqlite = await openStorage(loadConfig({ SIGNET_DB: '/nonexistent/dir/signet.db' }))
    expect(sqlite).toBeInstanceOf(SqliteStorage)
    expect(sqlite.kind).toBe('sqlite')
    // No server listens on port 1: opening must not fail, only the first query would.
    const postgres = await openStorage(loadConfig({ SIGNET_DATABASE_URL: 'postgres://signet@127.0.0.1:1/signet' }))
    expect(postgres).toBeInstanceOf(PostgresStorage)
    expect(postgres.kind).toBe('postgres')
    expect(typeof postgres.onChange).toBe('function')
    expect(typeof postgres.schedulerLease).toBe('function')
    expect(sqlite.schedulerLease).toBeUndefined()
    await postgres.close()
    await sqlite.close()
  })

  it('refuses a SIGNET_DATABASE_URL that is not a postgres URL, naming the variable', async () => {
    expect(() => loadConfig({ SIGNET_DATABASE_URL: 'mysql://x@y/z' })).toThrow(/SIGNET_DATABASE_URL/)
    await expect(openStorage({ dbPath: 'x', databaseUrl: 'postgres://[broken' })).rejects.toThrow(ConfigError)
    await expect(openStorage({ dbPath: 'x', databaseUrl: 'postgres://[broken' })).rejects.toThrow(/SIGNET_DATABASE_URL is not a valid URL/)
  })

  it('reads SIGNET_DATABASE_URL from a file (it may hold a password), and refuses both forms at once without echoing either', () => {
    const dir = tempDir('signet-url-')
    try {
      const file = join(dir.path, 'database-url')
      writeFileSync(file, 'postgres://signet:s3cret-pass@db.internal:5432/signet\n', { mode: 0o600 })
      expect(loadConfig({ SIGNET_DATABASE_URL_FILE: file }).databaseUrl).toBe('postgres://signet:s3cret-pass@db.internal:5432/signet')
      const both = (() => {
        try {
          loadConfig({ SIGNET_DATABASE_URL_FILE: file, SIGNET_DATABASE_URL: 'postgres://signet:other-pass@db/x' })
        } catch (error) {
          return error as Error
        }
        return null
      })()
      expect(both?.message).toMatch(/SIGNET_DATABASE_URL and SIGNET_DATABASE_URL_FILE/)
      expect(both?.message).not.toMatch(/pass/)
      writeFileSync(file, 'mysql://signet:s3cret-pass@db/x')
      expect(() => loadConfig({ SIGNET_DATABASE_URL_FILE: file })).toThrow(/SIGNET_DATABASE_URL/)
      expect(() => loadConfig({ SIGNET_DATABASE_URL_FILE: file })).not.toThrow(/s3cret/)
    } finally {
      dir.remove()
    }
  })

  it('reads pool size, timeout and outage grace with their defaults', () => {
    const defaults = loadConfig({})
    expect(defaults).toMatchObject({ databasePoolSize: 10, databaseTimeoutMs: 5000, storageOutageGrace: 300 })
    const set = loadConfig({ SIGNET_DATABASE_POOL_SIZE: '3', SIGNET_DATABASE_TIMEOUT_MS: '250', SIGNET_STORAGE_OUTAGE_GRACE: '0' })
    expect(set).toMatchObject({ databasePoolSize: 3, databaseTimeoutMs: 250, storageOutageGrace: 0 })
  })

  it.each([
    ['SIGNET_DATABASE_POOL_SIZE', '0'],
    ['SIGNET_DATABASE_POOL_SIZE', 'ten'],
    ['SIGNET_DATABASE_TIMEOUT_MS', '10'],
    ['SIGNET_DATABASE_TIMEOUT_MS', '1.5'],
    ['SIGNET_STORAGE_OUTAGE_GRACE', '-1'],
    ['SIGNET_STORAGE_OUTAGE_GRACE', '100000'],
  ])('refuses %s=%s with a message naming it', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(name))
  })

  it('refuses a misspelt PostgreSQL variable instead of ignoring it, and ignores SIGNET_TEST_* variables', () => {
    expect(() => loadConfig({ SIGNET_DATABASE_POOLSIZE: '5' })).toThrow(/SIGNET_DATABASE_POOLSIZE is not a Signet variable/)
    expect(() => loadConfig({ SIGNET_TEST_DATABASE_URL: 'postgres://x@y/z' })).not.toThrow()
  })
})
