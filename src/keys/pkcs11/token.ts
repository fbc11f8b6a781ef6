import { createHash } from 'node:crypto'
import { HsmUnavailable, SignetError } from '../../errors.js'
import { describePkcs11Error, Pkcs11Fault, Pkcs11Library, pkcs11Binding, pkcs11Code, type Api, type Handle } from './library.js'

export interface TokenProblem {
  /** What callers and /readyz are told: no paths, codes or secrets. */
  summary: string
  /** What the log is told. */
  detail: string
}

export interface TokenOptions {
  /** Path of the PKCS#11 module (SIGNET_PKCS11_MODULE). */
  module: string
  /** Label of the token to use (SIGNET_PKCS11_TOKEN_LABEL). */
  tokenLabel: string | null
  /** CK_SLOT_ID of the token to use (SIGNET_PKCS11_SLOT). */
  slot: number | null
  /**
   * The user PIN, asked for at every connection attempt, so a corrected PIN file
   * is picked up without a restart.
   */
  pin: () => string | null
  /** Logged-in sessions kept open; each runs one operation at a time. */
  sessions?: number
  /** Least time between two connection attempts, or two health checks, in ms. */
  retryMs?: number
  /** The token went down (with why) or came back (null). */
  onChange?: (problem: TokenProblem | null) => void
  /** The token refused one operation but still answers. */
  onRefusal?: (detail: string) => void
}

/** A working connection: the slot, what it can do, and the module generation it belongs to. */
interface Up {
  kind: 'up'
  generation: number
  slot: Handle
  mechanisms: ReadonlySet<number>
  /** RSA key sizes the token can generate, in bits. */
  rsaBits: { min: number; max: number } | null
}

interface Down extends TokenProblem {
  kind: 'down'
  at: number
}

type State = Up | Down | { kind: 'new' }

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

/**
 * One PKCS#11 token: finds its slot, logs in, and keeps a small pool of
 * logged-in read-write sessions. When the token fails (module missing, token
 * gone, PIN refused) it is marked down with a reason, every caller gets 503
 * hsm_unavailable at once, and a new connection is tried at most every
 * `retryMs`, from the next call or from `probe()`.
 *
 * A PIN the token refused is never sent again (HSMs lock the user PIN after a few
 * failures): the token stays down until the PIN source gives another value.
 */
export class Pkcs11Token {
  readonly #options: TokenOptions
  readonly #library: Pkcs11Library
  readonly #poolSize: number
  readonly #retryMs: number
  #state: State = { kind: 'new' }
  #connecting: Promise<Up> | null = null
  #lastCheck = 0
  #idle: Handle[] = []
  #open = 0
  #waiters: { resolve: (session: Handle) => void; reject: (error: Error) => void }[] = []
  #rejectedPin: string | null = null
  #closed = false
  #epoch = 0

  constructor(options: TokenOptions) {
    this.#options = options
    this.#library = Pkcs11Library.acquire(options.module)
    this.#poolSize = Math.max(1, options.sessions ?? 4)
    this.#retryMs = options.retryMs ?? 1000
  }

  /** Why the token cannot be used now, or null when it can (or was not tried yet). */
  get problem(): TokenProblem | null {
    return this.#state.kind === 'down' ? { summary: this.#state.summary, detail: this.#state.detail } : null
  }

  /** Counts successful connections: object handles found under one epoch die with it. */
  get epoch(): number {
    return this.#epoch
  }

  /** Mechanisms and RSA key sizes of the token; connects if needed. */
  async capabilities(): Promise<Pick<Up, 'mechanisms' | 'rsaBits'>> {
    const up = await this.#connected()
    return { mechanisms: up.mechanisms, rsaBits: up.rsaBits }
  }

