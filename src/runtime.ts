import type { Logger } from 'pino'
import { auditedTransaction, auditSinkFor, type AuditSink } from './audit/recorder.js'
import { ClientService } from './auth/clients.js'
import { systemClock, type Clock } from './clock.js'
import type { Config } from './config.js'
import { sealedCheckValue, type MasterKey } from './crypto/master-key.js'
import { IssuerService } from './identity/issuers.js'
import { SoftwareBackend, UnavailableBackend, type Backends } from './keys/backend.js'
import { createPkcs11Backend } from './keys/pkcs11/index.js'
import { Keystore } from './keys/keystore.js'
import { checkMasterKey, MASTER_KEY_CHECK, masterKeyRequired } from './keys/master-key-check.js'
import { masterKeyVariable, openMasterKey } from './keys/master-key-source.js'
import { KeyService } from './keys/service.js'
import { verifyAuditLog, type AuditLogCheck } from './storage/integrity-check.js'
import { adoptStateManifest, MANIFEST_RECORDED, sealExistingRows } from './storage/integrity-upgrade.js'
import { openStorage } from './storage/open.js'
import { INTEGRITY_META, IntegrityKeys } from './storage/row-integrity.js'
import { IntegrityFailures, sealStorage, unsealed } from './storage/sealed-storage.js'
import type { Storage } from './storage/types.js'
import { createLogger } from './logger.js'

export interface SignetOptions {
  config: Config
  clock?: Clock
  /** A storage to use instead of the one the config names (tests, fault injection). */
  storage?: Storage
  logger?: Logger
  /** Backends to use instead of the configured ones (tests). */
  backends?: Partial<Backends>
  /** Create the default keyset on an empty database (`signet serve`, `signet dev`). */
  createDefaultKeyset?: boolean
  /** How often to look for changes made by other processes. */
  pollIntervalMs?: number
  /**
   * false: do not load or refresh the in-memory keystore. For CLI commands that
   * change storage and exit: they never sign, so they never open a key to do so.
   */
  keystore?: boolean
  /**
   * false: this process does not run the key schedule until `takeSchedule()`. The
   * workers of one instance (cluster.ts) share one storage and one of them schedules.
   */
  scheduler?: boolean
  /**
   * Awaited after each committed change, once this process's keystore has it: a
   * cluster worker waits there for the other workers to serve it (cluster.ts, WorkerPeers).
   */
  afterCommit?: () => Promise<void>
}

/**
 * Checks the master key against the database before anything is written: a wrong
 * key stops here and leaves storage as it was (docs/guarantees.md, point 3).
 */
async function unlock(storage: Storage, masterKey: MasterKey | null, variable: string): Promise<{ initialised: boolean }> {
  const check = await storage.getMeta(MASTER_KEY_CHECK)
  if (check !== null) {
    if (!masterKey) throw masterKeyRequired(': this database holds encrypted keys')
    checkMasterKey(masterKey, check, variable)
    return { initialised: true }
  }
  if (!masterKey) throw masterKeyRequired('; make one with: openssl rand -base64 32, or keep it in an HSM with signet init --master-key-pkcs11')
  return { initialised: false }
}

/**
 * One Signet instance: storage, the in-memory keystore, the services that change
 * keys and clients, and the loop that picks up changes and runs the schedule.
 * The HTTP app (app.ts), the server (server.ts) and the CLI all build on it.
 */
