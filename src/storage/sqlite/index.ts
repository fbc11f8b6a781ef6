import { chmodSync, existsSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import { chainEvent } from '../../audit/chain.js'
import { Conflict, SignetError, StorageUnavailable } from '../../errors.js'
import type { AuditEvent, AuditInput, Client, Issuer, KeyRecord, Keyset } from '../../keys/model.js'
import { Mutex } from '../../util/mutex.js'
import {
  AUDIT_COLUMNS, CLIENT_COLUMNS, ISSUER_COLUMNS, KEY_COLUMNS, KEYSET_COLUMNS,
  auditFromRow, auditToRow, clientFromRow, clientToRow, issuerFromRow, issuerToRow, keyFromRow, keysetFromRow, keysetToRow, keyToRow,
} from '../rows.js'
import type { Snapshot, Storage, Tx } from '../types.js'
import { SQLITE_MIGRATIONS } from './migrations.js'

type Row = Record<string, unknown>
type Db = Database.Database

/** Turns a driver failure into a 503 storage_unavailable; Signet's own errors pass. */
function storageFailure(error: unknown): Error {
  if (error instanceof SignetError) return error
  // The driver's message stays on `cause` for the log; the answer carries only the code.
  if (error instanceof Database.SqliteError && error.code.startsWith('SQLITE_CONSTRAINT')) {
    return Object.assign(new Conflict('the change conflicts with stored data; try again'), { cause: error })
  }
  return Object.assign(new StorageUnavailable('storage did not complete the operation'), { cause: error })
}

/**
 * A prepared statement whose failures are storage failures. Inside a transaction
 * this tells the driver's errors (503, or 409 for a broken constraint) apart from
 * errors of the work itself, which pass through unchanged.
 */
class GuardedStatement {
  constructor(readonly statement: Database.Statement) {}

  #guard<T>(operation: () => T): T {
    try {
      return operation()
    } catch (error) {
      throw storageFailure(error)
    }
  }

  run(...params: unknown[]): Database.RunResult {
    return this.#guard(() => this.statement.run(...params))
  }

  get(...params: unknown[]): unknown {
    return this.#guard(() => this.statement.get(...params))
  }

  all(...params: unknown[]): unknown[] {
    return this.#guard(() => this.statement.all(...params))
  }

  pluck(): GuardedStatement {
    this.statement.pluck()
    return this
  }
}

const insertSql = (table: string, columns: string[]): string =>
  `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')})`

