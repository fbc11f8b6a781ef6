import { createHash, createPublicKey, type KeyObject } from 'node:crypto'
import { claimPolicyOf } from '../auth/claim-policy.js'
import type { Alg } from '../crypto/algorithms.js'
import { wrapOf } from '../crypto/envelope.js'
import type { SigningKey } from '../crypto/jws.js'
import type { MasterKey } from '../crypto/master-key.js'
import { systemClock, type Clock } from '../clock.js'
import { HsmUnavailable, Sealed, SignetError } from '../errors.js'
import type { Snapshot, Storage } from '../storage/types.js'
import { Mutex } from '../util/mutex.js'
import { IdentityDirectory } from '../identity/directory.js'
import type { Backends } from './backend.js'
import { backendProblem, probeBackends, waitingForDevice } from './hsm-probe.js'
import { jwksDocument, publishedKeys, type JwksDocument } from './jwks.js'
import { nextDueAt } from './lifecycle.js'
import { isDatabaseMasterKey, MASTER_KEY_CHECK, REKEYED_DATABASE } from './master-key-check.js'
import { KEY_STATES, type Client, type KeyRecord, type KeyState, type Keyset } from './model.js'
import { OutageGrace, type StorageOutage } from './outage-grace.js'
import { effectivePrepublish } from './policy.js'

/** One keyset as the request path sees it; rebuilt only when its rows change. */
export interface LiveKeyset {
  readonly keyset: Keyset
  /** The active key, ready to sign; null when it cannot (see signerError). */
  readonly signer: SigningKey | null
  readonly signerError: SignetError | null
  readonly activeKid: string | null
  /** pending, active and retired keys: what the JWK Set publishes. */
  readonly published: readonly KeyRecord[]
  /** Public keys of the published keys, by kid, for /v1/verify. */
  readonly verifyKeys: ReadonlyMap<string, { alg: Alg; key: KeyObject }>
  readonly jwks: JwksDocument
  /** Earliest time (ms) at which the scheduler has something to do for this keyset. */
  readonly nextDueAt: number | null
  /** Algorithms of the published keys and of the keyset's policy. */
  readonly algorithms: readonly Alg[]
  /** How many of the keyset's keys are in each state (metrics). */
  readonly keyCounts: Readonly<Record<KeyState, number>>
}

export interface Readiness {
  ready: boolean
  reason: string | null
  code: string | null
}

export interface KeystoreOptions {
  storage: Storage
  backends: Backends
  masterKey: MasterKey | null
  jwksMaxAge: number
  onError?: (error: unknown, context: string) => void
  /** Measures how long storage has been out of reach. */
  clock?: Clock
  /**
   * Seconds signing goes on from memory once storage stops answering
   * (SIGNET_STORAGE_OUTAGE_GRACE); default 300. See OutageGrace.
   */
  outageGraceSeconds?: number
}

/**
 * The in-memory view the request path reads: keysets with their active key
 * decrypted once into a KeyObject, JWK Sets as precomputed bytes, clients by
 * token hash, and the workload-identity bindings. Signing never touches storage.
 *
 * The view is rebuilt from a storage snapshot after each change this process makes
 * and whenever the storage generation moves (a change by the CLI or another
 * replica). A keyset whose rows did not change keeps its built state and its
 * decrypted key.
 */
export class Keystore {
  readonly #storage: Storage
  readonly #backends: Backends
  readonly #masterKey: MasterKey | null
  readonly #jwksMaxAge: number
  readonly #onError: (error: unknown, context: string) => void
  readonly #refreshLock = new Mutex()
  readonly #outageGrace: OutageGrace

  #generation = -1
  #keysets = new Map<string, LiveKeyset>()
  #fingerprints = new Map<string, string>()
  #clientsByHash = new Map<string, Client>()
  #identity = IdentityDirectory.empty
  /** The last snapshot read while the master key owned the database. */
  #trusted: Snapshot | null = null
  #sealed: string | null = null
  #loaded = false

  constructor(options: KeystoreOptions) {
    this.#storage = options.storage
    this.#backends = options.backends
    this.#masterKey = options.masterKey
    this.#jwksMaxAge = options.jwksMaxAge
    this.#onError = options.onError ?? (() => {})
    this.#outageGrace = new OutageGrace(options.clock ?? systemClock, options.outageGraceSeconds)
  }

  get generation(): number {
    return this.#generation
  }

