import { createHash } from 'node:crypto'
import type { AuditLink } from '../audit/chain.js'
import { Sealed } from '../errors.js'
import { MASTER_KEY_CHECK, REKEYED_DATABASE } from '../keys/master-key-check.js'
import type { AuditEvent } from '../keys/model.js'
import { rowIdOf, SEALED_TABLE_NAMES, type IntegrityFailure, type IntegrityKeys, type RowOf, type SealedTable } from './row-integrity.js'
import { carryStateManifest, changeKey, committedState, freshnessOf, type Committed } from './state-manifest.js'
import type { Snapshot, Storage, Stored, Tx, TxTable } from './types.js'

/**
 * Failing rows as the running service reports them: each distinct failure is
 * logged at error and counted once, not on every reload that meets it again. A
 * failure is distinct by its row, its reason and what the row holds: the same row
 * tampered with again in another way is reported again.
 */
export class IntegrityFailures {
  readonly #seen = new Set<string>()
  readonly #byTable = new Map<string, number>()
  readonly #log: (failure: IntegrityFailure) => void

  constructor(log: (failure: IntegrityFailure) => void) {
    this.#log = log
  }

  /** `stored`: a digest of the failing row as stored, if there is one. */
  report(failure: IntegrityFailure, stored = ''): void {
    const key = `${failure.table}\0${failure.id}\0${failure.reason}\0${stored}`
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

type Report = (failure: IntegrityFailure, stored?: string) => void

const withoutMac = <T extends object>(row: Stored<T>): T => {
  const { mac: _mac, ...rest } = row
  return rest as T
}

/** Why a stored row cannot be used (its MAC, or it is not the current version), or null. */
type RowCheck = <T extends SealedTable>(table: T, row: Stored<RowOf<T>>) => Promise<string | null>

/** The rows of `table` that pass `check`, without their MAC; the others are reported. */
async function trusted<T extends SealedTable>(check: RowCheck, report: Report, table: T, rows: Stored<RowOf<T>>[]): Promise<RowOf<T>[]> {
  const kept: RowOf<T>[] = []
  for (const row of rows) {
    const reason = await check(table, row)
    if (reason === null) kept.push(withoutMac(row) as RowOf<T>)
    else report({ table, id: rowIdOf(table, row), reason }, createHash('sha256').update(JSON.stringify(row)).digest('base64'))
  }
  return kept
}

async function one<T extends SealedTable>(check: RowCheck, report: Report, table: T, row: Stored<RowOf<T>> | null): Promise<RowOf<T> | null> {
  return row ? ((await trusted(check, report, table, [row]))[0] ?? null) : null
}

/**
 * A table as the rest of Signet sees it: every row it writes gets its MAC here
 * (the one place rows are sealed), every row it reads is checked, and a row that
 * fails is as good as absent. `wrote` is told of every write.
 */
function sealedTable<T extends SealedTable, Filter extends unknown[]>(raw: TxTable<RowOf<T>, Filter>, table: T, keys: IntegrityKeys, check: RowCheck, report: Report, wrote: Wrote): TxTable<RowOf<T>, Filter> {
  const seal = (row: RowOf<T>) => {
    const sealed = keys.seal(table, row)
    wrote(table, rowIdOf(table, row), sealed.mac)
    return sealed
  }
  return {
    get: async (id) => one(check, report, table, await raw.get(id)),
    list: async (...filter) => trusted(check, report, table, await raw.list(...filter)),
    insert: (row) => raw.insert(seal(row)),
    update: (row) => raw.update(seal(row)),
  }
}

/** Told of each row a transaction writes: its table, primary key and MAC (null when it is deleted). */
type Wrote = (table: SealedTable, id: string, mac: string | null) => void

/**
 * A transaction whose tables are sealed (sealedTable). Audit events appended in
 * it are chained with the audit key, which also authenticates the log's head
 * (audit/recorder.ts). A row read in it must also be the version the state
 * manifest records (state-manifest.ts); `wrote` says whether the manifest must be
 * written again before it commits.
 */
class SealedTx implements Tx {
  readonly auditKey: Buffer
  readonly keysets: Tx['keysets']
  readonly keys: Tx['keys']
  readonly clients: Tx['clients']
  readonly issuers: Tx['issuers']
  wrote = false
  /** The rows this transaction wrote, for the state manifest. */
  readonly written = new Map<string, string | null>()

  /** `committed`: the manifest committed before this transaction began, against which its reads are judged. */
  constructor(
    readonly raw: Tx,
    integrity: IntegrityKeys,
    report: Report,
    readonly committed: Committed,
  ) {
    this.auditKey = integrity.audit
    // A row this transaction wrote is current as written.
    const written = this.written
    const check: RowCheck = async (table, row) => {
      const reason = await integrity.check(table, row)
      if (reason !== null) return reason
      const own = written.get(changeKey(table, rowIdOf(table, row)))
      if (own !== undefined) return row.mac === own ? null : 'not the version this transaction wrote'
      return committed.stale(table, row)
    }
    const wrote: Wrote = (table, id, mac) => {
      this.wrote = true
      written.set(changeKey(table, id), mac)
    }
    this.keysets = sealedTable(raw.keysets, 'keysets', integrity, check, report, wrote)
    this.keys = sealedTable(raw.keys, 'keys', integrity, check, report, wrote)
    this.clients = sealedTable(raw.clients, 'clients', integrity, check, report, wrote)
    // Deleting needs no seal: what is gone cannot be forged.
    this.issuers = {
      ...sealedTable(raw.issuers, 'issuers', integrity, check, report, wrote),
      delete: (name) => (wrote('issuers', name, null), raw.issuers.delete(name)),
    }
  }

  getMeta(name: string): Promise<string | null> {
    return this.raw.getMeta(name)
  }

  setMeta(name: string, value: string): Promise<void> {
    this.wrote = true
    return this.raw.setMeta(name, value)
  }

  lastAudit(): Promise<AuditLink | null> {
    return this.raw.lastAudit()
  }

  insertAudit(event: AuditEvent): Promise<void> {
    this.wrote = true
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
  const report: Report = (failure, stored) => failures.report(failure, stored)
  const overrides: Partial<Storage> & { [UNSEALED]: Storage } = {
    [UNSEALED]: storage,
    async snapshot(): Promise<Snapshot> {
      const snapshot = await storage.snapshot()
      // Another master key owns the database now (a rewrap): its rows cannot be checked
      // with these keys, and are not failures. The keystore reports itself sealed.
      if (!keys.ownsDatabase(snapshot.meta[MASTER_KEY_CHECK])) return { ...snapshot, keysets: [], keys: [], clients: [], issuers: [] }
      const freshness = freshnessOf(snapshot, keys)
      for (const failure of freshness.failures) report(failure)
      const check: RowCheck = async (table, row) => (await keys.check(table, row)) ?? freshness.stale(table, row)
      const checked: Snapshot = { ...snapshot }
      for (const table of SEALED_TABLE_NAMES) {
        Object.assign(checked, { [table]: await trusted(check, report, table, snapshot[table]) })
      }
      return checked
    },
    transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
      return storage.transaction(async (raw) => {
        // Read before the work appends to the audit log, which would run past the committed manifest's head.
        const committed = await committedState(raw, keys)
        // A process still running on a database rewrapped under it (rewrap --force) writes nothing: its
        // rows would be sealed, and its events chained, under a key the database no longer has.
        if (committed.underAnotherKey) throw new Sealed(REKEYED_DATABASE)
        const tx = new SealedTx(raw, keys, report, committed)
        const result = await work(tx)
        // The manifest describes what commits: carried forward after the transaction's last write.
        if (tx.wrote) await carryStateManifest(raw, tx.committed, tx.written, keys)
        return result
      })
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
