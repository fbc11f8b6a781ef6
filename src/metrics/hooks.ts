import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import type { Keystore } from '../keys/keystore.js'
import type { SignetMetrics } from './registry.js'

export interface RequestMetricsOptions {
  keystore: Keystore
  /** The keyset of /.well-known/jwks.json and of sign requests that name none. */
  defaultKeyset: string
}

const SIGN_ROUTES: Record<string, string> = { '/v1/sign': 'sign', '/v1/sign/batch': 'batch' }
const VERIFY_ROUTE = '/v1/verify'
const JWKS_ROUTES = new Set(['/.well-known/jwks.json', '/keysets/:name/jwks.json'])

/** The problem code of a refused request, or the verification outcome of a 200 from /v1/verify. */
const outcomes = new WeakMap<FastifyRequest, string>()

/** Remembers the `code` of a problem answer (and the verify outcome) as it is serialised. */
function rememberOutcome(request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (error: null, payload: unknown) => void): void {
  if (payload !== null && typeof payload === 'object') {
    const body = payload as { code?: unknown; valid?: unknown }
    if (reply.statusCode < 400 && body.valid === true) outcomes.set(request, 'valid')
    else if (typeof body.code === 'string') outcomes.set(request, body.code)
  }
  done(null, payload)
}

/** A callback-style onResponse hook: these run on every answer, and an async hook costs a promise each. */
const onResponse = (count: (request: FastifyRequest, reply: FastifyReply) => void) =>
  (request: FastifyRequest, reply: FastifyReply, done: () => void): void => {
    count(request, reply)
    done()
  }

const outcomeOf = (request: FastifyRequest, reply: FastifyReply): string =>
  outcomes.get(request) ?? (reply.statusCode < 400 ? 'ok' : `http_${reply.statusCode}`)

const appendHook = (route: RouteOptions, name: 'onResponse' | 'preSerialization', hook: unknown): void => {
  const current = route[name] as unknown
  route[name] = (current === undefined ? [hook] : [current, hook].flat()) as never
}

/**
 * Counts requests into `metrics`. Hooks are attached only to the routes they
 * measure (through onRoute), so other routes pay nothing; call this before any
 * route is registered. Label values come from the keystore (keyset and algorithm
 * of a keyset that exists) and from the authenticated client, never from
 * unchecked input.
 */
export function installRequestMetrics(app: FastifyInstance, metrics: SignetMetrics, options: RequestMetricsOptions): void {
  const { keystore, defaultKeyset } = options

  /** The keyset and algorithm labels of a sign request: empty unless the keyset exists. */
  const signLabels = (request: FastifyRequest): { keyset: string; alg: string } => {
    const body = request.body as { keyset?: unknown } | undefined
    if (body === null || typeof body !== 'object') return { keyset: '', alg: '' }
    const name = body.keyset === undefined ? defaultKeyset : body.keyset
    const live = typeof name === 'string' ? keystore.keyset(name) : undefined
    if (!live) return { keyset: '', alg: '' }
    return { keyset: live.keyset.name, alg: live.signer?.alg ?? live.keyset.alg }
  }

  const clientLabel = (request: FastifyRequest): string => {
    const principal = request.principal
    if (!principal) return ''
    return principal.kind === 'client' ? principal.client.name : 'admin'
  }

  const countSign = (endpoint: string) => (request: FastifyRequest, reply: FastifyReply) => {
    const { keyset, alg } = signLabels(request)
    const client = clientLabel(request)
    const outcome = outcomeOf(request, reply)
    metrics.signRequests.inc({ endpoint, keyset, alg, client, outcome })
    if (outcome !== 'ok') return
    const items = endpoint === 'batch' ? ((request.body as { items?: unknown[] }).items?.length ?? 0) : 1
    metrics.tokensSigned.inc({ keyset, alg, client }, items)
    metrics.signDuration.observe({ endpoint }, reply.elapsedTime / 1000)
  }

  const countVerify = (request: FastifyRequest, reply: FastifyReply) => {
    metrics.verifications.inc({ outcome: outcomeOf(request, reply) })
  }

  const countJwks = (fixedKeyset: string | null) => (request: FastifyRequest, reply: FastifyReply) => {
    const name = fixedKeyset ?? (request.params as { name?: string }).name
    const keyset = name !== undefined && keystore.keyset(name) ? name : ''
    metrics.jwksRequests.inc({ keyset, status: String(reply.statusCode) })
  }

  const countAuthFailure = (request: FastifyRequest, reply: FastifyReply) => {
    const status = reply.statusCode
    if (status !== 401 && status !== 403 && status !== 429) return
    const code = outcomes.get(request)
    // 429 before a principal is known is the failed-authentication limit, not the sign rate limit.
    if (status === 401 || code === 'forbidden' || (status === 429 && request.principal === null)) {
      metrics.authFailures.inc({ code: code ?? `http_${status}` })
    }
  }

  app.addHook('onRoute', (route) => {
    const url = route.url
    if (SIGN_ROUTES[url]) appendHook(route, 'onResponse', onResponse(countSign(SIGN_ROUTES[url])))
    if (url === VERIFY_ROUTE) appendHook(route, 'onResponse', onResponse(countVerify))
    if (JWKS_ROUTES.has(url)) appendHook(route, 'onResponse', onResponse(countJwks(url === '/.well-known/jwks.json' ? defaultKeyset : null)))
    if (url.startsWith('/v1/')) {
      appendHook(route, 'preSerialization', rememberOutcome)
      appendHook(route, 'onResponse', onResponse(countAuthFailure))
    }
  })
}