export class Signet {
  readonly config: Config
  readonly clock: Clock
  readonly storage: Storage
  readonly logger: Logger
  readonly keystore: Keystore
  readonly keys: KeyService
  readonly clients: ClientService
  readonly issuers: IssuerService
  readonly backends: Backends
  readonly auditSink: AuditSink | null
  /** Rows that failed their integrity check, each logged and counted once. */
  readonly integrityFailures: IntegrityFailures
  readonly #integrityKeys: IntegrityKeys
  readonly #pollIntervalMs: number
  #timer: NodeJS.Timeout | null = null
  #loop: Promise<void> | null = null
  #closed = false
  /** Stops change notifications (storage shared by replicas). */
  #unsubscribe: (() => void) | null = null
  /** A poll started by a change notification, and whether another arrived meanwhile. */
  #notifiedPoll: Promise<void> | null = null
  #notifiedAgain = false
  #leaseHeld = false
  #scheduler: boolean
  #storageDown = false
  /** The sealed reason last logged; null while the master key opens the keys. */
  #sealedReason: string | null = null
  /** Releases a master key this instance opened (in a PKCS#11 token). */
  #closeMasterKey: () => Promise<void> = async () => {}

  private constructor(options: SignetOptions & { storage: Storage; logger: Logger; backends: Backends; integrityKeys: IntegrityKeys }) {
    this.config = options.config
    this.clock = options.clock ?? systemClock
    this.logger = options.logger
    this.#integrityKeys = options.integrityKeys
    this.integrityFailures = new IntegrityFailures((failure) =>
      this.logger.error({ integrity: failure }, `integrity check failed: ${failure.table} row ${failure.id} is ignored: ${failure.reason}`))
    // Everything above storage reads only rows that pass their check, and writes sealed ones.
    this.storage = sealStorage(options.storage, options.integrityKeys, this.integrityFailures)
    this.backends = options.backends
    this.#pollIntervalMs = options.pollIntervalMs ?? 500
    this.#scheduler = options.scheduler ?? true
    this.auditSink = auditSinkFor(options.config.auditFile, this.logger)
    const onError = (error: unknown, context: string) => this.logger.error({ err: error }, `${context} failed`)
    this.keystore = new Keystore({
      storage: this.storage,
      backends: this.backends,
      masterKey: options.config.masterKey,
      jwksMaxAge: options.config.jwksMaxAge,
      onError,
      clock: this.clock,
      outageGraceSeconds: options.config.storageOutageGrace,
    })
    // The change is committed: a failed reload must not turn its answer into an error.
    // The keystore marks storage unavailable and the next poll reloads.
    const afterCommit = options.afterCommit ?? (async () => {})
    const onCommit = options.keystore === false
      ? async () => {}
      : async () => {
        await this.keystore.refresh().catch((error) => onError(error, 'reloading keys after a change'))
        await afterCommit()
      }
    this.keys = new KeyService({ storage: this.storage, backends: this.backends, clock: this.clock, jwksMaxAge: options.config.jwksMaxAge, auditSink: this.auditSink, onCommit, masterKey: options.config.masterKey })
    this.clients = new ClientService({ storage: this.storage, clock: this.clock, auditSink: this.auditSink, onCommit })
    this.issuers = new IssuerService({ storage: this.storage, clock: this.clock, auditSink: this.auditSink, onCommit })
  }

  /** Opens storage, checks the master key, migrates, and loads the keystore. */
  static async open(options: SignetOptions): Promise<Signet> {
    // An HSM master key that cannot be opened stops here, before storage is touched.
    const opened = await openMasterKey(options.config)
    const config: Config = { ...options.config, masterKey: opened.masterKey }
    const logger = options.logger ?? createLogger(config.logLevel)
    let storage: Storage
    try {
      storage = options.storage ?? (await openStorage(config))
    } catch (error) {
      await opened.close()
      throw error
    }
    try {
      const { initialised } = await unlock(storage, config.masterKey, masterKeyVariable(config))
      await storage.migrate()
      const backends: Backends = {
        software: new SoftwareBackend(config.masterKey),
        // A PKCS#11 token that is away at start fails only its own keysets (docs/hsm.md).
        pkcs11: options.backends?.pkcs11 ?? (config.pkcs11
          ? createPkcs11Backend(config.pkcs11, logger)
          : new UnavailableBackend('pkcs11', 'no PKCS#11 module is configured (SIGNET_PKCS11_MODULE)')),
        ...options.backends,
      }
      // unlock() has made sure there is a master key (config.masterKey is the opened one, software or HSM).
      const signet = new Signet({ ...options, config, storage, logger, backends, integrityKeys: new IntegrityKeys(config.masterKey!) })
      signet.#closeMasterKey = opened.close
      if (!initialised) await signet.#initialise()
      else await signet.#sealExistingRows(storage)
      if (options.createDefaultKeyset) await signet.#createDefaultKeyset()
      if (options.keystore !== false) await signet.keystore.refresh()
      return signet
    } catch (error) {
      await storage.close().catch(() => {})
      await opened.close()
      throw error
    }
  }