const updateSql = (table: string, columns: string[], key: string): string =>
  `UPDATE ${table} SET ${columns.filter((c) => c !== key).map((c) => `${c} = @${c}`).join(', ')} WHERE ${key} = @${key}`

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
    return this.#lock.run(() => this.#read(() => (this.#statement('SELECT value FROM meta WHERE name = ?').pluck().get(name) as string | undefined) ?? null))
  }

  #read<T>(work: () => T): T {
    try {
      return work()
    } catch (error) {
      throw storageFailure(error)
    }
  }

  async generation(): Promise<number> {
    return this.#lock.run(() => this.#read(() => Number(this.#statement("SELECT value FROM meta WHERE name = 'generation'").pluck().get())))
  }

  async snapshot(): Promise<Snapshot> {
    return this.#lock.run(() =>
      this.#read(() => {
        const db = this.#open()
        // One read transaction so the parts agree with each other.
        return db.transaction(() => {
          const meta = Object.fromEntries((this.#statement('SELECT name, value FROM meta').all() as { name: string; value: string }[]).map((r) => [r.name, r.value]))
          return {
            generation: Number(meta.generation ?? 0),
            keysets: (this.#statement('SELECT * FROM keysets ORDER BY created_at, name').all() as Row[]).map(keysetFromRow),
            keys: (this.#statement('SELECT * FROM keys ORDER BY created_at, kid').all() as Row[]).map(keyFromRow),
            clients: (this.#statement('SELECT * FROM clients ORDER BY created_at, id').all() as Row[]).map(clientFromRow),
            issuers: (this.#statement('SELECT * FROM issuers ORDER BY name').all() as Row[]).map(issuerFromRow),
            meta,
          }
        }).deferred()
      }),
    )
  }

  async transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    return this.#lock.run(async () => {
      const db = this.#open()
      try {
        db.exec('BEGIN IMMEDIATE')
      } catch (error) {
        throw storageFailure(error)
      }
      const rollback = () => {
        try {
          if (db.inTransaction) db.exec('ROLLBACK')
        } catch {
          // The connection is broken; the error thrown says so already.
        }
      }
      const tx = new SqliteTx((sql) => {
        try {
          return new GuardedStatement(this.#statement(sql))
        } catch (error) {
          throw storageFailure(error)
        }
      })
      let result: T
      try {
        result = await work(tx)
      } catch (error) {
        rollback()
        throw error
      }
      try {
        if (tx.wrote) this.#statement("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE name = 'generation'").run()
        db.exec('COMMIT')
        return result
      } catch (error) {
        rollback()
        throw storageFailure(error)
      }
    })
  }

  async listAudit(after: number, limit: number): Promise<AuditEvent[]> {
    return this.#lock.run(() =>
      this.#read(() => (this.#statement('SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?').all(after, limit) as Row[]).map(auditFromRow)),
    )
  }

  async ping(): Promise<void> {
    await this.#lock.run(() => this.#read(() => this.#statement('SELECT 1').get()))
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

class SqliteTx implements Tx {
  wrote = false
  readonly #statement: (sql: string) => GuardedStatement

  constructor(statement: (sql: string) => GuardedStatement) {
    this.#statement = statement
  }

  #write(sql: string, params: Row): void {
    this.#statement(sql).run(params)
    this.wrote = true
  }

  async getMeta(name: string): Promise<string | null> {
    return (this.#statement('SELECT value FROM meta WHERE name = ?').pluck().get(name) as string | undefined) ?? null
  }

  async setMeta(name: string, value: string): Promise<void> {
    this.#write('INSERT INTO meta (name, value) VALUES (@name, @value) ON CONFLICT (name) DO UPDATE SET value = excluded.value', { name, value })
  }

  async getKeyset(name: string): Promise<Keyset | null> {
    const row = this.#statement('SELECT * FROM keysets WHERE name = ?').get(name) as Row | undefined
    return row ? keysetFromRow(row) : null
  }

  async listKeysets(): Promise<Keyset[]> {
    return (this.#statement('SELECT * FROM keysets ORDER BY created_at, name').all() as Row[]).map(keysetFromRow)
  }

  async insertKeyset(keyset: Keyset): Promise<void> {
    this.#write(insertSql('keysets', KEYSET_COLUMNS), keysetToRow(keyset))
  }

  async updateKeyset(keyset: Keyset): Promise<void> {
    this.#write(updateSql('keysets', KEYSET_COLUMNS, 'name'), keysetToRow(keyset))
  }

  async getKey(kid: string): Promise<KeyRecord | null> {
    const row = this.#statement('SELECT * FROM keys WHERE kid = ?').get(kid) as Row | undefined
    return row ? keyFromRow(row) : null
  }

  async listKeys(keyset?: string): Promise<KeyRecord[]> {
    const rows = keyset === undefined
      ? this.#statement('SELECT * FROM keys ORDER BY created_at, kid').all()
      : this.#statement('SELECT * FROM keys WHERE keyset = ? ORDER BY created_at, kid').all(keyset)
    return (rows as Row[]).map(keyFromRow)
  }

  async insertKey(key: KeyRecord): Promise<void> {
    this.#write(insertSql('keys', KEY_COLUMNS), keyToRow(key))
  }

  async updateKey(key: KeyRecord): Promise<void> {
    this.#write(updateSql('keys', KEY_COLUMNS, 'kid'), keyToRow(key))
  }

  async getClient(id: string): Promise<Client | null> {
    const row = this.#statement('SELECT * FROM clients WHERE id = ?').get(id) as Row | undefined
    return row ? clientFromRow(row) : null
  }

  async listClients(): Promise<Client[]> {
    return (this.#statement('SELECT * FROM clients ORDER BY created_at, id').all() as Row[]).map(clientFromRow)
  }

  async insertClient(client: Client): Promise<void> {
    this.#write(insertSql('clients', CLIENT_COLUMNS), clientToRow(client))
  }

  async updateClient(client: Client): Promise<void> {
    this.#write(updateSql('clients', CLIENT_COLUMNS, 'id'), clientToRow(client))
  }

  async getIssuer(name: string): Promise<Issuer | null> {
    const row = this.#statement('SELECT * FROM issuers WHERE name = ?').get(name) as Row | undefined
    return row ? issuerFromRow(row) : null
  }

  async listIssuers(): Promise<Issuer[]> {
    return (this.#statement('SELECT * FROM issuers ORDER BY name').all() as Row[]).map(issuerFromRow)
  }

  async insertIssuer(issuer: Issuer): Promise<void> {
    this.#write(insertSql('issuers', ISSUER_COLUMNS), issuerToRow(issuer))
  }

  async updateIssuer(issuer: Issuer): Promise<void> {
    this.#write(updateSql('issuers', ISSUER_COLUMNS, 'name'), issuerToRow(issuer))
  }

  async deleteIssuer(name: string): Promise<void> {
    this.#write('DELETE FROM issuers WHERE name = @name', { name })
  }

  async appendAudit(input: AuditInput, key: Buffer | null = null): Promise<AuditEvent> {
    const last = this.#statement('SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1').get() as { id: number; hash: string } | undefined
    const event = chainEvent(last ?? null, input, key)
    this.#write(insertSql('audit', AUDIT_COLUMNS), auditToRow(event))
    return event
  }

  async listAudit(after: number, limit: number): Promise<AuditEvent[]> {
    return (this.#statement('SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?').all(after, limit) as Row[]).map(auditFromRow)
  }

  async rechainAudit(event: Pick<AuditEvent, 'id' | 'prevHash' | 'hash'>): Promise<void> {
    this.#write('UPDATE audit SET prev_hash = @prevHash, hash = @hash WHERE id = @id', event)
  }
}