  /**
   * One keyset as the request path sees it. Past the outage grace its signer is
   * withheld (storage_unavailable); JWK Sets and verification go on.
   */
  keyset(name: string): LiveKeyset | undefined {
    const live = this.#keysets.get(name)
    const stopped = live ? this.#outageGrace.signingStopped() : null
    if (!live || !stopped) return live
    return { ...live, signer: null, signerError: stopped }
  }

  /** Null while storage answers; else since when it does not and how long signing goes on. */
  storageOutage(): StorageOutage | null {
    return this.#outageGrace.outage()
  }

  keysets(): IterableIterator<LiveKeyset> {
    return this.#keysets.values()
  }

  /** The live (not revoked) client whose token hashes to `tokenHash`. */
  clientByTokenHash(tokenHash: string): Client | undefined {
    return this.#clientsByHash.get(tokenHash)
  }

  /** Trusted workload-token issuers and the live clients bound to their subjects. */
  identity(): IdentityDirectory {
    return this.#identity
  }

  /** Why the master key cannot open this database's keys, or null. */
  get sealedReason(): string | null {
    return this.#sealed
  }

  /** Earliest time anything is due in any keyset. */
  nextDueAt(): number | null {
    let next: number | null = null
    for (const live of this.#keysets.values()) {
      if (live.nextDueAt !== null && (next === null || live.nextDueAt < next)) next = live.nextDueAt
    }
    return next
  }