  /** The audit log's chain and head, checked with this instance's audit key (GET /v1/admin/audit/verify). */
  async checkAuditLog(): Promise<AuditLogCheck> {
    const raw = unsealed(this.storage)
    return verifyAuditLog(raw, this.#integrityKeys)
  }

  async #initialise(): Promise<void> {
    const masterKey = this.config.masterKey!
    await auditedTransaction(this.storage, this.auditSink, () => this.clock.now(), async (tx, audit) => {
      if ((await tx.getMeta(MASTER_KEY_CHECK)) !== null) return // another process got there first
      await tx.setMeta(MASTER_KEY_CHECK, sealedCheckValue(masterKey))
      const event = await audit({ actor: 'system', action: 'storage.init', target: 'master_key', details: { masterKeyId: masterKey.idHex, [MANIFEST_RECORDED]: true } })
      // Version 2: the state manifest records the rows; this sealed transaction writes it as it commits.
      await tx.setMeta(INTEGRITY_META, this.#integrityKeys.sealMarker({ version: 2, keyedFrom: event.id }))
    })
  }

  /**
   * A database written before rows were authenticated is upgraded here, once
   * (storage/integrity-upgrade.ts); one written before the state manifest gets it
   * (storage/state-manifest.ts).
   */
  async #sealExistingRows(storage: Storage): Promise<void> {
    const { event, adoption } = await storage.transaction(async (tx) => ({
      event: await sealExistingRows(tx, this.#integrityKeys, this.clock.now()),
      adoption: await adoptStateManifest(tx, this.#integrityKeys, this.clock.now()),
    }))
    if (adoption && 'refused' in adoption) {
      this.logger.error(`integrity check failed: no state manifest is given to this database: ${adoption.refused}; no row is used until it is restored (see signet check)`)
    } else if (adoption && 'kept' in adoption) {
      this.logger.warn(`integrity: ${adoption.kept}`)
    } else if (adoption) {
      this.auditSink?.write([adoption.event])
      this.logger.warn({ auditEvent: adoption.event.id }, 'upgraded the database: the state manifest now records which version of each row is current, as the rows are now (trust on first use)')
    }
    if (!event) return
    this.auditSink?.write([event])
    this.logger.warn({ ...event.details, auditEvent: event.id }, 'upgraded the database: existing rows are authenticated as they are now (trust on first use) and the audit log is keyed from here on')
  }

  /** On a database without keysets, creates the default keyset (ES256). */
  async #createDefaultKeyset(): Promise<void> {
    const existing = await this.storage.transaction((tx) => tx.keysets.list())
    if (existing.length > 0) return
    if (await this.keys.ensureKeyset({ name: this.config.defaultKeyset }, 'system')) {
      this.logger.info({ keyset: this.config.defaultKeyset }, 'created the default keyset')
    }
  }

  /** Runs whatever the schedule has due now. Tests call it after moving the clock. */
  async tick(): Promise<number> {
    return this.keys.tick()
  }

  /** From now on this process runs the key schedule (it was opened with `scheduler: false`). */
  takeSchedule(): void {
    if (this.#scheduler) return
    this.#scheduler = true
    this.logger.info('this worker runs the key schedule')
  }

  /**
   * Whether this process may run the schedule: never when it was not given it
   * (another worker of the instance has it); always with a storage of its own
   * (SQLite), only while holding the scheduler lease with a shared one (PostgreSQL).
   * KeyService re-plans inside each serialised transaction, so even two schedulers
   * could not double a change; the lease keeps the work (and key generation) in one place.
   */
  async #maySchedule(): Promise<boolean> {
    if (!this.#scheduler) return false
    if (!this.storage.schedulerLease) return true
    const held = await this.storage.schedulerLease()
    if (held !== this.#leaseHeld) {
      this.#leaseHeld = held
      if (held) this.logger.info({ storage: this.storage.kind }, 'scheduler lease taken: this replica runs the key schedule')
      else this.logger.warn({ storage: this.storage.kind }, 'scheduler lease lost')
    }
    return held
  }

  /** A change notification: poll now, coalescing notifications that arrive meanwhile. */
  #pollSoon(): void {
    if (this.#closed) return
    if (this.#notifiedPoll) {
      this.#notifiedAgain = true
      return
    }
    this.#notifiedPoll = (async () => {
      do {
        this.#notifiedAgain = false
        await this.keystore.poll()
      } while (this.#notifiedAgain && !this.#closed)
    })().finally(() => {
      this.#notifiedPoll = null
    })
  }

  /**
   * Logs at error when the keystore becomes sealed (the master key no longer opens
   * the keys, e.g. after `signet rewrap` by another process), and when it is not any
   * more: a sealed server answers 503, and its operator must hear why.
   */
  #noteSealedState(): void {
    const reason = this.keystore.sealedReason
    if (reason === this.#sealedReason) return
    this.#sealedReason = reason
    if (reason) this.logger.error({ reason }, 'sealed: signing stopped until Signet restarts with the right master key')
    else this.logger.info('unsealed: the master key opens the keys again')
  }

  /** Logs when storage stops and starts answering (the keystore tracks the outage). */
  #noteStorageState(): void {
    const outage = this.keystore.storageOutage()
    if ((outage !== null) === this.#storageDown) return
    this.#storageDown = outage !== null
    if (outage) this.logger.error({ signingUntil: new Date(outage.signingUntil).toISOString() }, 'storage does not answer: signing continues from memory until the outage grace ends')
    else this.logger.info('storage answers again')
  }

  /**
   * Starts the background loop: every poll interval it picks up changes made by
   * other processes and, when something is due and this process may schedule,
   * runs the schedule. A storage that notifies changes also triggers a poll at once.
   */
  start(): void {
    if (this.#timer || this.#closed) return
    this.#unsubscribe = this.storage.onChange?.(() => this.#pollSoon()) ?? null
    let failedBefore: string | null = null
    const step = async () => {
      await this.keystore.poll()
      this.#noteStorageState()
      this.#noteSealedState()
      const maySchedule = await this.#maySchedule()
      const due = this.keystore.nextDueAt()
      if (maySchedule && due !== null && due <= this.clock.now()) {
        try {
          const changes = await this.tick()
          if (changes > 0) this.logger.info({ changes }, 'scheduled key changes applied')
          failedBefore = null
        } catch (error) {
          // A failure that repeats every poll (a row that fails its integrity check
          // blocking a change) is logged once, until the schedule succeeds or fails otherwise.
          const message = error instanceof Error ? error.message : String(error)
          if (message !== failedBefore) this.logger.error({ err: error }, 'scheduled key changes failed (logged again only if it changes)')
          failedBefore = message
        }
      }
    }
    const schedule = () => {
      if (this.#closed) return
      this.#timer = setTimeout(() => {
        this.#loop = step().finally(schedule)
      }, this.#pollIntervalMs)
      this.#timer.unref()
    }
    schedule()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#unsubscribe?.()
    await this.#loop?.catch(() => {})
    await this.#notifiedPoll?.catch(() => {})
    for (const backend of new Set(Object.values(this.backends))) await backend.close?.().catch(() => {})
    await this.#closeMasterKey().catch(() => {})
    await this.storage.close()
  }
}
