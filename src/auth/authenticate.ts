import type { Socket } from 'node:net'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible'
import { Forbidden, RateLimited, Unauthorized } from '../errors.js'
import type { Client, Scope } from '../keys/model.js'
import { parseSubject, peerSubject, sameSubject } from '../tls/subject.js'
import type { WorkloadAuthenticator, WorkloadOutcome } from '../identity/workload-auth.js'
import { hashToken, sameHash } from './tokens.js'

/** Who made a request: the bootstrap admin token, or a client by its token or by a workload token. */
export type Principal =
  | { kind: 'admin'; actor: 'admin' }
  | { kind: 'client'; actor: string; client: Client; workload?: { issuer: string; subject: string } }

/** A bearer token: Signet's own (256 bits, base64url) or a workload JWT, which can run to a few KiB. */
const BEARER = /^Bearer +([\x21-\x7e]{1,8192})$/i
/** A compact JWS: three base64url parts (RFC 7515 section 7.1). Signet's tokens have no dot. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/
/** The one detail of every refused bearer token: it says nothing of the token. */
const NOT_VALID = 'the bearer token is not valid'

export interface AuthenticatorOptions {
  /** SIGNET_ADMIN_TOKEN, if set. */
  adminToken: string | null
  clientByTokenHash: (hash: string) => Client | undefined
  /** Failed attempts per address per minute before 429; 0 turns the limit off. */
  failureLimit: number
  /** Workload tokens (docs/workload-identity.md); without it a JWT is just a wrong token. */
  workload?: WorkloadAuthenticator | null
}

/**
 * Resolves bearer tokens. Tokens are compared by their SHA-256: the client map is
 * keyed by hash, and the admin token's hash is compared in constant time, so
 * response time says nothing about how much of a guess was right. A bearer value
 * shaped like a JWT is a workload token, checked by the WorkloadAuthenticator.
 *
 * Failed attempts (a bearer token that is not valid, or a certificate-bound
 * client's token without its certificate) are counted per client
 * address (rate-limiter-flexible). Past the limit, that address's failing attempts
 * get 429 with Retry-After instead of 401
 * for the rest of the minute. A request with a valid token is never held back:
 * several app servers may share an address (a NAT, a sidecar), and one of them
 * guessing must not stop the others. Tokens carry 256 random bits, so the limit
 * sheds the noise of a flood rather than slowing an unwinnable guess.
 */
export class Authenticator {
  readonly #adminHash: string | null
  readonly #clientByTokenHash: (hash: string) => Client | undefined
  readonly #failures: RateLimiterMemory | null
  readonly #workload: WorkloadAuthenticator | null

  constructor(options: AuthenticatorOptions) {
    this.#adminHash = options.adminToken ? hashToken(options.adminToken) : null
    this.#clientByTokenHash = options.clientByTokenHash
    this.#failures = options.failureLimit > 0 ? new RateLimiterMemory({ points: options.failureLimit, duration: 60 }) : null
    this.#workload = options.workload ?? null
  }

  /**
   * What a header names: a principal, or why not; a promise of that for a workload
   * token that must be verified. Counting a refusal toward the failure limit is
   * #refuse's job. Each token is hashed and looked up once.
   */
  #resolve(header: string | undefined, socket: Socket | undefined): Resolution | Promise<Resolution> {
    if (!header) return { refused: 'a bearer token is required' }
    const match = BEARER.exec(header)
    if (!match) return { refused: 'the Authorization header must be: Bearer <token>' }
    const token = match[1]!
    const hash = hashToken(token)
    if (this.#adminHash && sameHash(hash, this.#adminHash)) return { principal: { kind: 'admin', actor: 'admin' } }
    if (this.#workload && JWT_SHAPE.test(token)) {
      const outcome = this.#workload.authenticate(token, hash)
      return outcome instanceof Promise ? outcome.then((settled) => workloadResolution(settled, socket)) : workloadResolution(outcome, socket)
    }
    const client = this.#clientByTokenHash(hash)
    if (!client || !sameHash(hash, client.tokenHash) || client.revokedAt !== null) return { refused: NOT_VALID }
    return clientResolution({ kind: 'client', actor: `client:${client.id}`, client }, socket)
  }

