import type { AuditLink } from '../audit/chain.js'
import { ConfigError, Conflict, SignetError, StorageUnavailable } from '../errors.js'
import type { AuditEvent, Client, Issuer, KeyRecord, Keyset } from '../keys/model.js'
import { AUDIT_LAYOUT, CLIENT_LAYOUT, ISSUER_LAYOUT, KEY_LAYOUT, KEYSET_LAYOUT, type Layout, type Row } from './rows.js'
import type { IssuerTable, KeyTable, Snapshot, Stored, Tx, TxTable } from './types.js'

/**
 * What the shared SQL needs of a database connection. Statements are written
 * once, with `?` placeholders (the PostgreSQL driver numbers them `$1, $2, …`;
 * no statement holds a `?` inside a literal). A driver turns its own failures
 * into Signet errors: 409 conflict for a broken constraint, 503 otherwise.
 */
export interface SqlDriver {
  /** The rows a statement returns. */
  all(sql: string, params?: readonly unknown[]): Promise<Row[]>
  /** Runs a statement that returns no rows. */
  run(sql: string, params?: readonly unknown[]): Promise<void>
}

/**
 * A driver failure as a Signet error: a broken constraint (two active keys, a
 * duplicate kid or token hash; each driver says which failures are) is a 409
 * conflict, anything else a 503 storage_unavailable, saying `detail`. The
 * driver's message stays on `cause`, for the log only. Signet's own errors pass.
 */
export function driverFailure(error: unknown, brokenConstraint: boolean, detail = 'storage did not complete the operation'): Error {
  if (error instanceof SignetError || error instanceof ConfigError) return error
  if (brokenConstraint) return Object.assign(new Conflict('the change conflicts with stored data; try again'), { cause: error })
  return Object.assign(new StorageUnavailable(detail), { cause: error })
}

/** One table of the shared layout (storage/rows.ts), with the statements that reach it. */
interface TableStatements<T> {
  fromRow(row: Row): Stored<T>
  /** The row's values in column order, for `insert`. */
  insertValues(value: Stored<T>): unknown[]
  /** The row's values with the primary key last, for `update`. */
  updateValues(value: Stored<T>): unknown[]
  get: string
  list: string
  insert: string
  update: string
}

