import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import { KeysetNotFound, NotFound, SignetError } from '../errors.js'
import type { LiveKeyset } from '../keys/keystore.js'
import { sendProblem } from '../http/problem.js'
import type { Signet } from '../runtime.js'
import { discoveryAnswer, errors, jwks, nameParams, statusAnswer } from '../schemas/index.js'

export interface PublicRoutesOptions {
  signet: Signet
  /** Base URL for discovery documents (SIGNET_PUBLIC_URL or the listener's address). */
  publicUrl: () => string
}

/** True when an If-None-Match header names this ETag (weak comparison, RFC 9110 section 13.1.2). */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false
  if (header.trim() === '*') return true
  return header.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === etag)
}

/**
 * JWK Sets and discovery documents are public, and any origin may read them: an
 * OpenID client in a browser fetches both. These answers replace the
 * `Cross-Origin-Resource-Policy: same-origin` every other answer carries, and allow
 * every origin without credentials. Nothing else is shared across origins.
 */
export const ACROSS_ORIGINS = { 'access-control-allow-origin': '*', 'cross-origin-resource-policy': 'cross-origin' }
const shareAcrossOrigins: onRequestHookHandler = (_request, reply, done) => {
  reply.headers(ACROSS_ORIGINS)
  done()
}

/**
 * Whether a URL names a keyset's JWK Set or discovery document (every route under
 * /keysets/): for answers made before a route is found, such as a keyset name too
 * long or a malformed URL, which must carry ACROSS_ORIGINS like the route's own 404.
 */
export const isKeysetDocumentUrl = (url: string): boolean => url.startsWith('/keysets/')

/**
 * Unauthenticated routes: JWK Sets, OpenID discovery and health. JWK Sets are
 * served as the bytes the keystore built, with a strong ETag and 304 on a match.
 */
export async function publicRoutes(instance: FastifyInstance, options: PublicRoutesOptions): Promise<void> {
  // Request types come from the schemas themselves.
  const app = instance.withTypeProvider<TypeBoxTypeProvider>()
  const { signet } = options
  const cacheControl = `public, max-age=${signet.config.jwksMaxAge}`

  const liveKeyset = (name: string): LiveKeyset => {
    const live = signet.keystore.keyset(name)
    if (!live) throw new KeysetNotFound(`no keyset ${name}`)
    return live
  }

  /** Sends the JWK Set (or 304); the handlers are synchronous, so nothing is returned. */
  const sendJwks = (request: FastifyRequest, reply: FastifyReply, live: LiveKeyset): void => {
    const { body, etag } = live.jwks
    reply.header('cache-control', cacheControl).header('etag', etag)
    if (etagMatches(request.headers['if-none-match'], etag)) reply.code(304).send()
    else reply.type('application/jwk-set+json').send(body)
  }

  const jwksSchema = { response: { 200: jwks, ...errors(404) } }
  app.get('/.well-known/jwks.json', { schema: jwksSchema, onRequest: shareAcrossOrigins }, (request, reply) =>
    sendJwks(request, reply, liveKeyset(signet.config.defaultKeyset)))
  app.get('/keysets/:name/jwks.json', { schema: { params: nameParams, ...jwksSchema }, onRequest: shareAcrossOrigins }, (request, reply) =>
    sendJwks(request, reply, liveKeyset(request.params.name)))

  const discovery = (live: LiveKeyset, jwksPath: string) => {
    if (live.keyset.issuer === null) throw new NotFound(`keyset ${live.keyset.name} has no issuer`)
    return {
      issuer: live.keyset.issuer,
      jwks_uri: `${options.publicUrl()}${jwksPath}`,
      id_token_signing_alg_values_supported: [...live.algorithms],
    }
  }
  const discoverySchema = { response: { 200: discoveryAnswer, ...errors(404) } }
  app.get('/.well-known/openid-configuration', { schema: discoverySchema, onRequest: shareAcrossOrigins }, async () =>
    discovery(liveKeyset(signet.config.defaultKeyset), '/.well-known/jwks.json'))
  app.get('/keysets/:name/.well-known/openid-configuration', { schema: { params: nameParams, ...discoverySchema }, onRequest: shareAcrossOrigins }, async (request) =>
    discovery(liveKeyset(request.params.name), `/keysets/${request.params.name}/jwks.json`))

  app.get('/healthz', { schema: { response: { 200: statusAnswer } } }, async () => ({ status: 'ok' }))

  app.get('/readyz', { schema: { response: { 200: statusAnswer, ...errors(503) } } }, async (_request, reply) => {
    const readiness = signet.keystore.readiness()
    if (readiness.ready) return { status: 'ready' }
    const problem = new SignetError(readiness.code ?? 'not_ready', 503, 'Not ready', readiness.reason ?? 'not ready')
    return sendProblem(reply, problem)
  })
}
