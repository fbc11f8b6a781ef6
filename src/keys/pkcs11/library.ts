import { createRequire } from 'node:module'
import type * as Pkcs11js from 'pkcs11js'

export type Binding = typeof Pkcs11js
export type Api = Pkcs11js.PKCS11
export type Handle = Buffer

let binding: Binding | null = null

/**
 * The pkcs11js native binding, required on first use so that a machine where it
 * cannot load still runs every software keyset.
 */
export function pkcs11Binding(): Binding {
  if (binding) return binding
  try {
    binding = createRequire(import.meta.url)('pkcs11js') as Binding
    return binding
  } catch (error) {
    throw new Pkcs11Fault('the PKCS#11 binding cannot be loaded', `pkcs11js: ${describePkcs11Error(error)}`)
  }
}

/** The CK_BBOOL attributes Signet sets (PKCS#11 v2.40 section 4): only these take true or false. */
type BooleanAttribute =
  | 'CKA_TOKEN' | 'CKA_PRIVATE' | 'CKA_SENSITIVE' | 'CKA_EXTRACTABLE'
  | 'CKA_SIGN' | 'CKA_VERIFY' | 'CKA_ENCRYPT' | 'CKA_DECRYPT' | 'CKA_WRAP' | 'CKA_UNWRAP' | 'CKA_DERIVE'

/**
 * Boolean attributes of a template, by name and in the order given:
 * `flags({ CKA_SIGN: true, CKA_DERIVE: false })` is
 * `[{ type: CKA_SIGN, value: true }, { type: CKA_DERIVE, value: false }]`.
 */
export function flags(values: Partial<Record<BooleanAttribute, boolean>>): { type: number; value: boolean }[] {
  const pkcs11 = pkcs11Binding()
  return Object.entries(values).map(([name, value]) => ({ type: pkcs11[name as keyof typeof values], value }))
}

/**
 * A PKCS#11 failure: `summary` is what callers and /readyz are told (no paths,
 * codes or secrets), `detail` is what the log is told.
 */
export class Pkcs11Fault extends Error {
  constructor(readonly summary: string, readonly detail: string) {
    super(summary)
    this.name = 'Pkcs11Fault'
  }
}

/** The CKR_ name of a PKCS#11 error, or a short text for anything else. Never a secret. */
export function describePkcs11Error(error: unknown): string {
  if (error instanceof Error) {
    const match = /CKR_[A-Z0-9_]+/.exec(error.message)
    if (match) return match[0]
    return error.message.split('\n')[0]!.slice(0, 200)
  }
  return 'unknown error'
}

/** The CK_RV of a PKCS#11 error, or null. */
export function pkcs11Code(error: unknown): number | null {
  const code = (error as { code?: unknown } | null)?.code
  return error instanceof Error && error.name === 'Pkcs11Error' && typeof code === 'number' ? code : null
}

/**
 * One PKCS#11 library loaded into this process. Cryptoki state (C_Initialize,
 * logins, sessions) belongs to the whole process, so every user of the same
 * module path shares one instance, counted by acquire/release.
 *
 * After a fault (a token pulled out, a daemon restarted) many modules only see
 * the token again after C_Finalize and C_Initialize; `reset` does that once per
 * generation, after the calls in flight have returned. Users compare generations
 * to know that their sessions and object handles are gone.
 */
export class Pkcs11Library {
  static readonly #loaded = new Map<string, Pkcs11Library>()

  readonly path: string
  #api: Api | null = null
  #initialised = false
  #generation = 0
  #users = 0
  #inFlight = 0
  #drained: (() => void)[] = []
  #resetting: Promise<void> | null = null

  private constructor(path: string) {
    this.path = path
  }

  /** The shared instance for `path`; nothing is loaded until the first run. */
  static acquire(path: string): Pkcs11Library {
    let library = Pkcs11Library.#loaded.get(path)
    if (!library) {
      library = new Pkcs11Library(path)
      Pkcs11Library.#loaded.set(path, library)
    }
    library.#users++
    return library
  }

  get generation(): number {
    return this.#generation
  }

  #ready(): Api {
    const pkcs11 = pkcs11Binding()
    if (!this.#api) {
      const api = new pkcs11.PKCS11()
      try {
        api.load(this.path)
      } catch (error) {
        throw new Pkcs11Fault('the PKCS#11 module cannot be loaded', `cannot load ${this.path}: ${describePkcs11Error(error)}`)
      }
      this.#api = api
    }
    if (!this.#initialised) {
      try {
        this.#api.C_Initialize({ flags: pkcs11.CKF_OS_LOCKING_OK })
      } catch (error) {
        if (pkcs11Code(error) !== pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
          throw new Pkcs11Fault('the PKCS#11 module failed to initialise', `C_Initialize of ${this.path}: ${describePkcs11Error(error)}`)
        }
      }
      this.#initialised = true
    }
    return this.#api
  }

  /**
   * Runs `work` against the initialised library (loading and initialising it
   * first if needed). A reset waits until every run has returned.
   */
  async run<T>(work: (api: Api, generation: number) => Promise<T> | T): Promise<T> {
    while (this.#resetting) await this.#resetting
    const api = this.#ready()
    this.#inFlight++
    try {
      return await work(api, this.#generation)
    } finally {
      if (--this.#inFlight === 0) for (const done of this.#drained.splice(0)) done()
    }
  }

  /**
   * `run` for callers that cannot wait: pkcs11js calls are synchronous, and the
   * master key (master-key.ts) answers synchronously. Fails while a reset is under way.
   */
  runNow<T>(work: (api: Api, generation: number) => T): T {
    if (this.#resetting) throw new Pkcs11Fault('the PKCS#11 module is reconnecting', 'a reset of the module is under way')
    const api = this.#ready()
    this.#inFlight++
    try {
      return work(api, this.#generation)
    } finally {
      if (--this.#inFlight === 0) for (const done of this.#drained.splice(0)) done()
    }
  }

  /**
   * Finalises the library if it is still at generation `seen`, so the next run
   * initialises it again and re-reads its slots. Must not be called from inside run.
   */
  reset(seen: number): Promise<void> {
    if (this.#resetting) return this.#resetting
    if (seen !== this.#generation) return Promise.resolve()
    this.#resetting = (async () => {
      if (this.#inFlight > 0) await new Promise<void>((resolve) => this.#drained.push(resolve))
      this.#finalise()
      this.#generation++
    })().finally(() => {
      this.#resetting = null
    })
    return this.#resetting
  }

  #finalise(): void {
    if (this.#api && this.#initialised) {
      try {
        this.#api.C_Finalize()
      } catch {
        // A module that lost its token may refuse to finalise; it is re-initialised anyway.
      }
    }
    this.#initialised = false
  }

  /** Drops one user; the last one finalises and unloads the module. */
  async release(): Promise<void> {
    if (--this.#users > 0) return
    while (this.#resetting) await this.#resetting
    if (this.#inFlight > 0) await new Promise<void>((resolve) => this.#drained.push(resolve))
    if (this.#users > 0) return // acquired again meanwhile
    Pkcs11Library.#loaded.delete(this.path)
    this.#finalise()
    if (this.#api) {
      try {
        this.#api.close()
      } catch {
        // Unloading is best effort at shutdown.
      }
      this.#api = null
    }
  }
}
