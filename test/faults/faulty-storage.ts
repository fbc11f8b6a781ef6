import { StorageUnavailable } from '../../src/errors.js'
import type { AuditEvent } from '../../src/keys/model.js'
import type { Snapshot, Storage, Tx } from '../../src/storage/types.js'

/**
 * What the next writes should suffer:
 * - `write`: the `at`-th write (1-based, counted from arm()) throws, before it runs;
 * - `fraction`: each write throws with this probability (seeded `random`);
 * - `commit`: the next transaction throws after its work, just before committing;
 * - `begin`: the next transaction cannot start (the database is locked or gone).
 */
export type FaultPlan =
  | { kind: 'write'; at: number }
  | { kind: 'fraction'; fraction: number; random: () => number }
  | { kind: 'commit' }
  | { kind: 'begin' }

/** The driver error behind an injected fault (SQLite's code for an I/O error). */
export class InjectedFault extends Error {
  readonly code = 'SQLITE_IOERR'
  constructor(where: string) {
    super(`injected storage fault (${where})`)
    this.name = 'InjectedFault'
  }
}

/** What a storage throws when its driver fails: 503 storage_unavailable, the driver error as cause. */
function injected(where: string): StorageUnavailable {
  return Object.assign(new StorageUnavailable('storage did not complete the operation'), { cause: new InjectedFault(where) })
}

/** Tx members that write: every one of them can be made to fail. */
const WRITES = /^(insert|update|set|append|delete)/

/** A small seeded PRNG (mulberry32), so a failing run can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * A Storage around a real one (SQLite here) that fails writes on demand. Reads are
 * never failed: the point is what a failed change leaves behind. A fault surfaces
 * as a real storage surfaces a driver error: 503 storage_unavailable, and the
 * inner storage rolls the transaction back.
 */
export class FaultyStorage implements Storage {
  readonly inner: Storage
  #plan: FaultPlan | null = null
  /** Writes attempted since the last arm(). */
  writes = 0
  /** Faults injected since the last arm(). */
  injected = 0

  constructor(inner: Storage) {
    this.inner = inner
  }

  get kind(): string {
    return this.inner.kind
  }

  arm(plan: FaultPlan): void {
    this.#plan = plan
    this.writes = 0
    this.injected = 0
  }

  disarm(): void {
    this.#plan = null
  }

  #beforeWrite(what: string): void {
    this.writes++
    const plan = this.#plan
    if (!plan) return
    const fail = plan.kind === 'write' ? this.writes === plan.at : plan.kind === 'fraction' ? plan.random() < plan.fraction : false
    if (fail) {
      this.injected++
      throw injected(`${what}, write ${this.writes}`)
    }
  }

  /** The wrapped tables of the transactions seen, so `tx.keys` is the same object each time. */
  readonly #wrapped = new WeakMap<object, object>()

  /** `tx` with its writes counted and failed on demand, the writes of its tables (tx.keys.insert, …) too. */
  #wrap<T extends object>(tx: T, path = ''): T {
    return new Proxy(tx, {
      get: (target, property, receiver) => {
        const value = Reflect.get(target, property, receiver)
        const name = `${path}${String(property)}`
        if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value)) {
          let wrapped = this.#wrapped.get(value)
          if (!wrapped) this.#wrapped.set(value, (wrapped = this.#wrap(value, `${name}.`)))
          return wrapped
        }
        if (typeof value !== 'function') return value
        if (typeof property === 'string' && WRITES.test(property)) {
          return async (...args: unknown[]) => {
            this.#beforeWrite(name)
            return value.apply(target, args)
          }
        }
        return value.bind(target)
      },
    })
  }

  async transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    if (this.#plan?.kind === 'begin') {
      this.#plan = null
      this.injected++
      throw injected('begin')
    }
    return this.inner.transaction(async (tx) => {
      const result = await work(this.#wrap(tx))
      if (this.#plan?.kind === 'commit' && this.writes > 0) {
        this.#plan = null
        this.injected++
        throw injected('commit')
      }
      return result
    })
  }

  migrate(): Promise<void> {
    return this.inner.migrate()
  }

  getMeta(name: string): Promise<string | null> {
    return this.inner.getMeta(name)
  }

  generation(): Promise<number> {
    return this.inner.generation()
  }

  snapshot(): Promise<Snapshot> {
    return this.inner.snapshot()
  }

  listAudit(after: number, limit: number): Promise<AuditEvent[]> {
    return this.inner.listAudit(after, limit)
  }

  ping(): Promise<void> {
    return this.inner.ping()
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}
