import pg from 'pg'
import { ConfigError } from '../../errors.js'
import type { AuditEvent } from '../../keys/model.js'
import { Mutex } from '../../util/mutex.js'
import type { Row } from '../rows.js'
import { SqlTx, driverFailure, type SqlDriver } from '../sql-tx.js'
import type { Snapshot, Storage, Tx } from '../types.js'
import { advisoryLockKey, CHANGE_CHANNEL } from './locks.js'
import { POSTGRES_MIGRATIONS } from './migrations.js'
import { Session } from './session.js'

export interface PostgresOptions {
  /** postgres://user@host:port/db; `?options=-c%20search_path%3Dname` selects a schema. */
  url: string
  /** Most pooled connections (SIGNET_DATABASE_POOL_SIZE); default 10. */
  poolSize?: number
  /** Connect, statement and lock-wait timeout in ms (SIGNET_DATABASE_TIMEOUT_MS); default 5000. */
  timeoutMs?: number
}

/** A driver failure as a Signet error: SQLSTATE class 23 is a broken constraint (409), anything else 503. */
function storageFailure(error: unknown, firstContact = false): Error {
  const code = (error as { code?: unknown } | null)?.code
  // Before the database ever answered (start-up, CLI), say why: a refused connection,
  // an unknown database or user. Server and socket errors never hold the URL's password.
  const detail = firstContact ? `cannot use PostgreSQL (SIGNET_DATABASE_URL): ${(error as Error)?.message ?? String(error)}` : undefined
  return driverFailure(error, typeof code === 'string' && code.startsWith('23'), detail)
}

/** Runs one driver call, turning its failure into a Signet error. */
async function guarded<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation()
  } catch (error) {
    throw storageFailure(error)
  }
}

/** The shared SQL's `?` placeholders as PostgreSQL's numbered ones (`$1, $2, …`). */
const numbered = (sql: string): string => {
  let n = 0
  return sql.replace(/\?/g, () => `$${++n}`)
}

/** The shared SQL (storage/sql-tx.ts) over the pool, or over one connection inside a transaction. */
class PostgresDriver implements SqlDriver {
  constructor(readonly db: pg.Pool | pg.PoolClient) {}

  async all(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return (await guarded(() => this.db.query(numbered(sql), [...params]))).rows
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<void> {
    await guarded(() => this.db.query(numbered(sql), [...params]))
  }
}

/**
 * Storage in PostgreSQL through node-postgres, shared by every replica (and the
 * CLI) that points at the same database and schema.
 *
 * - Every transaction first takes a transaction-level advisory lock, the "write
 *   lock", so writers serialise across processes; at READ COMMITTED each later
 *   statement sees everything committed before the lock was granted, which is what
 *   KeyService's re-read-and-re-plan needs for exactly-once changes.
 * - A change bumps the generation and NOTIFYs in the same transaction, so other
 *   replicas hear of it on commit (Storage.onChange).
 * - The scheduler lease is a session-level advisory lock on a dedicated connection
 *   (see session.ts).
 * - The unique partial index keys_one_active refuses a second active key whatever
 *   happens above it.
 */
export class PostgresStorage implements Storage {
  readonly kind = 'postgres'
  readonly #pool: pg.Pool
  /** The shared SQL over the pool, for reads outside a transaction. */
  readonly #reads: SqlTx
  readonly #clientConfig: pg.ClientConfig
  /** One transaction per process at a time: the others would only wait on the lock holding a pool connection. */
  readonly #writeLock = new Mutex()
  readonly #listeners = new Set<() => void>()
  #schema: Promise<string | null> | null = null
  #session: Session | null = null
  #closed = false

  constructor(options: PostgresOptions) {
    const timeout = options.timeoutMs ?? 5000
    this.#clientConfig = {
      connectionString: options.url,
      connectionTimeoutMillis: timeout,
      // Client side: a query that hangs (network gone) fails instead of stalling the caller.
      query_timeout: timeout,
      // Server side: a statement or a wait for the write lock gives up after the same time,
      // and a transaction left idle by a frozen process releases its locks.
      statement_timeout: timeout,
      idle_in_transaction_session_timeout: timeout,
      keepAlive: true,
      fallback_application_name: 'signet',
    }
    this.#pool = new pg.Pool({ ...this.#clientConfig, max: options.poolSize ?? 10, idleTimeoutMillis: 30_000 })
    // An idle pooled connection that breaks is replaced on next use; without this handler it would crash the process.
    this.#pool.on('error', () => {})
    this.#reads = new SqlTx(new PostgresDriver(this.#pool))
  }

  /** The schema tables live in (first existing one of search_path), or null when none exists yet. */
  async schema(): Promise<string | null> {
    this.#schema ??= this.#pool.query<{ schema: string | null }>('SELECT current_schema() AS schema').then((result) => result.rows[0]?.schema ?? null)
    try {
      const schema = await this.#schema
      if (schema === null) this.#schema = null // it may be created later
      return schema
    } catch (error) {
      this.#schema = null // try again next time
      throw storageFailure(error, true)
    }
  }

