import type { AuditLink } from '../audit/chain.js'
import type { AuditEvent, Client, Issuer, KeyRecord, Keyset } from '../keys/model.js'

/**
 * Everything the running service keeps in memory, read in one go. `generation`
 * goes up with every committed change, so a process can tell cheaply whether
 * another process (the CLI, another replica) changed something.
 */
export interface Snapshot {
  generation: number
  keysets: Keyset[]
  keys: KeyRecord[]
  clients: Client[]
  issuers: Issuer[]
  meta: Record<string, string>
  /** The id of the newest audit event, 0 while the log is empty (checked against the state manifest). */
  lastAuditId: number
}

/**
 * A row as a storage reads and writes it: the domain object and its integrity MAC
 * (storage/row-integrity.ts), null on rows written before rows were authenticated.
 * The sealed storage (storage/sealed-storage.ts) sets it on writes, checks it on
 * reads and hands the rest of Signet rows without it.
 */
export type Stored<T> = T & { mac?: string | null }

/** The rows of one table inside a transaction, by primary key; `list` takes the table's filter, if it has one. */
export interface TxTable<T, Filter extends unknown[] = []> {
  get(id: string): Promise<Stored<T> | null>
  list(...filter: Filter): Promise<Stored<T>[]>
  insert(row: Stored<T>): Promise<void>
  update(row: Stored<T>): Promise<void>
}

/** `list(keyset)`: the keys of one keyset; `list()`: of every keyset. */
export type KeyTable = TxTable<KeyRecord, [keyset?: string]>

export interface IssuerTable extends TxTable<Issuer> {
  delete(name: string): Promise<void>
}

/**
 * Reads and writes inside one transaction (storage/sql-tx.ts maps them to SQL).
 * The tables carry the names of Snapshot's fields, so code that goes over every
 * table (storage/row-integrity.ts) reaches each as `tx[table]`.
 */
export interface Tx {
  getMeta(name: string): Promise<string | null>
  setMeta(name: string, value: string): Promise<void>

  readonly keysets: TxTable<Keyset>
  readonly keys: KeyTable
  readonly clients: TxTable<Client>
  readonly issuers: IssuerTable

  /**
   * The key audit events appended in this transaction are chained under by
   * default (audit/recorder.ts appendAudit): the audit key in a transaction of the
   * sealed storage (storage/sealed-storage.ts); absent in a storage's own.
   */
  readonly auditKey?: Buffer | null
  /** The id and hash of the newest audit event, or null while the log is empty. */
  lastAudit(): Promise<AuditLink | null>
  /** Stores an audit event as given; its chain link is computed by audit/recorder.ts (ChainWriter). */
  insertAudit(event: AuditEvent): Promise<void>
  /** Audit events with id > `after`, oldest first (re-keying the chain in a rewrap). */
  listAudit(after: number, limit: number): Promise<AuditEvent[]>
  /** Replaces an event's chain hashes (re-keying the chain under a new master key). */
  rechainAudit(event: Pick<AuditEvent, 'id' | 'prevHash' | 'hash'>): Promise<void>
}

export interface Storage {
  /** 'sqlite' or 'postgres', for messages and metrics. */
  readonly kind: string
  /** Creates or upgrades the schema (numbered migrations). */
  migrate(): Promise<void>
  /** Reads one meta value outside a transaction (for example the master-key check). */
  getMeta(name: string): Promise<string | null>
  /** The change counter; cheap enough to poll. */
  generation(): Promise<number>
  snapshot(): Promise<Snapshot>
  /**
   * Runs `work` in one transaction that serialises with every other writer, in this
   * process and in others. If `work` throws, nothing it wrote is kept. A change
   * bumps the generation on commit.
   */
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T>
  /** Audit events with id > `after`, oldest first. */
  listAudit(after: number, limit: number): Promise<AuditEvent[]>
  /** Answers when storage is reachable. */
  ping(): Promise<void>
  close(): Promise<void>

  // Optional capabilities of a storage that several replicas share (PostgreSQL).
  // A storage without them is polled for changes, and every process may schedule.

  /**
   * Calls `listener` soon after another process commits a change, and after a lost
   * notification channel comes back (changes may have been missed meanwhile).
   * Returns a function that stops the calls.
   */
  onChange?(listener: () => void): () => void
  /**
   * Whether this process holds the scheduler lease now, taking it when it is free.
   * At most one process holds it; a process that dies or loses the database loses it.
   * Never throws: an unreachable storage answers false.
   */
  schedulerLease?(): Promise<boolean>

  /**
   * Writes a consistent copy of the whole database to the file `destination`
   * while other processes go on reading and writing (`signet backup`). Key
   * material stays encrypted in the copy. Storages without it (PostgreSQL) are
   * backed up with their own tools.
   */
  backup?(destination: string): Promise<void>
}
