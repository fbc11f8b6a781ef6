import { appendFileSync } from 'node:fs'
import type { Clock } from '../clock.js'
import type { AuditEvent, AuditInput } from '../keys/model.js'
import type { Storage, Tx } from '../storage/types.js'
import { AUDIT_HEAD, chainEvent, sealedAuditHead, type AuditLink } from './chain.js'

/**
 * Links events onto the hash-chained audit log inside one transaction: the one place
 * an event is linked to the newest one before it. The transaction holds the storage's
 * write lock, so nobody extends the chain between the read and the inserts; the
 * newest event is read once, however many events are appended. With `key` (the audit
 * key; by default the transaction's own, set by the sealed storage) each link is an
 * HMAC and `finish` moves the log's authenticated head to the last event, once; without,
 * links are the plain SHA-256 of logs written before the keyed chain (audit/chain.ts).
 */
class ChainWriter {
  readonly #tx: Tx
  readonly #key: Buffer | null
  /** The newest event of the chain; undefined until read, null for an empty log. */
  #previous: AuditLink | null | undefined
  #appended: AuditEvent | null = null

  constructor(tx: Tx, key: Buffer | null) {
    this.#tx = tx
    this.#key = key
  }

  async append(input: AuditInput): Promise<AuditEvent> {
    if (this.#previous === undefined) this.#previous = await this.#tx.lastAudit()
    const event = chainEvent(this.#previous, input, this.#key)
    await this.#tx.insertAudit(event)
    this.#previous = this.#appended = event
    return event
  }

  /** Writes the authenticated head once, at the last event appended (keyed chain only). */
  async finish(): Promise<void> {
    if (this.#key && this.#appended) await this.#tx.setMeta(AUDIT_HEAD, sealedAuditHead(this.#appended, this.#key))
  }
}

/** Appends one event to the audit log in `tx` and moves the head to it (ChainWriter). */
export async function appendAudit(tx: Tx, input: AuditInput, key: Buffer | null = tx.auditKey ?? null): Promise<AuditEvent> {
  const chain = new ChainWriter(tx, key)
  const event = await chain.append(input)
  await chain.finish()
  return event
}

/** Receives audit events after their transaction commits (SIGNET_AUDIT_FILE). */
export interface AuditSink {
  write(events: AuditEvent[]): void
}

/**
 * Appends each event as one JSON line, for log shippers. The database stays the
 * record: a failed append is reported through `onError` and does not undo the change.
 */
export class FileAuditSink implements AuditSink {
  constructor(
    readonly path: string,
    readonly onError: (error: Error) => void = () => {},
  ) {}

  write(events: AuditEvent[]): void {
    if (events.length === 0) return
    try {
      appendFileSync(this.path, events.map((event) => `${JSON.stringify(event)}\n`).join(''), { mode: 0o600 })
    } catch (error) {
      this.onError(error as Error)
    }
  }
}

/** The sink SIGNET_AUDIT_FILE asks for, reporting failed appends to `logger`; none without it. */
export function auditSinkFor(auditFile: string | null, logger: { error(object: object, message: string): void }): AuditSink | null {
  return auditFile ? new FileAuditSink(auditFile, (error) => logger.error({ err: error }, 'cannot append to SIGNET_AUDIT_FILE')) : null
}

export type Audit = (input: Omit<AuditInput, 'at'> & { at?: number }) => Promise<AuditEvent>

/**
 * Runs `work` in one storage transaction with an `audit` function that appends to
 * the hash-chained log inside the same transaction: the change, its audit rows and
 * (on the sealed storage) the log's head commit together or not at all, the head
 * written once however many events the change records (ChainWriter). Committed
 * events then go to the sink.
 */
export async function auditedTransaction<T>(
  storage: Storage,
  sink: AuditSink | null,
  now: () => number,
  work: (tx: Tx, audit: Audit) => Promise<T>,
): Promise<T> {
  const events: AuditEvent[] = []
  const result = await storage.transaction(async (tx) => {
    events.length = 0
    const chain = new ChainWriter(tx, tx.auditKey ?? null)
    const audit: Audit = async (input) => {
      const event = await chain.append({ ...input, at: input.at ?? now() })
      events.push(event)
      return event
    }
    const outcome = await work(tx, audit)
    await chain.finish()
    return outcome
  })
  sink?.write(events)
  return result
}

/** What a service that makes audited changes is given. */
export interface AuditedChangeOptions {
  storage: Storage
  clock: Clock
  auditSink?: AuditSink | null
  /** Called after every committed change, so the in-memory view catches up at once. */
  onCommit?: () => Promise<void>
}

/**
 * How the admin services (keys, clients, issuers) change state: each change is one
 * audited transaction, and `onCommit` runs once it has committed. Reads run in a
 * storage transaction (which takes the write lock) without an audit.
 */
export class AuditedChanges {
  readonly storage: Storage
  readonly clock: Clock
  readonly #sink: AuditSink | null
  readonly #onCommit: () => Promise<void>

  constructor(options: AuditedChangeOptions) {
    this.storage = options.storage
    this.clock = options.clock
    this.#sink = options.auditSink ?? null
    this.#onCommit = options.onCommit ?? (async () => {})
  }

  async apply<T>(work: (tx: Tx, audit: Audit) => Promise<T>): Promise<T> {
    const result = await auditedTransaction(this.storage, this.#sink, () => this.clock.now(), work)
    await this.#onCommit()
    return result
  }

  read<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    return this.storage.transaction(work)
  }
}