  async #requireSchema(): Promise<string> {
    const schema = await this.schema()
    if (schema === null) {
      throw new ConfigError('SIGNET_DATABASE_URL: its search_path names no existing schema; create the schema first (CREATE SCHEMA name)')
    }
    return schema
  }

  /**
   * Runs `work` between BEGIN and COMMIT on one pooled connection; on any error the
   * transaction is rolled back, and a connection that broke is destroyed rather
   * than returned to the pool. With
   * `mapWorkErrors` false, errors thrown by `work` itself pass unchanged (the
   * queries it makes map their own failures), so a bug in the caller's work is not
   * reported as storage being down.
   */
  async #inTransaction<T>(begin: string, work: (client: pg.PoolClient) => Promise<T>, mapWorkErrors = true): Promise<T> {
    let client: pg.PoolClient
    try {
      client = await this.#pool.connect()
    } catch (error) {
      throw storageFailure(error)
    }
    // A connection that breaks between two queries emits 'error'; unhandled, it would crash the process.
    let broken: Error | undefined
    const onError = (error: Error) => {
      broken = error
    }
    client.on('error', onError)
    let inWork = false
    try {
      await client.query(begin)
      inWork = true
      const result = await work(client)
      inWork = false
      await client.query('COMMIT')
      return result
    } catch (error) {
      try {
        await client.query('ROLLBACK')
      } catch (rollbackError) {
        broken ??= rollbackError as Error
      }
      throw inWork && !mapWorkErrors ? error : storageFailure(error)
    } finally {
      client.off('error', onError)
      client.release(broken)
    }
  }

  async migrate(): Promise<void> {
    await this.#writeLock.run(async () => {
      const schema = await this.#requireSchema()
      await this.#inTransaction('BEGIN', async (client) => {
        // Replicas starting together queue here; each migration is applied once.
        await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [advisoryLockKey('write', schema)])
        await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)')
        const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => Number(r.version)))
        for (const migration of POSTGRES_MIGRATIONS) {
          if (done.has(migration.version)) continue
          await client.query(migration.sql)
          await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [migration.version, Date.now()])
        }
      })
    })
  }

  /** Reads a meta value; before migrate() has run (no meta table yet) it answers null and writes nothing. */
  async getMeta(name: string): Promise<string | null> {
    if ((await this.schema()) === null) return null
    const [table] = await this.#reads.driver.all("SELECT to_regclass('meta') IS NOT NULL AS exists")
    return table?.exists ? this.#reads.getMeta(name) : null
  }

  async generation(): Promise<number> {
    return Number(await this.#reads.getMeta('generation'))
  }

  async snapshot(): Promise<Snapshot> {
    // One snapshot for all the reads, so the parts agree with each other.
    return this.#inTransaction('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', (client) => new SqlTx(new PostgresDriver(client)).snapshot())
  }

  async transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    return this.#writeLock.run(async () => {
      const schema = await this.#requireSchema()
      // READ COMMITTED: every statement after the lock sees all that earlier lock holders committed.
      return this.#inTransaction('BEGIN ISOLATION LEVEL READ COMMITTED', async (client) => {
        await guarded(() => client.query('SELECT pg_advisory_xact_lock($1::bigint)', [advisoryLockKey('write', schema)]))
        const tx = new SqlTx(new PostgresDriver(client))
        const result = await work(tx)
        if (tx.wrote) {
          const bumped = await guarded(() => client.query<{ value: string }>("UPDATE meta SET value = (value::bigint + 1)::text WHERE name = 'generation' RETURNING value"))
          // Delivered on COMMIT only, to every session LISTENing in this database.
          await guarded(() => client.query('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, `${schema}:${bumped.rows[0]?.value ?? ''}`]))
        }
        return result
      }, false)
    })
  }

  async listAudit(after: number, limit: number): Promise<AuditEvent[]> {
    return this.#reads.listAudit(after, limit)
  }

  async ping(): Promise<void> {
    await this.#reads.driver.all('SELECT 1')
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener)
    void this.#ensureSession().then((session) => session.connect()).catch(() => {
      // Unreachable now: the runtime's next schedulerLease() call tries again.
    })
    return () => {
      this.#listeners.delete(listener)
    }
  }

  async schedulerLease(): Promise<boolean> {
    try {
      return await (await this.#ensureSession()).lease()
    } catch {
      return false
    }
  }

  async #ensureSession(): Promise<Session> {
    if (this.#closed) throw new Error('the storage is closed')
    const schema = await this.#requireSchema()
    this.#session ??= new Session({
      client: this.#clientConfig,
      schema,
      leaseKey: advisoryLockKey('scheduler', schema),
      onChange: () => {
        for (const listener of this.#listeners) listener()
      },
    })
    return this.#session
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#listeners.clear()
    await this.#session?.close()
    // Waits for a transaction in flight, then closes every pooled connection.
    await this.#writeLock.run(() => this.#pool.end()).catch(() => {})
  }
}
