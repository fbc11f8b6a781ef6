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

/** The error a failing driver would throw; the wrapped storage maps it to 503. */
export class InjectedFault extends Error {
  readonly code = 'SQLITE_IOERR'
  constructor(where: string) {
    super(`injected storage fault (${where})`)
    this.name = 'InjectedFault'
  }
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
 * never failed: the point is what a failed change leaves behind. Faults inside a
 * transaction surface as the inner storage's own mapping of a driver error
 * (503 storage_unavailable after a rollback), exactly as a real I/O error would.
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
      throw new InjectedFault(`${what}, write ${this.writes}`)
    }
  }

  #wrap(tx: Tx): Tx {
    return new Proxy(tx, {
      get: (target, property, receiver) => {
        const value = Reflect.get(target, property, receiver)
        if (typeof value !== 'function') return value
        if (typeof property === 'string' && WRITES.test(property)) {
          return async (...args: unknown[]) => {
            this.#beforeWrite(property)
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
      throw Object.assign(new StorageUnavailable('storage did not complete the operation'), { cause: new InjectedFault('begin') })
    }
    return this.inner.transaction(async (tx) => {
      const result = await work(this.#wrap(tx))
      if (this.#plan?.kind === 'commit' && this.writes > 0) {
        this.#plan = null
        this.injected++
        throw new InjectedFault('commit')
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