  readiness(): Readiness {
    if (!this.#loaded) return { ready: false, code: 'not_ready', reason: 'keys are not loaded yet' }
    const outage = this.#outageGrace.notReadyReason()
    if (outage) return { ready: false, code: 'storage_unavailable', reason: outage }
    if (this.#sealed) return { ready: false, code: 'sealed', reason: this.#sealed }
    const device = backendProblem(this.#backends, this.#keysets.values())
    if (device) return { ready: false, code: 'hsm_unavailable', reason: device }
    for (const live of this.#keysets.values()) {
      if (!live.activeKid) return { ready: false, code: 'not_ready', reason: `keyset ${live.keyset.name} has no active key` }
      if (!live.signer) return { ready: false, code: live.signerError?.code ?? 'not_ready', reason: `keyset ${live.keyset.name} cannot sign: ${live.signerError?.message ?? 'unknown'}` }
    }
    return { ready: true, code: null, reason: null }
  }

  /**
   * Rebuilds if storage changed since the last look, and always after an outage
   * (the view may be stale, and signers withheld). Errors mark storage unavailable.
   */
  async poll(): Promise<void> {
    await this.#retryBackends()
    try {
      const generation = await this.#storage.generation()
      const recovering = !this.#outageGrace.storageAnswers
      if (generation !== this.#generation || recovering) {
        await this.refresh()
      } else {
        this.#outageGrace.answered()
      }
    } catch (error) {
      this.#storageFailed(error, 'storage poll')
    }
  }

  /** Notes storage as failing; reported once per outage, not on every poll. */
  #storageFailed(error: unknown, context: string): void {
    if (this.#outageGrace.failed()) this.#onError(error, context)
  }

  /**
   * Probes the devices (hsm-probe.ts), then reloads the keysets whose active key a
   * device that is back could not open, so they recover by themselves.
   */
  async #retryBackends(): Promise<void> {
    await probeBackends(this.#backends)
    const waiting = waitingForDevice(this.#backends, this.#keysets.values())
    if (waiting && this.#outageGrace.storageAnswers) await this.refresh().catch((error) => this.#onError(error, 'reloading keys the HSM could not open'))
  }

  /** Reads a snapshot and rebuilds the view. Concurrent calls run one after another. */
  async refresh(): Promise<void> {
    await this.#refreshLock.run(async () => {
      let snapshot: Snapshot
      try {
        snapshot = await this.#storage.snapshot()
      } catch (error) {
        this.#storageFailed(error, 'storage read')
        throw error
      }
      await this.#rebuild(snapshot)
      this.#outageGrace.answered()
      this.#loaded = true
    })
  }

  async #rebuild(snapshot: Snapshot): Promise<void> {
    const check = snapshot.meta[MASTER_KEY_CHECK]
    const sealed = !this.#masterKey
      ? 'no master key is loaded'
      : !isDatabaseMasterKey(this.#masterKey, check)
        ? REKEYED_DATABASE
        : null
    const sealedChanged = sealed !== this.#sealed
    this.#sealed = sealed
    // Rows under another master key (a rewrap by another process) cannot be checked
    // here: the rows last trusted go on being served (JWK Sets, verification), sealed,
    // until a restart with the new key.
    const rows = sealed !== null && this.#trusted ? this.#trusted : snapshot
    if (sealed === null) this.#trusted = snapshot

    const keysByKeyset = new Map<string, KeyRecord[]>()
    for (const key of rows.keys) {
      const list = keysByKeyset.get(key.keyset) ?? []
      list.push(key)
      keysByKeyset.set(key.keyset, list)
    }

    const next = new Map<string, LiveKeyset>()
    const fingerprints = new Map<string, string>()
    for (const keyset of rows.keysets) {
      const keys = keysByKeyset.get(keyset.name) ?? []
      const fingerprint = fingerprintOf(keyset, keys)
      fingerprints.set(keyset.name, fingerprint)
      const previous = this.#keysets.get(keyset.name)
      if (previous && !sealedChanged && this.#fingerprints.get(keyset.name) === fingerprint && previous.signer) {
        next.set(keyset.name, previous)
        continue
      }
      next.set(keyset.name, await this.#build(keyset, keys, previous))
    }

    const clients = new Map<string, Client>()
    for (const client of rows.clients) {
      if (client.revokedAt !== null) continue
      clients.set(client.tokenHash, client)
      claimPolicyOf(client) // compiled here, once per load, not on the sign path
    }

    this.#keysets = next
    this.#fingerprints = fingerprints
    this.#clientsByHash = clients
    this.#identity = IdentityDirectory.from(snapshot.issuers, snapshot.clients)
    this.#generation = snapshot.generation
  }

  async #build(keyset: Keyset, keys: KeyRecord[], previous: LiveKeyset | undefined): Promise<LiveKeyset> {
    const active = keys.find((key) => key.state === 'active') ?? null
    let signer: SigningKey | null = null
    let signerError: SignetError | null = null
    if (active) {
      if (previous?.signer?.kid === active.kid && !this.#sealed) {
        signer = previous.signer
      } else if (this.#sealed && (active.hsmId === null || this.#sealed === REKEYED_DATABASE)) {
        // Under another master key the database's rows cannot be checked here, nor
        // changed (a revocation is refused): an HSM key, which needs no master key to
        // sign, stops signing as well.
        signerError = new Sealed(this.#sealed)
      } else {
        try {
          signer = await this.#backends[keyset.backend].load(active)
        } catch (error) {
          signerError = error instanceof SignetError
            ? error
            : active.hsmId !== null
              ? new HsmUnavailable('the HSM cannot use this key')
              : new Sealed('the master key cannot open the active key')
          // A device that stays away is reported once, not at every retry.
          if (previous?.signerError?.message !== signerError.message) this.#onError(error, `loading key ${active.kid} of keyset ${keyset.name}`)
        }
      }
    }

    const published = publishedKeys(keys)
    const verifyKeys = new Map<string, { alg: Alg; key: KeyObject }>()
    for (const key of published) {
      verifyKeys.set(key.kid, { alg: key.alg, key: createPublicKey({ key: key.publicJwk as never, format: 'jwk' }) })
    }
    const algorithms = [...new Set<Alg>([keyset.alg, ...published.map((key) => key.alg)])]
    const keyCounts = Object.fromEntries(KEY_STATES.map((state) => [state, 0])) as Record<KeyState, number>
    for (const key of keys) keyCounts[key.state]++
    return {
      keyset,
      signer,
      signerError,
      activeKid: active?.kid ?? null,
      published,
      verifyKeys,
      jwks: jwksDocument(published, keyset.x5c),
      nextDueAt: nextDueAt(keyset, keys, effectivePrepublish(keyset, this.#jwksMaxAge)),
      algorithms,
      keyCounts,
    }
  }
}

/** Changes whenever anything the built keyset depends on changes. */
function fingerprintOf(keyset: Keyset, keys: KeyRecord[]): string {
  const hash = createHash('sha256').update(JSON.stringify(keyset))
  for (const key of keys) {
    hash.update(`|${key.kid}|${key.state}|${key.activatesAt}|${key.activatedAt}|${key.publishedUntil}|${key.privateKey ? wrapOf(key.privateKey).toString('base64') : ''}`)
  }
  return hash.digest('base64')
}
