import { randomUUID } from 'node:crypto'
import type { ServerOptions } from 'node:http'
import type { ServerOptions as HttpsServerOptions } from 'node:https'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Authenticator } from './auth/authenticate.js'
import { urlHost, type Config } from './config.js'
import { consoleRoutes } from './console/serve.js'
import { InvalidRequest, NotFound } from './errors.js'
import { WorkloadAuthenticator } from './identity/workload-auth.js'
import { clientErrorHandler } from './http/client-error.js'
import { serializersOnFirstUse, validatorOnFirstUse } from './http/compile-on-first-use.js'
import { installJsonParser } from './http/json.js'
import { RequestLog } from './http/request-log.js'
import { installNotFound } from './http/methods.js'
import { installParamGuard } from './http/params.js'
import { BODY_LIMIT, handleError, PROBLEM_JSON, sendProblem } from './http/problem.js'
import { installRequestMetrics } from './metrics/hooks.js'
import { SignetMetrics } from './metrics/registry.js'
import { metricsRoute } from './metrics/route.js'
import { traceChildLogger } from './metrics/log-correlation.js'
import { openapiPlugin } from './openapi/index.js'
import { adminRoutes } from './routes/admin.js'
import { internalRoutes } from './routes/internal.js'
import { loadSheddingPlugin } from './plugins/load-shedding.js'
import { closingPlugin } from './plugins/closing.js'
import { declaredBodyLimitPlugin } from './plugins/declared-body-limit.js'
import { SECURITY_HEADERS, securityHeadersPlugin } from './plugins/security-headers.js'
import { ACROSS_ORIGINS, isKeysetDocumentUrl, publicRoutes } from './routes/public.js'
import type { Signet } from './runtime.js'
import { problem } from './schemas/index.js'
import { bodyValidator, textValidator } from './schemas/validate.js'

/** A caller's X-Request-Id is kept only when it looks like an id (no spaces, no control characters). */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** Fastify options, plus the options of Node's HTTP server that fastify passes on. */
export type ServerSetup = FastifyServerOptions & { http?: ServerOptions }

/**
 * Node's guards against slow clients (slow-loris): the headers, and the whole
 * request, must arrive within these times, else 408 and the connection closes.
 * Node looks for late requests every connectionsCheckingInterval (30 s by
 * default, which would let a slow client outstay its timeout by that much).
 */
export function clientTimeouts(headersTimeoutMs: number, requestTimeoutMs: number): ServerSetup {
  const connectionsCheckingInterval = Math.max(100, Math.min(1000, Math.floor(headersTimeoutMs / 2)))
  return {
    requestTimeout: requestTimeoutMs,
    http: { headersTimeout: headersTimeoutMs, requestTimeout: requestTimeoutMs, connectionsCheckingInterval },
  }
}

/**
 * Fastify options shared by Signet and by the benchmark's ceiling server, so both
 * pay the same for logging, body limits and validation.
 */
export function fastifyOptions(logger: FastifyServerOptions['loggerInstance']): ServerSetup {
  return {
    ...clientTimeouts(10_000, 30_000),
    loggerInstance: logger,
    bodyLimit: BODY_LIMIT,
    // Answer serializers are built at a route's first answer (http/compile-on-first-use.ts).
    schemaController: { compilersFactory: serializersOnFirstUse },
    // Take the caller's X-Request-Id when it is sane, so logs can be joined across services.
    genReqId: (request) => {
      const given = request.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    },
    requestIdHeader: false,
    // Requests arriving while a listener closes get problem+json (plugins/closing.ts).
    return503OnClosing: false,
    // One line per request, written when it is answered, instead of two.
    logController: new RequestLog(),
    // A malformed or overlong path segment cannot name a keyset, key or client.
    frameworkErrors: (error, request, reply) => {
      // Hooks do not run for these answers, so the security headers are set here.
      reply.headers(SECURITY_HEADERS)
      if (isKeysetDocumentUrl(request.url)) reply.headers(ACROSS_ORIGINS)
      sendProblem(reply, error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? new NotFound('no such resource') : new InvalidRequest('the URL is not valid'))
    },
    // What Node's parser refuses (an overlong URL, a timeout) gets a problem+json answer too.
    clientErrorHandler,
    // A caller's W3C traceparent is bound into every log line of its request.
    childLoggerFactory: traceChildLogger,
  }
}

/**
 * Request validation with the shared validators (schemas/validate.ts): bodies
 * without type coercion, query strings and path parameters (text) with it, each
 * compiled at its route's first call (http/compile-on-first-use.ts).
 */
export function installValidators(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, httpPart }) => validatorOnFirstUse(httpPart === 'body' ? bodyValidator : textValidator, schema))
}

/**
 * A fastify instance with everything Signet's routes rely on: options, strict body
 * validation, the JSON parser, problem+json errors, request ids and request logs.
 * The benchmark's ceiling server is built on this too.
 */