function statements<T>(table: string, key: string, order: string, { columns, fromRow, toRow }: Layout<Stored<T>>): TableStatements<T> {
  const set = columns.filter((c) => c !== key)
  const values = (row: Row, names: string[]): unknown[] => names.map((c) => row[c] ?? null)
  return {
    fromRow,
    insertValues: (value) => values(toRow(value), columns),
    updateValues: (value) => values(toRow(value), [...set, key]),
    get: `SELECT * FROM ${table} WHERE ${key} = ?`,
    list: `SELECT * FROM ${table} ORDER BY ${order}`,
    insert: `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
    update: `UPDATE ${table} SET ${set.map((c) => `${c} = ?`).join(', ')} WHERE ${key} = ?`,
  }
}

const KEYSETS = statements('keysets', 'name', 'created_at, name', KEYSET_LAYOUT)
const KEYS = statements('keys', 'kid', 'created_at, kid', KEY_LAYOUT)
const CLIENTS = statements('clients', 'id', 'created_at, id', CLIENT_LAYOUT)
const ISSUERS = statements('issuers', 'name', 'name', ISSUER_LAYOUT)
const AUDIT = statements('audit', 'id', 'id', AUDIT_LAYOUT)

/** How a table writes: through its transaction, which records that something was written. */
type Write = (sql: string, params: readonly unknown[]) => Promise<void>

/** A table's reads and writes over the driver, one statement each. */
class SqlTable<T, Filter extends unknown[] = []> implements TxTable<T, Filter> {
  constructor(
    protected readonly driver: SqlDriver,
    protected readonly write: Write,
    protected readonly statements: TableStatements<T>,
  ) {}

  async get(id: string): Promise<Stored<T> | null> {
    const [row] = await this.driver.all(this.statements.get, [id])
    return row ? this.statements.fromRow(row) : null
  }

  /** Every row; a table whose list takes a filter (keys by keyset) overrides this. */
  async list(): Promise<Stored<T>[]> {
    return (await this.driver.all(this.statements.list)).map(this.statements.fromRow)
  }

  insert(value: Stored<T>): Promise<void> {
    return this.write(this.statements.insert, this.statements.insertValues(value))
  }

  update(value: Stored<T>): Promise<void> {
    return this.write(this.statements.update, this.statements.updateValues(value))
  }
}

class SqlKeyTable extends SqlTable<KeyRecord, [keyset?: string]> implements KeyTable {
  override async list(keyset?: string): Promise<Stored<KeyRecord>[]> {
    if (keyset === undefined) return super.list()
    return (await this.driver.all('SELECT * FROM keys WHERE keyset = ? ORDER BY created_at, kid', [keyset])).map(this.statements.fromRow)
  }
}

class SqlIssuerTable extends SqlTable<Issuer> implements IssuerTable {
  delete(name: string): Promise<void> {
    return this.write('DELETE FROM issuers WHERE name = ?', [name])
  }
}

/**
 * The reads and writes of a transaction, written once for every SQL storage over
 * its driver. Each storage opens and commits the transaction itself (its locks,
 * isolation and change counter are its own); this also serves its reads outside
 * one (snapshots, audit pages). `wrote` tells the storage whether to bump the
 * generation on commit.
 */
export class SqlTx implements Tx {
  wrote = false
  readonly #write: Write = async (sql, params) => {
    await this.driver.run(sql, params)
    this.wrote = true
  }

  readonly keysets: TxTable<Keyset>
  readonly keys: KeyTable
  readonly clients: TxTable<Client>
  readonly issuers: IssuerTable

  constructor(readonly driver: SqlDriver) {
    this.keysets = new SqlTable(driver, this.#write, KEYSETS)
    this.keys = new SqlKeyTable(driver, this.#write, KEYS)
    this.clients = new SqlTable(driver, this.#write, CLIENTS)
    this.issuers = new SqlIssuerTable(driver, this.#write, ISSUERS)
  }

  async getMeta(name: string): Promise<string | null> {
    const [row] = await this.driver.all('SELECT value FROM meta WHERE name = ?', [name])
    return row ? String(row.value) : null
  }

  setMeta(name: string, value: string): Promise<void> {
    return this.#write('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value', [name, value])
  }

  async lastAudit(): Promise<AuditLink | null> {
    const [row] = await this.driver.all('SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1')
    return row ? { id: Number(row.id), hash: String(row.hash) } : null
  }

  insertAudit(event: AuditEvent): Promise<void> {
    return this.#write(AUDIT.insert, AUDIT.insertValues(event))
  }

  async listAudit(after: number, limit: number): Promise<AuditEvent[]> {
    return (await this.driver.all('SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?', [after, limit])).map(AUDIT.fromRow)
  }

  rechainAudit(event: Pick<AuditEvent, 'id' | 'prevHash' | 'hash'>): Promise<void> {
    return this.#write('UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?', [event.prevHash, event.hash, event.id])
  }

  /** Everything the service keeps in memory; run it in one read transaction so the parts agree. */
  async snapshot(): Promise<Snapshot> {
    const meta = Object.fromEntries((await this.driver.all('SELECT name, value FROM meta')).map((r) => [String(r.name), String(r.value)]))
    return {
      generation: Number(meta.generation ?? 0),
      keysets: await this.keysets.list(),
      keys: await this.keys.list(),
      clients: await this.clients.list(),
      issuers: await this.issuers.list(),
      meta,
      lastAuditId: (await this.lastAudit())?.id ?? 0,
    }
  }
}
