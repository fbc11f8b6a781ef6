import { RateLimiterMemory } from 'rate-limiter-flexible'
import { Forbidden, RateLimited, Unauthorized } from '../errors.js'
import type { Client, Scope } from '../keys/model.js'
import { hashToken, sameHash } from './tokens.js'

/** Who made a request: the bootstrap admin token, or a client by its token. */
export type Principal =
  | { kind: 'admin'; actor: 'admin' }
  | { kind: 'client'; actor: string; client: Client }

const BEARER = /^Bearer +([\x21-\x7e]{1,512})$/i

export interface AuthenticatorOptions {
  /** SIGNET_ADMIN_TOKEN, if set. */
  adminToken: string | null
  clientByTokenHash: (hash: string) => Client | undefined
  /** Failed attempts per address per minute before 429; 0 turns the limit off. */
  failureLimit: number
}

/**
 * Resolves bearer tokens. Tokens are compared by their SHA-256: the client map is
 * keyed by hash, and the admin token's hash is compared in constant time, so
 * response time says nothing about how much of a guess was right.
 *
 * Failed attempts are counted per client address (rate-limiter-flexible); past the
 * limit, that address gets 429 with Retry-After for the rest of the minute while
 * every other address is served as usual.
 */
export class Authenticator {
  readonly #adminHash: string | null
  readonly #clientByTokenHash: (hash: string) => Client | undefined
  readonly #failures: RateLimiterMemory | null
  readonly #failureLimit: number

  constructor(options: AuthenticatorOptions) {
    this.#adminHash = options.adminToken ? hashToken(options.adminToken) : null
    this.#clientByTokenHash = options.clientByTokenHash
    this.#failureLimit = options.failureLimit
    this.#failures = options.failureLimit > 0 ? new RateLimiterMemory({ points: options.failureLimit, duration: 60 }) : null
  }

  /** Throws 429 while `address` is over its failure limit. */
  async checkNotBlocked(address: string): Promise<void> {
    if (!this.#failures) return
    const state = await this.#failures.get(address)
    if (state && state.consumedPoints >= this.#failureLimit) {
      throw new RateLimited('too many failed authentication attempts; wait and retry', { retryAfter: Math.max(1, Math.ceil(state.msBeforeNext / 1000)) })
    }
  }

  async #fail(address: string, detail: string): Promise<never> {
    await this.#failures?.consume(address).catch(() => undefined)
    throw new Unauthorized(detail)
  }

  /** The principal behind an Authorization header, or 401. */
  async authenticate(header: string | undefined, address: string): Promise<Principal> {
    await this.checkNotBlocked(address)
    if (!header) return this.#fail(address, 'a bearer token is required')
    const match = BEARER.exec(header)
    if (!match) return this.#fail(address, 'the Authorization header must be: Bearer <token>')
    const hash = hashToken(match[1]!)
    if (this.#adminHash && sameHash(hash, this.#adminHash)) return { kind: 'admin', actor: 'admin' }
    const client = this.#clientByTokenHash(hash)
    if (client && sameHash(hash, client.tokenHash) && client.revokedAt === null) {
      return { kind: 'client', actor: `client:${client.id}`, client }
    }
    return this.#fail(address, 'the bearer token is not valid')
  }
}

/** Throws 403 unless the principal holds `scope`. Admin routes also take the admin token. */
export function requireScope(principal: Principal, scope: Scope): void {
  if (principal.kind === 'admin') {
    if (scope === 'admin') return
    throw new Forbidden(`the admin token cannot ${scope}; create a client with scope ${scope}`)
  }
  if (!principal.client.scopes.includes(scope)) throw new Forbidden(`this client lacks scope ${scope}`)
}