  /**
   * Connects when down (at most every retryMs), or checks that a connected token
   * still answers (at most every retryMs). Never throws; see `problem`.
   */
  async probe(): Promise<void> {
    if (this.#closed) return
    try {
      const up = await this.#connected()
      if (Date.now() - this.#lastCheck < this.#retryMs) return
      this.#lastCheck = Date.now()
      if (!(await this.#healthy(up))) await this.#fault(up, { summary: 'the token does not answer', detail: 'C_GetTokenInfo failed on a health check' })
    } catch {
      // The outcome is in the state.
    }
  }

  /**
   * Runs `work` with a logged-in session no one else uses meanwhile. A PKCS#11
   * error leads to a health check: a token that does not answer is marked down.
   * Either way the caller gets HsmUnavailable, never a raw PKCS#11 error.
   */
  async withSession<T>(work: (api: Api, session: Handle) => Promise<T> | T): Promise<T> {
    const up = await this.#connected()
    const session = await this.#acquire(up)
    let keep = true
    try {
      return await this.#library.run((api, generation) => {
        if (generation !== up.generation) throw new HsmUnavailable('the PKCS#11 token is reconnecting')
        return work(api, session)
      })
    } catch (error) {
      if (error instanceof SignetError) throw error
      const detail = describePkcs11Error(error)
      if (await this.#healthy(up)) {
        this.#options.onRefusal?.(detail)
        throw new HsmUnavailable('the HSM refused the operation')
      }
      keep = false
      await this.#fault(up, { summary: 'the token does not answer', detail })
      throw this.#unavailable()
    } finally {
      this.#release(up, session, keep)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const waiter of this.#waiters.splice(0)) waiter.reject(new HsmUnavailable('the service is shutting down'))
    await this.#connecting?.catch(() => {})
    const state = this.#state
    const idle = this.#idle.splice(0)
    if (state.kind === 'up' && idle.length > 0) {
      await this.#library.run((api, generation) => {
        if (generation !== state.generation) return
        for (const session of idle) {
          try {
            api.C_CloseSession(session)
          } catch {
            // Closing is best effort.
          }
        }
      }).catch(() => {})
    }
    await this.#library.release()
  }

  #unavailable(): SignetError {
    return new HsmUnavailable(this.#state.kind === 'down' ? `the PKCS#11 token is unavailable: ${this.#state.summary}` : 'the PKCS#11 token is unavailable')
  }

  async #connected(): Promise<Up> {
    if (this.#closed) throw new HsmUnavailable('the service is shutting down')
    const state = this.#state
    // An `up` state from an older module generation means another user reset the module.
    if (state.kind === 'up' && state.generation === this.#library.generation) return state
    if (state.kind === 'down' && Date.now() - state.at < this.#retryMs) throw this.#unavailable()
    this.#connecting ??= this.#connect().finally(() => {
      this.#connecting = null
    })
    return this.#connecting
  }

  async #connect(): Promise<Up> {
    const seen = this.#library.generation
    this.#idle = []
    this.#open = 0
    try {
      const { up, session } = await this.#library.run((api, generation) => this.#login(api, generation))
      const wasDown = this.#state.kind === 'down'
      this.#state = up
      this.#epoch++
      this.#lastCheck = Date.now()
      this.#open = 1
      this.#idle.push(session)
      if (wasDown) this.#options.onChange?.(null)
      return up
    } catch (error) {
      const fault = error instanceof Pkcs11Fault ? error : new Pkcs11Fault('the token cannot be opened', describePkcs11Error(error))
      this.#markDown(fault)
      // Many modules see a token that came back only after C_Finalize and C_Initialize.
      if (!(error instanceof SettingsProblem)) await this.#library.reset(seen)
      throw this.#unavailable()
    }
  }

