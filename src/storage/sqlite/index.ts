import { chmodSync, existsSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import type { AuditEvent } from '../../keys/model.js'
import { Mutex } from '../../util/mutex.js'
import type { Row } from '../rows.js'
import { SqlTx, driverFailure, type SqlDriver } from '../sql-tx.js'
import type { Snapshot, Storage, Tx } from '../types.js'
import { SQLITE_MIGRATIONS } from './migrations.js'

type Db = Database.Database

/** A driver failure as a Signet error (409 for a broken constraint, else 503). */
const storageFailure = (error: unknown): Error =>
  driverFailure(error, error instanceof Database.SqliteError && error.code.startsWith('SQLITE_CONSTRAINT'))

/** Runs one driver call, turning its failure into a Signet error. */
function guarded<T>(operation: () => T): T {
  try {
    return operation()
  } catch (error) {
    throw storageFailure(error)
  }
}

/**
 * The shared SQL (storage/sql-tx.ts) over this connection's cached prepared
 * statements. better-sqlite3 is synchronous; callers hold the storage's lock.
 */
class SqliteDriver implements SqlDriver {
  constructor(readonly statement: (sql: string) => Database.Statement) {}

  async all(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return guarded(() => this.statement(sql).all(...params) as Row[])
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<void> {
    guarded(() => this.statement(sql).run(...params))
  }
}

/**
 * Storage in one SQLite file through better-sqlite3, in WAL mode so readers never
 * wait for the writer. Several processes may share the file (the server and the
 * CLI): writes take the database's write lock with BEGIN IMMEDIATE and wait up to
 * five seconds for another writer.
 */
export class SqliteStorage implements Storage {
  readonly kind = 'sqlite'
  readonly path: string
  #db: Db | null = null
  readonly #lock = new Mutex()
  readonly #statements = new Map<string, Database.Statement>()

  constructor(path: string) {
    this.path = path
  }

  #open(): Db {
    if (this.#db) return this.#db
    const created = this.path !== ':memory:' && !existsSync(this.path)
    if (this.path !== ':memory:') mkdirSync(dirname(this.path), { recursive: true })
    const db = new Database(this.path)
    // Only the service's user reads the key store; SQLite gives the -wal and -shm files the same mode.
    if (created) chmodSync(this.path, 0o600)
    db.pragma('journal_mode = WAL')
    // FULL: a committed key change survives a crash of the machine, not only of the process.
    db.pragma('synchronous = FULL')
    db.pragma('busy_timeout = 5000')
    db.pragma('foreign_keys = ON')
    this.#db = db
    return db
  }

  #statement(sql: string): Database.Statement {
    let statement = this.#statements.get(sql)
    if (!statement) {
      statement = this.#open().prepare(sql)
      this.#statements.set(sql, statement)
    }
    return statement
  }

  /** The shared SQL over this connection; use it under the lock. */
  #sql(): SqlTx {
    return new SqlTx(new SqliteDriver((sql) => this.#statement(sql)))
  }

  /** The underlying connection, for the online backup and tests. */
  get database(): Db {
    return this.#open()
  }

  async migrate(): Promise<void> {
    await this.#lock.run(() => {
      try {
        const db = this.#open()
        db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)')
        const apply = db.transaction(() => {
          const done = new Set(db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[])
          for (const migration of SQLITE_MIGRATIONS) {
            if (done.has(migration.version)) continue
            db.exec(migration.sql)
            db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(migration.version, Date.now())
          }
        })
        apply.immediate()
      } catch (error) {
        throw storageFailure(error)
      }
    })
  }

  /**
   * Before migrate() has opened the database, a meta value is read through a
   * short-lived read-only connection, so checking the master key of an existing
   * file writes nothing to it, and a missing file is not created.
   */
  async getMeta(name: string): Promise<string | null> {
    if (!this.#db) {
      if (this.path === ':memory:' || !existsSync(this.path)) return null
      const probe = new Database(this.path, { readonly: true, fileMustExist: true })
      try {
        const table = probe.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get()
        if (!table) return null
        const row = probe.prepare('SELECT value FROM meta WHERE name = ?').get(name) as { value: string } | undefined
        return row?.value ?? null
      } finally {
        probe.close()
      }
    }
    return this.#lock.run(() => this.#sql().getMeta(name))
  }

  async generation(): Promise<number> {
    return this.#lock.run(async () => Number(await this.#sql().getMeta('generation')))
  }

  async snapshot(): Promise<Snapshot> {
    // One read transaction so the parts agree with each other.
    return this.#lock.run(() => this.#inTransaction('BEGIN DEFERRED', (sql) => sql.snapshot()))
  }

  /**
   * Runs `work` between `begin` and COMMIT, rolling back on any error. Errors of
   * `work` pass unchanged (the driver maps its own), so a bug in the caller's work
   * is not reported as storage being down. Call it under the lock.
   */
  async #inTransaction<T>(begin: string, work: (sql: SqlTx) => Promise<T>): Promise<T> {
    const db = this.#open()
    guarded(() => db.exec(begin))
    const rollback = () => {
      try {
        if (db.inTransaction) db.exec('ROLLBACK')
      } catch {
        // The connection is broken; the error thrown says so already.
      }
    }
    let result: T
    try {
      result = await work(this.#sql())
    } catch (error) {
      rollback()
      throw error
    }
    try {
      db.exec('COMMIT')
      return result
    } catch (error) {
      rollback()
      throw storageFailure(error)
    }
  }

  async transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    // IMMEDIATE: the database's write lock is taken at BEGIN, so writers in other processes serialise.
    return this.#lock.run(() => this.#inTransaction('BEGIN IMMEDIATE', async (tx) => {
      const result = await work(tx)
      if (tx.wrote) await tx.driver.run("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE name = 'generation'")
      return result
    }))
  }

  async listAudit(after: number, limit: number): Promise<AuditEvent[]> {
    return this.#lock.run(() => this.#sql().listAudit(after, limit))
  }

  async ping(): Promise<void> {
    await this.#lock.run(() => this.#sql().driver.all('SELECT 1'))
  }

  /**
   * Online backup through SQLite's backup API (better-sqlite3's db.backup()). All
   * pages are copied in one step, inside one read transaction, so the copy is one
   * committed state even while another process writes; in WAL mode that read
   * never blocks the writer. The lock keeps this connection's own transactions
   * out of the copy.
   */
  async backup(destination: string): Promise<void> {
    await this.#lock.run(async () => {
      try {
        await this.#open().backup(destination, { progress: () => 2_000_000_000 })
      } catch (error) {
        throw storageFailure(error)
      }
    })
  }

  async close(): Promise<void> {
    await this.#lock.run(() => {
      this.#statements.clear()
      this.#db?.close()
      this.#db = null
    })
  }
}
