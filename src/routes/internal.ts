import type { FastifyInstance } from 'fastify'
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible'
import { requireScope, type Principal } from '../auth/authenticate.js'
import { batchItemError, KeysetNotFound, RateLimited, SignetError } from '../errors.js'
import type { LiveKeyset } from '../keys/keystore.js'
import type { Client } from '../keys/model.js'
import { errors, signBatchAnswer, signBatchBody, signBody, signedToken, verifyAnswer, verifyBody } from '../schemas/index.js'
import { checkKeysetAccess, prepareToken, signPrepared, type PreparedToken } from '../signing/issue.js'
import { verifyToken } from '../signing/verify.js'
import { authenticatedRoutes, type AuthenticatedRoutesOptions } from './authenticated.js'

/** Sign and verify: for app servers with a client token. */
export async function internalRoutes(instance: FastifyInstance, { signet, auth }: AuthenticatedRoutesOptions): Promise<void> {
  const app = authenticatedRoutes(instance, auth)
  const limit = signet.config.signRateLimit
  const signLimiter = limit > 0 ? new RateLimiterMemory({ points: limit, duration: 1 }) : null

  /** The client behind a request with `scope`, and the keyset it asks for. */
  const clientFor = (request: { principal: Principal | null }, scope: 'sign' | 'verify', keysetName: string | undefined): { client: Client; live: LiveKeyset } => {
    const principal = request.principal!
    requireScope(principal, scope)
    const client = (principal as Extract<Principal, { kind: 'client' }>).client
    const name = keysetName ?? signet.config.defaultKeyset
    checkKeysetAccess(client, name)
    const live = signet.keystore.keyset(name)
    if (!live) throw new KeysetNotFound(`no keyset ${name}`)
    return { client, live }
  }

  /** The limit counts tokens: a batch of n uses n points. */
  const checkRate = async (client: Client, tokens: number): Promise<void> => {
    if (!signLimiter) return
    try {
      await signLimiter.consume(client.id, tokens)
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) throw error
      throw new RateLimited('sign rate limit reached for this client', { retryAfter: Math.max(1, Math.ceil(error.msBeforeNext / 1000)) })
    }
  }

  app.post('/v1/sign', {
    schema: { body: signBody, response: { 200: signedToken, ...errors(400, 401, 403, 404, 413, 415, 429, 503) } },
  }, async (request) => {
    const { client, live } = clientFor(request, 'sign', request.body.keyset)
    await checkRate(client, 1)
    const prepared = prepareToken(live, client, request.body, signet.clock.now())
    return signPrepared(live, prepared)
  })

  app.post('/v1/sign/batch', {
    schema: { body: signBatchBody, response: { 200: signBatchAnswer, ...errors(400, 401, 403, 404, 413, 415, 429, 503) } },
  }, async (request) => {
    const { client, live } = clientFor(request, 'sign', request.body.keyset)
    await checkRate(client, request.body.items.length)
    const now = signet.clock.now()
    // Every item is checked before any is signed: one bad item refuses the batch.
    const prepared: PreparedToken[] = request.body.items.map((item, index) => {
      try {
        return prepareToken(live, client, item, now)
      } catch (error) {
        throw error instanceof SignetError ? batchItemError(error, index) : error
      }
    })
    // All at once: the signatures run in parallel on the thread pool. Each item takes
    // the active signer before the first await, so the whole batch has one key.
    return { results: await Promise.all(prepared.map((item) => signPrepared(live, item))) }
  })

  app.post('/v1/verify', {
    schema: { body: verifyBody, response: { 200: verifyAnswer, ...errors(400, 401, 403, 404, 413, 415, 429) } },
  }, async (request) => {
    const { live } = clientFor(request, 'verify', request.body.keyset)
    return verifyToken(live, request.body.token, { audience: request.body.audience, issuer: request.body.issuer, now: signet.clock.now() })
  })
}
