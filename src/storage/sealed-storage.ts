import type { AuditLink } from '../audit/chain.js'
import { MASTER_KEY_CHECK } from '../keys/master-key-check.js'
import type { AuditEvent } from '../keys/model.js'
import { rowIdOf, SEALED_TABLES, type IntegrityFailure, type IntegrityKeys, type RowOf, type SealedTable } from './row-integrity.js'
import type { Snapshot, Storage, Stored, Tx, TxTable } from './types.js'

/**
 * Failing rows as the running service reports them: each distinct failure is
 * logged at error and counted once, not on every reload that meets it again.
 */
export class IntegrityFailures {
  readonly #seen = new Set<string>()
  readonly #byTable = new Map<string, number>()
  readonly #log: (failure: IntegrityFailure) => void

  constructor(log: (failure: IntegrityFailure) => void) {
    this.#log = log
  }

  report(failure: IntegrityFailure): void {
    const key = `${failure.table}\0${failure.id}\0${failure.reason}`
    if (this.#seen.has(key)) return
    this.#seen.add(key)
    this.#byTable.set(failure.table, (this.#byTable.get(failure.table) ?? 0) + 1)
    this.#log(failure)
  }

  /** Distinct failures seen so far, by table (signet_integrity_failures_total). */
  byTable(): ReadonlyMap<string, number> {
    return this.#byTable
  }
}

type Report = (failure: IntegrityFailure) => void

const withoutMac = <T extends object>(row: Stored<T>): T => {
  const { mac: _mac, ...rest } = row
  return rest as T
}

/** The rows of `table` whose MAC (and, for keys, kid) hold, without their MAC; the others are reported. */
async function trusted<T extends SealedTable>(keys: IntegrityKeys, report: Report, table: T, rows: Stored<RowOf<T>>[]): Promise<RowOf<T>[]> {
  const kept: RowOf<T>[] = []
  for (const row of rows) {
    const reason = await keys.check(table, row)
    if (reason === null) kept.push(withoutMac(row) as RowOf<T>)
    else report({ table, id: rowIdOf(table, row), reason })
  }
  return kept
}

async function one<T extends SealedTable>(keys: IntegrityKeys, report: Report, table: T, row: Stored<RowOf<T>> | null): Promise<RowOf<T> | null> {
  return row ? ((await trusted(keys, report, table, [row]))[0] ?? null) : null
}

/**
 * A table as the rest of Signet sees it: every row it writes gets its MAC here
 * (the one place rows are sealed), every row it reads is checked, and a row that
 * fails is as good as absent.
 */
function sealedTable<T extends SealedTable, Filter extends unknown[]>(raw: TxTable<RowOf<T>, Filter>, table: T, keys: IntegrityKeys, report: Report): TxTable<RowOf<T>, Filter> {
  return {
    get: async (id) => one(keys, report, table, await raw.get(id)),
    list: async (...filter) => trusted(keys, report, table, await raw.list(...filter)),
    insert: (row) => raw.insert(keys.seal(table, row)),
    update: (row) => raw.update(keys.seal(table, row)),
  }
}

/**
 * A transaction whose tables are sealed (sealedTable). Audit events appended in
 * it are chained with the audit key, which also authenticates the log's head
 * (audit/recorder.ts).
 */
class SealedTx implements Tx {
  readonly auditKey: Buffer
  readonly keysets: Tx['keysets']
  readonly keys: Tx['keys']
  readonly clients: Tx['clients']
  readonly issuers: Tx['issuers']

  constructor(
    readonly raw: Tx,
    integrity: IntegrityKeys,
    report: Report,
  ) {
    this.auditKey = integrity.audit
    this.keysets = sealedTable(raw.keysets, 'keysets', integrity, report)
    this.keys = sealedTable(raw.keys, 'keys', integrity, report)
    this.clients = sealedTable(raw.clients, 'clients', integrity, report)
    // Deleting needs no seal: what is gone cannot be forged.
    this.issuers = { ...sealedTable(raw.issuers, 'issuers', integrity, report), delete: (name) => raw.issuers.delete(name) }
  }

  getMeta(name: string): Promise<string | null> {
    return this.raw.getMeta(name)
  }

  setMeta(name: string, value: string): Promise<void> {
    return this.raw.setMeta(name, value)
  }

  lastAudit(): Promise<AuditLink | null> {
    return this.raw.lastAudit()
  }

  insertAudit(event: AuditEvent): Promise<void> {
    return this.raw.insertAudit(event)
  }

  listAudit(after: number, limit: number): Promise<AuditEvent[]> {
    return this.raw.listAudit(after, limit)
  }

  rechainAudit(): Promise<void> {
    throw new TypeError('the audit chain is re-keyed only by a rewrap, on the unsealed storage')
  }
}

const UNSEALED = Symbol('unsealed storage')

/**
 * `storage` as the running service uses it: snapshots hold only rows that pass
 * their integrity check (the others are reported and left out), transactions
 * seal what they write, and audit events appended in them are chained under the
 * audit key, moving the log's authenticated head with them. Checks run when
 * storage is read (a reload after a change), never when a token is signed: the
 * signing path reads memory only.
 */
export function sealStorage(storage: Storage, keys: IntegrityKeys, failures: IntegrityFailures): Storage {
  const report: Report = (failure) => failures.report(failure)
  const overrides: Partial<Storage> & { [UNSEALED]: Storage } = {
    [UNSEALED]: storage,
    async snapshot(): Promise<Snapshot> {
      const snapshot = await storage.snapshot()
      // Another master key owns the database now (a rewrap): its rows cannot be checked
      // with these keys, and are not failures. The keystore reports itself sealed.
      if (!keys.ownsDatabase(snapshot.meta[MASTER_KEY_CHECK])) return { ...snapshot, keysets: [], keys: [], clients: [], issuers: [] }
      const checked: Snapshot = { ...snapshot }
      for (const table of Object.keys(SEALED_TABLES) as SealedTable[]) {
        Object.assign(checked, { [table]: await trusted(keys, report, table, snapshot[table]) })
      }
      return checked
    },
    transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
      return storage.transaction((raw) => work(new SealedTx(raw, keys, report)))
    },
  }
  return new Proxy(storage, {
    get(target, property) {
      if (Object.hasOwn(overrides, property)) return overrides[property as keyof typeof overrides]
      // The target is the receiver, so getters and #private fields keep working.
      const value = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

/** The storage under a sealed one (itself when it is not sealed): for the upgrade, rewrap and `signet check`. */
export function unsealed(storage: Storage): Storage {
  return (storage as Storage & { [UNSEALED]?: Storage })[UNSEALED] ?? storage
}