  /** Finds the slot, opens the first session and logs in. Runs inside library.run. */
  #login(api: Api, generation: number): { up: Up; session: Handle } {
    const pkcs11 = pkcs11Binding()
    const slot = this.#findSlot(api)
    const flags = api.C_GetTokenInfo(slot).flags
    const loginRequired = (flags & pkcs11.CKF_LOGIN_REQUIRED) !== 0
    const pin = loginRequired ? this.#options.pin() : null
    if (loginRequired) {
      if (pin === null) throw new SettingsProblem('no PIN is configured', 'set SIGNET_PKCS11_PIN or SIGNET_PKCS11_PIN_FILE')
      if ((flags & pkcs11.CKF_USER_PIN_LOCKED) !== 0) throw new SettingsProblem('the user PIN is locked', 'the token reports CKF_USER_PIN_LOCKED')
      if (this.#rejectedPin === sha256(pin)) {
        throw new SettingsProblem('the token refused the PIN', 'the token refused this PIN before and it is not sent again; fix SIGNET_PKCS11_PIN_FILE, or restart with the right SIGNET_PKCS11_PIN')
      }
    }
    const session = api.C_OpenSession(slot, pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION)
    try {
      if (pin !== null) this.#userLogin(api, session, pin)
      const mechanisms = new Set(api.C_GetMechanismList(slot))
      let rsaBits: Up['rsaBits'] = null
      if (mechanisms.has(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN)) {
        const info = api.C_GetMechanismInfo(slot, pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN)
        rsaBits = { min: info.minKeySize, max: info.maxKeySize }
      }
      return { up: { kind: 'up', generation, slot, mechanisms, rsaBits }, session }
    } catch (error) {
      try {
        api.C_CloseSession(session)
      } catch {
        // The session goes with the failed attempt.
      }
      throw error
    }
  }

  #userLogin(api: Api, session: Handle, pin: string): void {
    const pkcs11 = pkcs11Binding()
    try {
      api.C_Login(session, pkcs11.CKU_USER, pin)
    } catch (error) {
      const code = pkcs11Code(error)
      if (code === pkcs11.CKR_PIN_INCORRECT || code === pkcs11.CKR_PIN_LEN_RANGE) {
        this.#rejectedPin = sha256(pin)
        throw new SettingsProblem('the token refused the PIN', `C_Login: ${describePkcs11Error(error)}; this PIN is not sent again`)
      }
      if (code === pkcs11.CKR_PIN_LOCKED) throw new SettingsProblem('the user PIN is locked', `C_Login: ${describePkcs11Error(error)}`)
      // Login is per application: a session of another user of the module may have done it.
      if (code !== pkcs11.CKR_USER_ALREADY_LOGGED_IN) throw error
    }
    this.#rejectedPin = null
  }

  #findSlot(api: Api): Handle {
    return findTokenSlot(api, this.#options.tokenLabel, this.#options.slot)
  }

  /** True while the slot still holds the token. Must not run inside library.run. */
  async #healthy(up: Up): Promise<boolean> {
    try {
      return await this.#library.run((api, generation) => {
        if (generation !== up.generation) return false
        const label = api.C_GetTokenInfo(up.slot).label.trim()
        return this.#options.tokenLabel === null || label === this.#options.tokenLabel
      })
    } catch {
      return false
    }
  }

  /** Marks the token down after a fault on connection `up`, and resets the module once. */
  async #fault(up: Up, problem: TokenProblem): Promise<void> {
    if (this.#state !== up) return // already handled
    this.#markDown(problem)
    this.#idle = []
    this.#open = 0
    for (const waiter of this.#waiters.splice(0)) waiter.reject(this.#unavailable())
    await this.#library.reset(up.generation)
  }

  #markDown(problem: TokenProblem): void {
    const before = this.#state
    this.#state = { kind: 'down', summary: problem.summary, detail: problem.detail, at: Date.now() }
    if (before.kind !== 'down' || before.summary !== problem.summary || before.detail !== problem.detail) {
      this.#options.onChange?.({ summary: problem.summary, detail: problem.detail })
    }
  }

  async #acquire(up: Up): Promise<Handle> {
    const idle = this.#idle.pop()
    if (idle) return idle
    if (this.#open >= this.#poolSize) return new Promise<Handle>((resolve, reject) => this.#waiters.push({ resolve, reject }))
    this.#open++
    try {
      return await this.#library.run((api, generation) => {
        if (generation !== up.generation) throw new HsmUnavailable('the PKCS#11 token is reconnecting')
        const pkcs11 = pkcs11Binding()
        // Sessions share the login of the first one: PKCS#11 logs in per application.
        return api.C_OpenSession(up.slot, pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION)
      })
    } catch (error) {
      this.#open--
      if (error instanceof SignetError) throw error
      await this.#fault(up, { summary: 'the token does not answer', detail: `C_OpenSession: ${describePkcs11Error(error)}` })
      throw this.#unavailable()
    }
  }

  #release(up: Up, session: Handle, keep: boolean): void {
    if (this.#state !== up || this.#closed) return // its connection is gone
    if (!keep) {
      this.#open--
      return
    }
    const waiter = this.#waiters.shift()
    if (waiter) waiter.resolve(session)
    else this.#idle.push(session)
  }
}

/** A problem of the settings (PIN, token choice): resetting the module would not help. */
export class SettingsProblem extends Pkcs11Fault {}

/** The slot of the one initialised token that `tokenLabel` and `slot` (either may be null) name. */
export function findTokenSlot(api: Api, tokenLabel: string | null, slot: number | null): Handle {
  const initialised = pkcs11Binding().CKF_TOKEN_INITIALIZED
  const candidates = api.C_GetSlotList(true).filter((handle) => {
    if (slot !== null && slotId(handle) !== BigInt(slot)) return false
    const info = api.C_GetTokenInfo(handle)
    return (info.flags & initialised) !== 0 && (tokenLabel === null || info.label.trim() === tokenLabel)
  })
  const wanted = [tokenLabel !== null ? `labelled "${tokenLabel}"` : null, slot !== null ? `in slot ${slot}` : null].filter(Boolean).join(' ')
  if (candidates.length === 0) throw new Pkcs11Fault('the token is not present', `no initialised token ${wanted || 'at all'} is present`)
  if (candidates.length > 1) {
    throw new SettingsProblem('the token is ambiguous', `${candidates.length} initialised tokens match; set SIGNET_PKCS11_TOKEN_LABEL or SIGNET_PKCS11_SLOT`)
  }
  return candidates[0]!
}

/** The CK_SLOT_ID inside a pkcs11js slot handle (a native CK_ULONG). */
function slotId(handle: Handle): bigint {
  return handle.length >= 8 ? handle.readBigUInt64LE(0) : BigInt(handle.readUInt32LE(0))
}
