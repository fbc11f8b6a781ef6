import type { Socket } from 'node:net'
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible'
import { Forbidden, RateLimited, Unauthorized } from '../errors.js'
import type { Client, Scope } from '../keys/model.js'
import { parseSubject, peerSubject, sameSubject } from '../tls/subject.js'
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
 * Failed attempts are counted per client address (rate-limiter-flexible). Past the
 * limit, that address's failing attempts get 429 with Retry-After instead of 401
 * for the rest of the minute. A request with a valid token is never held back:
 * several app servers may share an address (a NAT, a sidecar), and one of them
 * guessing must not stop the others. Tokens carry 256 random bits, so the limit
 * sheds the noise of a flood rather than slowing an unwinnable guess.
 */
export class Authenticator {
  readonly #adminHash: string | null
  readonly #clientByTokenHash: (hash: string) => Client | undefined
  readonly #failures: RateLimiterMemory | null

  constructor(options: AuthenticatorOptions) {
    this.#adminHash = options.adminToken ? hashToken(options.adminToken) : null
    this.#clientByTokenHash = options.clientByTokenHash
    this.#failures = options.failureLimit > 0 ? new RateLimiterMemory({ points: options.failureLimit, duration: 60 }) : null
  }

  /**
   * A bound client's token over a connection without its certificate: likely a
   * stolen token, so it counts as a failed attempt, and is refused with 403.
   */
  async #checkCertificate(bound: string, address: string, socket: Socket | undefined): Promise<void> {
    const presented = peerSubject(socket)
    if (presented && sameSubject(parseSubject(bound), presented)) return
    await this.#failures?.consume(address).catch(() => undefined)
    throw new Forbidden(presented
      ? 'the client certificate subject does not match the one this client is bound to'
      : 'this client is bound to a client certificate: connect with it over mutual TLS')
  }

  /** Counts a failed attempt: 401, or 429 once the address is over its limit. */
  async #fail(address: string, detail: string): Promise<never> {
    if (this.#failures) {
      try {
        await this.#failures.consume(address)
      } catch (error) {
        if (!(error instanceof RateLimiterRes)) throw error
        throw new RateLimited('too many failed authentication attempts from this address; wait and retry', { retryAfter: Math.max(1, Math.ceil(error.msBeforeNext / 1000)) })
      }
    }
    throw new Unauthorized(detail)
  }

  /**
   * The principal behind an Authorization header, or 401 (429 past the failure
   * limit). A client bound to a certificate subject gets 403 unless `socket` is a
   * mutual-TLS connection whose verified client certificate has that subject.
   */
  async authenticate(header: string | undefined, address: string, socket?: Socket): Promise<Principal> {
    if (!header) return this.#fail(address, 'a bearer token is required')
    const match = BEARER.exec(header)
    if (!match) return this.#fail(address, 'the Authorization header must be: Bearer <token>')
    const hash = hashToken(match[1]!)
    if (this.#adminHash && sameHash(hash, this.#adminHash)) return { kind: 'admin', actor: 'admin' }
    const client = this.#clientByTokenHash(hash)
    if (client && sameHash(hash, client.tokenHash) && client.revokedAt === null) {
      if (client.certificateSubject) await this.#checkCertificate(client.certificateSubject, address, socket)
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
