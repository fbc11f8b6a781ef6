import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import pino from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { ConfigError, StorageUnavailable } from '../../src/errors.js'
import { Signet } from '../../src/runtime.js'
import { advisoryLockKey, advisoryLockRow } from '../../src/storage/postgres/locks.js'
import { PostgresStorage } from '../../src/storage/postgres/index.js'
import { POSTGRES_MIGRATIONS } from '../../src/storage/postgres/migrations.js'
import { newMasterKey } from '../helpers/harness.js'
import { keysetRecord } from './contract.js'
import { createTestSchema, pgBaseUrl, PG_SKIP, urlForSchema, type TestSchema } from './postgres-fixture.js'
import { within } from '../helpers/wait.js'


/** A TCP port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

const suite = pgBaseUrl ? describe : describe.skip

suite('PostgreSQL storage', () => {
  let db: TestSchema
  const opened: PostgresStorage[] = []
  const open = (options: { timeoutMs?: number; poolSize?: number; url?: string } = {}) => {
    const storage = new PostgresStorage({ url: options.url ?? db.url, timeoutMs: options.timeoutMs, poolSize: options.poolSize })
    opened.push(storage)
    return storage
  }

  beforeAll(async () => {
    db = await createTestSchema('signet_pg')
  })
  afterEach(async () => {
    for (const storage of opened.splice(0)) await storage.close()
    // Each test starts from an empty schema.
    await db.query(`DROP SCHEMA ${db.schema} CASCADE; CREATE SCHEMA ${db.schema}`)
  })
  afterAll(async () => {
    await db?.drop()
  })

  /** Backend pids holding the scheduler lease of this schema. */
  async function leaseHolders(): Promise<number[]> {
    const { classid, objid } = advisoryLockRow(advisoryLockKey('scheduler', db.schema))
    const result = await db.query<{ pid: number }>(
      "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 1 AND granted",
      [classid, objid],
    )
    return result.rows.map((r) => r.pid)
  }

  describe('schema and migrations', () => {
    it('applies each migration once when many replicas start at the same instant', async () => {
      const storages = Array.from({ length: 6 }, () => open({ poolSize: 2 }))
      await Promise.all(storages.map((s) => s.migrate()))
      const versions = await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version')
      expect(versions.rows.map((r) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version))
      const generation = await db.query<{ value: string }>("SELECT value FROM meta WHERE name = 'generation'")
      expect(generation.rows).toEqual([{ value: '0' }])
    })

    it('has the one-active-key unique index, so even SQL from outside cannot make two active keys', async () => {
      const storage = open()
      await storage.migrate()
      await storage.transaction((tx) => tx.keysets.insert(keysetRecord('ks')))
      const insert = (kid: string) => db.query(
        "INSERT INTO keys (kid, keyset, alg, state, public_jwk, created_at, max_ttl_seen) VALUES ($1, 'ks', 'ES256', 'active', '{}', 0, 0)", [kid])
      await insert('first')
      await expect(insert('second')).rejects.toMatchObject({ code: '23505' })
      const index = await db.query<{ indexdef: string }>("SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'keys_one_active'", [db.schema])
      expect(index.rows[0]?.indexdef).toMatch(/UNIQUE INDEX keys_one_active .*\(keyset\) WHERE \(state = 'active'::text\)/)
    })

    it('refuses to start on a search_path that names no existing schema, naming the variable, and creates nothing', async () => {
      const url = urlForSchema(pgBaseUrl!, `${db.schema}_missing`)
      const storage = open({ url })
      expect(await storage.getMeta('master_key_check')).toBeNull()
      const error = await storage.migrate().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as Error).message).toMatch(/SIGNET_DATABASE_URL.*CREATE SCHEMA/)
      const config = loadConfig({ SIGNET_MASTER_KEY: newMasterKey(), SIGNET_DATABASE_URL: url })
      await expect(Signet.open({ config, logger: pino({ level: 'silent' }) })).rejects.toThrow(/SIGNET_DATABASE_URL/)
      const schemas = await db.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [`${db.schema}_missing`])
      expect(schemas.rowCount).toBe(0)
    })

    it('keeps schemas apart: writers and schedulers of two schemas never wait on each other', async () => {
      const other = await createTestSchema('signet_pg_other')
      try {
        const mine = open()
        const theirs = open({ url: other.url })
        await Promise.all([mine.migrate(), theirs.migrate()])
        expect(await mine.schedulerLease()).toBe(true)
        expect(await theirs.schedulerLease()).toBe(true)
        await theirs.transaction((tx) => tx.setMeta('where', 'theirs'))
        expect(await mine.getMeta('where')).toBeNull()
        expect(await theirs.getMeta('where')).toBe('theirs')
        await theirs.close()
      } finally {
        await other.drop()
      }
    })
  })

  describe('unreachable database', () => {
    it('answers 503 storage_unavailable for every operation, says why at first contact, and never throws from the lease', async () => {
      const url = `postgres://postgres@127.0.0.1:${await closedPort()}/test`
      const storage = open({ url, timeoutMs: 1000 })
      const first = await storage.getMeta('x').catch((e: unknown) => e)
      expect(first).toBeInstanceOf(StorageUnavailable)
      expect((first as Error).message).toMatch(/SIGNET_DATABASE_URL.*ECONNREFUSED/)
      for (const operation of [() => storage.generation(), () => storage.snapshot(), () => storage.ping(), () => storage.listAudit(0, 1), () => storage.transaction(async () => 1)]) {
        await expect(operation()).rejects.toMatchObject({ code: 'storage_unavailable', status: 503 })
      }
      expect(await storage.schedulerLease()).toBe(false)
    })

    it('makes `signet serve` refuse to start with a message naming SIGNET_DATABASE_URL', async () => {
      const config = loadConfig({ SIGNET_MASTER_KEY: newMasterKey(), SIGNET_DATABASE_URL: `postgres://postgres@127.0.0.1:${await closedPort()}/test` })
      await expect(Signet.open({ config, logger: pino({ level: 'silent' }) })).rejects.toThrow(/SIGNET_DATABASE_URL/)
    })
  })

  describe('timeouts and pool', () => {
    it('gives up waiting for a write lock held elsewhere after the timeout, then works once it is free', async () => {
      const storage = open({ timeoutMs: 300 })
      await storage.migrate()
      const holder = new pg.Client({ connectionString: pgBaseUrl! })
      await holder.connect()
      try {
        await holder.query('SELECT pg_advisory_lock($1::bigint)', [advisoryLockKey('write', db.schema)])
        const started = Date.now()
        await expect(storage.transaction((tx) => tx.setMeta('k', 'v'))).rejects.toMatchObject({ code: 'storage_unavailable' })
        expect(Date.now() - started).toBeLessThan(5000)
        await holder.query('SELECT pg_advisory_unlock($1::bigint)', [advisoryLockKey('write', db.schema)])
        await storage.transaction((tx) => tx.setMeta('k', 'v'))
        expect(await storage.getMeta('k')).toBe('v')
      } finally {
        await holder.end()
      }
    })

    it('opens at most poolSize connections however many reads run at once', async () => {
      const name = `signet_pool_${process.pid}`
      const url = new URL(db.url)
      url.searchParams.set('application_name', name)
      const storage = open({ url: url.toString(), poolSize: 2 })
      await storage.migrate()
      let most = 0
      const sample = async () => {
        const result = await db.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', [name])
        most = Math.max(most, Number(result.rows[0]?.n))
      }
      await Promise.all([...Array.from({ length: 20 }, () => storage.snapshot()), sample(), sample()])
      await sample()
      expect(most).toBeGreaterThan(0)
      expect(most).toBeLessThanOrEqual(2)
    })

    it('recovers by itself when its connections are terminated', async () => {
      // Named connections, so only this storage's are terminated (other suites share the server).
      const name = `signet_kill_${process.pid}`
      const url = new URL(db.url)
      url.searchParams.set('application_name', name)
      const storage = open({ url: url.toString() })
      await storage.migrate()
      await Promise.all([storage.snapshot(), storage.snapshot(), storage.transaction((tx) => tx.setMeta('before', '1'))])
      const killed = await db.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name])
      expect(killed.rowCount).toBeGreaterThan(0)
      // The broken pooled connections fail at most once each, then fresh ones take over.
      await within(3000, async () => (await storage.generation().then(() => true, () => false)))
      await storage.transaction((tx) => tx.setMeta('after', '1'))
      expect(await storage.getMeta('after')).toBe('1')
    })
  })

  describe('scheduler lease', () => {
    it('is held by one storage at a time and moves on when the holder closes', async () => {
      const a = open()
      const b = open()
      await a.migrate()
      expect(await a.schedulerLease()).toBe(true)
      expect(await b.schedulerLease()).toBe(false)
      expect(await a.schedulerLease()).toBe(true)
      expect(await leaseHolders()).toHaveLength(1)
      await a.close()
      expect(await b.schedulerLease()).toBe(true)
      expect(await leaseHolders()).toHaveLength(1)
    })

    it('moves on when the holder loses its connection, and the old holder knows it lost it', async () => {
      const a = open()
      const b = open()
      await a.migrate()
      expect(await a.schedulerLease()).toBe(true)
      expect(await b.schedulerLease()).toBe(false)
      const [holder] = await leaseHolders()
      await db.query('SELECT pg_terminate_backend($1)', [holder])
      await within(3000, async () => (await leaseHolders()).length === 0)
      expect(await b.schedulerLease()).toBe(true)
      expect(await a.schedulerLease()).toBe(false)
      expect(await leaseHolders()).not.toContain(holder)
    })
  })

  describe('change notifications', () => {
    it('reach other storages within 1 s of a commit, only for writes, only for this schema', async () => {
      const writer = open()
      const reader = open()
      await writer.migrate()
      let calls = 0
      reader.onChange(() => calls++)
      await reader.schedulerLease() // the session connection is up and LISTENing
      await writer.transaction(async (tx) => {
        await tx.keysets.list()
      })
      await sleep(300)
      expect(calls).toBe(0)

      const started = Date.now()
      await writer.transaction((tx) => tx.setMeta('k', '1'))
      await within(1000, () => calls === 1)
      expect(Date.now() - started).toBeLessThan(1000)

      // A rolled-back change notifies nobody.
      await writer.transaction(async (tx) => {
        await tx.setMeta('k', '2')
        throw new StorageUnavailable('abandon')
      }).catch(() => {})

      // Another installation in another schema of the same database is not heard.
      const other = await createTestSchema('signet_pg_notify')
      try {
        const stranger = open({ url: other.url })
        await stranger.migrate()
        await stranger.transaction((tx) => tx.setMeta('k', 'x'))
        await stranger.close()
      } finally {
        await other.drop()
      }
      await sleep(300)
      expect(calls).toBe(1)
    })

    it('tell the listener to reconcile when the notification connection comes back after a loss', async () => {
      const storage = open()
      await storage.migrate()
      let calls = 0
      const stop = storage.onChange(() => calls++)
      expect(await storage.schedulerLease()).toBe(true)
      const [session] = await leaseHolders()
      await db.query('SELECT pg_terminate_backend($1)', [session])
      await within(3000, async () => (await leaseHolders()).length === 0)
      // The runtime's loop calls schedulerLease() every poll interval; that reconnects.
      await within(3000, async () => (await storage.schedulerLease()) && calls > 0)
      stop()
      const before = calls
      await open().transaction((tx) => tx.setMeta('after-stop', '1'))
      await sleep(300)
      expect(calls).toBe(before)
    })
  })
})

if (!pgBaseUrl) {
  describe('PostgreSQL storage', () => {
    it.skip(PG_SKIP, () => {})
  })
}