export function createBaseApp(logger: FastifyServerOptions['loggerInstance'], server: ServerSetup = {}): FastifyInstance {
  const app = Fastify({ ...fastifyOptions(logger), ...server })
  // Security headers and Cache-Control: no-store on every answer (docs/security.md).
  void app.register(securityHeadersPlugin)
  void app.register(closingPlugin)
  void app.register(declaredBodyLimitPlugin)
  installValidators(app)
  app.addSchema(problem)
  // JSON only: a text/plain body is refused with 415 instead of being parsed as a string.
  app.removeContentTypeParser('text/plain')
  installJsonParser(app)
  app.setErrorHandler(handleError)
  // 404, or 405 with Allow for a known path under another method, and for TRACE.
  installNotFound(app)
  installParamGuard(app)
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id)
    // Fastify appends "; charset=utf-8" to JSON media types; problem documents carry
    // the bare RFC 9457 type (JSON is UTF-8 by definition, RFC 8259).
    if ((reply.getHeader('content-type') as string | undefined)?.startsWith(`${PROBLEM_JSON};`)) reply.header('content-type', PROBLEM_JSON)
    done(null, payload)
  })
  return app
}

export interface BuildAppOptions {
  /** The base URL of discovery documents when SIGNET_PUBLIC_URL is not set. */
  publicUrl?: () => string
  /** Shared by both listeners (and the storage wrapper) of one server; a new registry by default. */
  metrics?: SignetMetrics
  /** Serve HTTPS with these options (src/tls/options.ts). */
  https?: HttpsServerOptions
}

/**
 * The options and hooks both listeners share: timeouts, TLS, load shedding, request
 * metrics (a new registry unless one is given), the request's principal, and the
 * discovery base URL (its own address unless one is given).
 */
async function createSignetApp(signet: Signet, options: BuildAppOptions): Promise<{ app: FastifyInstance; metrics: SignetMetrics; publicUrl: () => string }> {
  const { config } = signet
  const metrics = options.metrics ?? new SignetMetrics().track(signet)
  const timeouts = clientTimeouts(config.headersTimeoutMs, config.requestTimeoutMs)
  // An HTTPS server takes the slow-client timeouts from its own options, not from `http`.
  const server = { ...timeouts, ...(options.https ? { https: { ...timeouts.http, ...options.https } } : {}) }
  const app = createBaseApp(signet.logger, server as ServerSetup)
  // Before any route: an overloaded service refuses with 503 before doing any work.
  await app.register(loadSheddingPlugin, { maxInFlight: config.maxInFlight, maxEventLoopDelayMs: config.maxEventLoopDelayMs })
  installRequestMetrics(app, metrics, { keystore: signet.keystore, defaultKeyset: config.defaultKeyset })
  app.decorateRequest('principal', null)
  const publicUrl = options.publicUrl ?? discoveryBaseUrl(config, Boolean(options.https), () => app, config.port)
  return { app, metrics, publicUrl }
}

/**
 * Discovery's base URL: SIGNET_PUBLIC_URL, else the address `listener` listens on
 * (or `fallbackPort` before it listens).
 */
export function discoveryBaseUrl(config: Config, https: boolean, listener: () => FastifyInstance | null, fallbackPort: number): () => string {
  return () => {
    if (config.publicUrl) return config.publicUrl
    const address = listener()?.server.address() as AddressInfo | null | undefined
    return `${https ? 'https' : 'http'}://${urlHost(config.host)}:${address?.port ?? fallbackPort}`
  }
}

/**
 * The public listener's app (SIGNET_PUBLIC_PORT): JWK Sets, discovery, /healthz
 * and /readyz only. Every other path answers 404 here: sign, verify, admin,
 * metrics and the API docs exist on the internal listener alone.
 */
export async function buildPublicApp(signet: Signet, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const { app, publicUrl } = await createSignetApp(signet, options)
  await app.register(publicRoutes, { signet, publicUrl })
  return app
}

/** Builds the HTTP app over a Signet instance. Tests call this and use inject(). */
export async function buildApp(signet: Signet, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const { app, metrics, publicUrl } = await createSignetApp(signet, options)
  // Before the routes, so the OpenAPI document lists them all.
  await app.register(openapiPlugin)
  await app.register(metricsRoute, { metrics })

  const workload = new WorkloadAuthenticator({
    directory: () => signet.keystore.identity(),
    clock: signet.clock,
    onResult: (issuer, result) => metrics.workloadAuth.inc({ issuer, result }),
    onFetchError: (issuer, error) => signet.logger.warn({ issuer, err: { message: error.message } }, 'cannot fetch the JWK Set of a workload-token issuer; its last good keys stay in use'),
  })
  app.addHook('onClose', () => workload.close())
  const auth = new Authenticator({
    adminToken: signet.config.adminToken,
    clientByTokenHash: (hash) => signet.keystore.clientByTokenHash(hash),
    failureLimit: signet.config.authFailureLimit,
    workload,
  })

  await app.register(publicRoutes, { signet, publicUrl })
  await app.register(internalRoutes, { signet, auth })
  await app.register(adminRoutes, { signet, auth })
  await app.register(consoleRoutes, {})
  return app
}
