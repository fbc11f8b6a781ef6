import helmet, { type FastifyHelmetOptions } from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * Helmet settings for a JSON API: no document is ever rendered, so the content
 * security policy forbids everything and no page may frame an answer; answers are
 * never sniffed as another type, never sent with a Referer, and browsers are told
 * to use HTTPS for the host. Helmet also removes X-Powered-By.
 */
export const HELMET_OPTIONS: FastifyHelmetOptions = {
  global: true,
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  xFrameOptions: { action: 'deny' },
  referrerPolicy: { policy: 'no-referrer' },
  strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
}

/**
 * The headers HELMET_OPTIONS produce, plus `Cache-Control: no-store`, for answers
 * written outside fastify's hooks: framework errors (a malformed URL) and raw client
 * errors (headers too large, timeouts). test/security/headers.test.ts checks that
 * this list and what helmet sets agree.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none';frame-ancestors 'none'",
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'no-referrer',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-frame-options': 'DENY',
  'x-permitted-cross-domain-policies': 'none',
  'x-xss-protection': '0',
  'cache-control': 'no-store',
}

/**
 * Security headers on every answer (@fastify/helmet, applied in onRequest so even
 * an early refusal carries them), and `Cache-Control: no-store` on every answer
 * that does not choose its own caching: signed tokens and admin answers must not
 * sit in a shared cache. JWK Sets and discovery documents set their own.
 */
async function securityHeaders(app: FastifyInstance): Promise<void> {
  await app.register(helmet, HELMET_OPTIONS)
  app.addHook('onSend', async (_request, reply) => {
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store')
  })
}

export const securityHeadersPlugin = fp(securityHeaders, { name: 'signet-security-headers', fastify: '5.x' })