  /**
   * The principal behind an Authorization header, synchronously when the token is
   * valid and known (the common case, on every request: a Signet token, or a
   * workload token verified before); a promise for a workload token seen for the
   * first time; otherwise a promise that rejects with the refusal once the attempt
   * is counted: 401 (429 past the failure limit), or 403 for a client bound to a
   * certificate subject unless `socket` is a mutual-TLS connection whose verified
   * client certificate has that subject.
   */
  check(header: string | undefined, address: string, socket?: Socket): Principal | Promise<Principal> {
    const resolution = this.#resolve(header, socket)
    if (resolution instanceof Promise) {
      return resolution.then((settled) => ('principal' in settled ? settled.principal : this.#refuse(settled, header, address)))
    }
    return 'principal' in resolution ? resolution.principal : this.#refuse(resolution, header, address)
  }

  /** Like check(), always as a promise. */
  async authenticate(header: string | undefined, address: string, socket?: Socket): Promise<Principal> {
    return this.check(header, address, socket)
  }

  async #refuse(resolution: Exclude<Resolution, { principal: Principal }>, header: string | undefined, address: string): Promise<never> {
    // Only a presented bearer token is a guess worth counting; a request without
    // credentials (or with another scheme) is simply refused.
    if (this.#failures && header !== undefined && BEARER.test(header)) {
      try {
        await this.#failures.consume(address)
      } catch (error) {
        if (!(error instanceof RateLimiterRes)) throw error
        if ('refused' in resolution) {
          throw new RateLimited('too many failed authentication attempts from this address; wait and retry', { retryAfter: Math.max(1, Math.ceil(error.msBeforeNext / 1000)) })
        }
      }
    }
    throw 'forbidden' in resolution ? new Forbidden(resolution.forbidden) : new Unauthorized(resolution.refused)
  }
}

type Resolution = { principal: Principal } | { refused: string } | { forbidden: string }

/** A client found by its token, unless it is bound to a certificate that this connection lacks. */
function clientResolution(principal: Extract<Principal, { kind: 'client' }>, socket: Socket | undefined): Resolution {
  const { client } = principal
  if (client.certificateSubject) {
    // A bound client's token over a connection without its certificate: likely a stolen token.
    const presented = peerSubject(socket)
    if (!presented || !sameSubject(parseSubject(client.certificateSubject), presented)) {
      return {
        forbidden: presented
          ? 'the client certificate subject does not match the one this client is bound to'
          : 'this client is bound to a client certificate: connect with it over mutual TLS',
      }
    }
  }
  return { principal }
}

/**
 * A workload token's outcome as a resolution. Every refusal has the same detail:
 * why it was refused goes to the metrics, never to the caller.
 */
function workloadResolution(outcome: WorkloadOutcome, socket: Socket | undefined): Resolution {
  if ('refused' in outcome) return { refused: NOT_VALID }
  const { client, issuer, subject } = outcome
  return clientResolution({ kind: 'client', actor: `client:${client.id} (workload ${issuer} ${subject})`, client, workload: { issuer, subject } }, socket)
}

/**
 * An onRequest hook that sets `request.principal` (and then runs `check`, e.g. a
 * scope check). The common case, a valid token, is answered synchronously; a
 * workload token seen for the first time, and a refusal (which counts failed
 * attempts), take the asynchronous path.
 */
export function authenticationHook(auth: Authenticator, check?: (principal: Principal) => void) {
  return (request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void): void => {
    const accept = (principal: Principal): void => {
      try {
        request.principal = principal
        check?.(principal)
      } catch (error) {
        return done(error as Error)
      }
      done()
    }
    const result = auth.check(request.headers.authorization, request.ip, request.raw.socket)
    if (result instanceof Promise) result.then(accept, done)
    else accept(result)
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

