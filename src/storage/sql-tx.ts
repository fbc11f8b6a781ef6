import type { AuditLink } from '../audit/chain.js'
import { ConfigError, Conflict, SignetError, StorageUnavailable } from '../errors.js'
import type { AuditEvent, Client, Issuer, KeyRecord, Keyset } from '../keys/model.js'
import {
  AUDIT_COLUMNS, CLIENT_COLUMNS, ISSUER_COLUMNS, KEY_COLUMNS, KEYSET_COLUMNS,
  auditFromRow, auditToRow, clientFromRow, clientToRow, issuerFromRow, issuerToRow, keyFromRow, keysetFromRow, keysetToRow, keyToRow,
} from './rows.js'
import type { Snapshot, Stored, Tx } from './types.js'

export type Row = Record<string, unknown>

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
interface Table<T> {
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

function table<T>(table: string, key: string, order: string, columns: string[], fromRow: (row: Row) => Stored<T>, toRow: (value: Stored<T>) => Row): Table<T> {
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

const KEYSETS = table('keysets', 'name', 'created_at, name', KEYSET_COLUMNS, keysetFromRow, keysetToRow)
const KEYS = table('keys', 'kid', 'created_at, kid', KEY_COLUMNS, keyFromRow, keyToRow)
const CLIENTS = table('clients', 'id', 'created_at, id', CLIENT_COLUMNS, clientFromRow, clientToRow)
const ISSUERS = table('issuers', 'name', 'name', ISSUER_COLUMNS, issuerFromRow, issuerToRow)
const AUDIT = table<AuditEvent>('audit', 'id', 'id', AUDIT_COLUMNS, auditFromRow, auditToRow)

/**
 * The reads and writes of a transaction, written once for every SQL storage over
 * its driver. Each storage opens and commits the transaction itself (its locks,
 * isolation and change counter are its own); this also serves its reads outside
 * one (snapshots, audit pages). `wrote` tells the storage whether to bump the
 * generation on commit.
 */
export class SqlTx implements Tx {
  wrote = false

  constructor(readonly driver: SqlDriver) {}

  async #write(sql: string, params: readonly unknown[]): Promise<void> {
    await this.driver.run(sql, params)
    this.wrote = true
  }

  async #get<T>(table: Table<T>, id: string): Promise<Stored<T> | null> {
    const [row] = await this.driver.all(table.get, [id])
    return row ? table.fromRow(row) : null
  }

  async #list<T>(table: Table<T>): Promise<Stored<T>[]> {
    return (await this.driver.all(table.list)).map(table.fromRow)
  }

  #insert<T>(table: Table<T>, value: Stored<T>): Promise<void> {
    return this.#write(table.insert, table.insertValues(value))
  }

  #update<T>(table: Table<T>, value: Stored<T>): Promise<void> {
    return this.#write(table.update, table.updateValues(value))
  }

  async getMeta(name: string): Promise<string | null> {
    const [row] = await this.driver.all('SELECT value FROM meta WHERE name = ?', [name])
    return row ? String(row.value) : null
  }

  setMeta(name: string, value: string): Promise<void> {
    return this.#write('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value', [name, value])
  }

  getKeyset(name: string): Promise<Stored<Keyset> | null> {
    return this.#get(KEYSETS, name)
  }

  listKeysets(): Promise<Stored<Keyset>[]> {
    return this.#list(KEYSETS)
  }

  insertKeyset(keyset: Stored<Keyset>): Promise<void> {
    return this.#insert(KEYSETS, keyset)
  }

  updateKeyset(keyset: Stored<Keyset>): Promise<void> {
    return this.#update(KEYSETS, keyset)
  }

  getKey(kid: string): Promise<Stored<KeyRecord> | null> {
    return this.#get(KEYS, kid)
  }

  async listKeys(keyset?: string): Promise<Stored<KeyRecord>[]> {
    if (keyset === undefined) return this.#list(KEYS)
    return (await this.driver.all('SELECT * FROM keys WHERE keyset = ? ORDER BY created_at, kid', [keyset])).map(keyFromRow)
  }

  insertKey(key: Stored<KeyRecord>): Promise<void> {
    return this.#insert(KEYS, key)
  }

  updateKey(key: Stored<KeyRecord>): Promise<void> {
    return this.#update(KEYS, key)
  }

  getClient(id: string): Promise<Stored<Client> | null> {
    return this.#get(CLIENTS, id)
  }

  listClients(): Promise<Stored<Client>[]> {
    return this.#list(CLIENTS)
  }

  insertClient(client: Stored<Client>): Promise<void> {
    return this.#insert(CLIENTS, client)
  }

  updateClient(client: Stored<Client>): Promise<void> {
    return this.#update(CLIENTS, client)
  }

  getIssuer(name: string): Promise<Stored<Issuer> | null> {
    return this.#get(ISSUERS, name)
  }

  listIssuers(): Promise<Stored<Issuer>[]> {
    return this.#list(ISSUERS)
  }

  insertIssuer(issuer: Stored<Issuer>): Promise<void> {
    return this.#insert(ISSUERS, issuer)
  }

  updateIssuer(issuer: Stored<Issuer>): Promise<void> {
    return this.#update(ISSUERS, issuer)
  }

  deleteIssuer(name: string): Promise<void> {
    return this.#write('DELETE FROM issuers WHERE name = ?', [name])
  }

  async lastAudit(): Promise<AuditLink | null> {
    const [row] = await this.driver.all('SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1')
    return row ? { id: Number(row.id), hash: String(row.hash) } : null
  }

  insertAudit(event: AuditEvent): Promise<void> {
    return this.#insert(AUDIT, event)
  }

  async listAudit(after: number, limit: number): Promise<AuditEvent[]> {
    return (await this.driver.all('SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?', [after, limit])).map(auditFromRow)
  }

  rechainAudit(event: Pick<AuditEvent, 'id' | 'prevHash' | 'hash'>): Promise<void> {
    return this.#write('UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?', [event.prevHash, event.hash, event.id])
  }

  /** Everything the service keeps in memory; run it in one read transaction so the parts agree. */
  async snapshot(): Promise<Snapshot> {
    const meta = Object.fromEntries((await this.driver.all('SELECT name, value FROM meta')).map((r) => [String(r.name), String(r.value)]))
    return {
      generation: Number(meta.generation ?? 0),
      keysets: await this.listKeysets(),
      keys: await this.listKeys(),
      clients: await this.listClients(),
      issuers: await this.listIssuers(),
      meta,
    }
  }
}
