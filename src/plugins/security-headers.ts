import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'

/**
 * Helmet settings for a JSON API: no document is ever rendered, so the content
 * security policy forbids everything and no page may frame an answer; answers are
 * never sniffed as another type, never sent with a Referer, and browsers are told
 * to use HTTPS for the host.
 */
export const HELMET_OPTIONS: Readonly<HelmetOptions> = {
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  xFrameOptions: { action: 'deny' },
  referrerPolicy: { policy: 'no-referrer' },
  strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
}

/**
 * The admin console's policy (docs/console.md): its own scripts, styles and API
 * only, no inline script or style, no framing, no plugins, no <base> or form
 * posts, and Trusted Types so no string ever becomes markup. The favicon is an
 * empty data: URL (no request, no 404 in the console).
 */
export const CONSOLE_CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ')

/**
 * The headers helmet sets with these options. They do not depend on the request,
 * so helmet runs once, here, and every answer gets the same precomputed set instead
 * of helmet re-reading its options per request (a measurable share of an answer).
 */
function helmetHeaders(options: Readonly<HelmetOptions>): Record<string, string> {
  const headers: Record<string, string> = {}
  const response = {
    setHeader: (name: string, value: unknown) => {
      headers[name.toLowerCase()] = String(value)
    },
    removeHeader: (name: string) => {
      delete headers[name.toLowerCase()]
    },
  }
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, () => {})
  return headers
}

const FROM_HELMET = helmetHeaders(HELMET_OPTIONS)

/**
 * What every answer carries: helmet's headers plus `Cache-Control: no-store` (which
 * answers that choose their own caching, the JWK Sets and discovery, replace). Also
 * written by hand on answers made outside fastify's hooks: framework errors (a
 * malformed URL) and raw client errors (headers too large, timeouts).
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = { ...FROM_HELMET, 'cache-control': 'no-store' }

/**
 * Security headers on every answer, set in onRequest so even an early refusal
 * carries them, and `Cache-Control: no-store` on every answer that does not choose
 * its own caching: signed tokens and admin answers must not sit in a shared cache.
 */
async function securityHeaders(app: FastifyInstance): Promise<void> {
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(FROM_HELMET)
    done()
  })
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store')
    done(null, payload)
  })
}

export const securityHeadersPlugin = fp(securityHeaders, { name: 'signet-security-headers', fastify: '5.x' })
