import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { SECURITY_HEADERS } from '../../src/plugins/security-headers.js'
import { createHarness, type Harness } from '../helpers/harness.js'
import { parseHead, rawExchange } from '../helpers/raw-http.js'
import { expectProblem, type AnswerLike } from './helpers.js'

/** Splits a raw HTTP answer into status, lower-case headers and body. */
function parseRaw(raw: string): AnswerLike {
  const [head, ...rest] = raw.split('\r\n\r\n')
  const { status, headers } = parseHead(head!)
  return { statusCode: status, headers, body: rest.join('\r\n\r\n') }
}

/**
 * Every security header is there (Cache-Control may be the route's own), and
 * X-Powered-By is not. Public documents (JWK Sets, discovery) are the one kind of
 * answer any origin may read; every other answer is same-origin only, with no CORS.
 */
function expectSecurityHeaders(response: AnswerLike, label: string, { publicDocument = false } = {}) {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    if (name === 'cache-control') expect(response.headers[name], `${label}: ${name}`).toBeDefined()
    else if (name === 'cross-origin-resource-policy' && publicDocument) expect(response.headers[name], `${label}: ${name}`).toBe('cross-origin')
    else expect(response.headers[name], `${label}: ${name}`).toBe(value)
  }
  expect(response.headers['access-control-allow-origin'], label).toBe(publicDocument ? '*' : undefined)
  expect(response.headers['access-control-allow-credentials'], label).toBeUndefined()
  expect(response.headers['x-powered-by'], label).toBeUndefined()
}

describe('security headers, methods and error answers', () => {
  let h: Harness
  let signer: string
  let app: FastifyInstance
  let url: string

  beforeAll(async () => {
    h = await createHarness({ env: { SIGNET_AUTH_FAILURE_LIMIT: '3' } })
    signer = (await h.createClient({ scopes: ['sign'] })).token
    // A second app over the same Signet, with routes that fail the way a bug would.
    app = await buildApp(h.signet)
    app.get('/test/boom', async () => {
      throw new Error(`internal detail: /srv/signet/db at ${h.dir}`)
    })
    app.get('/test/throw-object', async () => {
      throw { message: 'not even an Error', stack: 'at secret.ts:1:1' }
    })
    app.get('/test/type-error', async () => (null as unknown as { x: number }).x)
    url = await h.listen()
    await app.ready()
  })
  afterAll(async () => {
    await app.close()
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  it('answers carry the pinned security headers: a CSP that forbids everything, HSTS for a year with subdomains, Cache-Control: no-store', async () => {
    // The literal values the service promises, written out so that a change of
    // helmet's defaults or of HELMET_OPTIONS shows up here as a failing line.
    const pinned: Record<string, string> = {
      'content-security-policy': "default-src 'none';frame-ancestors 'none'",
      'strict-transport-security': 'max-age=31536000; includeSubDomains',
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-resource-policy': 'same-origin',
      'origin-agent-cluster': '?1',
      'x-dns-prefetch-control': 'off',
      'x-download-options': 'noopen',
      'x-permitted-cross-domain-policies': 'none',
      'x-xss-protection': '0',
      'cache-control': 'no-store',
    }
    const injected = await h.request('GET', '/healthz')
    const overHttp = await fetch(`${url}/healthz`)
    for (const [name, value] of Object.entries(pinned)) {
      expect(injected.headers[name], name).toBe(value)
      expect(overHttp.headers.get(name), `${name} over HTTP`).toBe(value)
    }
    // The set written by hand on answers made outside fastify's hooks is the same, and no more.
    expect(SECURITY_HEADERS).toEqual(pinned)
  })

  it('every kind of answer carries the security headers and no X-Powered-By', async () => {
    const jwks = await h.request('GET', '/.well-known/jwks.json')
    const answers: [string, AnswerLike, number][] = [
      ['200 healthz', await h.request('GET', '/healthz'), 200],
      ['200 jwks', jwks, 200],
      ['304 jwks', await h.request('GET', '/.well-known/jwks.json', { headers: { 'if-none-match': String(jwks.headers.etag) } }), 304],
      ['200 sign', await h.request('POST', '/v1/sign', { token: signer, body: { claims: {} } }), 200],
      ['201 client', await h.request('POST', '/v1/admin/clients', { token: h.adminToken, body: { name: 'x', keysets: '*', scopes: ['verify'] } }, (body) => body.replace(/signet_[A-Za-z0-9_-]+/g, '<token>')), 201],
      ['400 body', await h.request('POST', '/v1/sign', { token: signer, body: { claims: [] } }), 400],
      ['401', await h.request('POST', '/v1/sign', { body: { claims: {} } }), 401],
      ['403', await h.request('GET', '/v1/admin/keysets', { token: signer }), 403],
      ['404 route', await h.request('GET', '/nowhere'), 404],
      ['404 overlong parameter', await h.request('GET', `/v1/admin/keysets/${'x'.repeat(500)}`, { token: h.adminToken }), 404],
      ['400 malformed URL', await h.request('GET', '/v1/admin/keysets/%zz', { token: h.adminToken }), 400],
      ['405 TRACE', await h.request('TRACE', '/healthz'), 405],
      ['413', await h.request('POST', '/v1/sign', { token: signer, payload: `{"claims":{"a":"${'x'.repeat(70_000)}"}}`, headers: { 'content-type': 'application/json' } }), 413],
      ['415', await h.request('POST', '/v1/sign', { token: signer, payload: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415],
      ['500', await app.inject({ method: 'GET', url: '/test/boom' }), 500],
    ]
    for (let attempt = 0; attempt < 4; attempt++) await h.app.inject({ method: 'GET', url: '/v1/admin/keysets', remoteAddress: '10.1.1.1', headers: { authorization: 'Bearer wrong' } })
    answers.push(['429', await h.app.inject({ method: 'GET', url: '/v1/admin/keysets', remoteAddress: '10.1.1.1', headers: { authorization: 'Bearer wrong' } }), 429])
    for (const [label, response, status] of answers) {
      expect(response.statusCode, label).toBe(status)
      expectSecurityHeaders(response, label, { publicDocument: label.endsWith(' jwks') })
    }
  })

  it('JWK Sets and discovery documents may be read from any origin, found or not; nothing else may', async () => {
    await h.request('POST', '/v1/admin/keysets', { token: h.adminToken, body: { name: 'with-issuer', issuer: 'https://issuer.example' } })
    const origin = { origin: 'https://app.example' }
    const jwks = await h.request('GET', '/keysets/with-issuer/jwks.json', { headers: origin })
    const shared: [string, AnswerLike, number][] = [
      ['default jwks', await h.request('GET', '/.well-known/jwks.json', { headers: origin }), 200],
      ['keyset jwks', jwks, 200],
      ['keyset jwks 304', await h.request('GET', '/keysets/with-issuer/jwks.json', { headers: { ...origin, 'if-none-match': String(jwks.headers.etag) } }), 304],
      ['keyset jwks HEAD', await h.request('HEAD', '/keysets/with-issuer/jwks.json', { headers: origin }), 200],
      ['unknown keyset jwks', await h.request('GET', '/keysets/nothing-here/jwks.json', { headers: origin }), 404],
      // Answered before any route is found: the keyset name is too long, or the URL malformed.
      ['jwks of an overlong keyset name', await h.request('GET', `/keysets/${'x'.repeat(500)}/jwks.json`, { headers: origin }), 404],
      ['discovery of a malformed URL', await h.request('GET', '/keysets/%zz/.well-known/openid-configuration', { headers: origin }), 400],
      ['keyset discovery', await h.request('GET', '/keysets/with-issuer/.well-known/openid-configuration', { headers: origin }), 200],
      ['discovery without issuer', await h.request('GET', '/.well-known/openid-configuration', { headers: origin }), 404],
    ]
    for (const [label, response, status] of shared) {
      expect(response.statusCode, label).toBe(status)
      expectSecurityHeaders(response, label, { publicDocument: true })
    }
    const notShared: [string, AnswerLike, number][] = [
      ['sign', await h.request('POST', '/v1/sign', { token: signer, body: { claims: {} }, headers: origin }), 200],
      ['admin', await h.request('GET', '/v1/admin/keysets', { token: h.adminToken, headers: origin }), 200],
      ['healthz', await h.request('GET', '/healthz', { headers: origin }), 200],
      ['readyz', await h.request('GET', '/readyz', { headers: origin }), 200],
      ['preflight for sign', await h.request('OPTIONS', '/v1/sign', { headers: { ...origin, 'access-control-request-method': 'POST' } }), 405],
    ]
    for (const [label, response, status] of notShared) {
      expect(response.statusCode, label).toBe(status)
      expectSecurityHeaders(response, label)
    }
  })

  it('a 401 names the Bearer scheme in WWW-Authenticate; other refusals do not', async () => {
    const refusals: [string, AnswerLike, number][] = [
      ['no token', await h.request('POST', '/v1/sign', { body: { claims: {} } }), 401],
      ['a wrong token', await h.request('GET', '/v1/admin/keysets', { token: 'signet_wrong' }), 401],
      ['a workload-shaped token', await h.request('POST', '/v1/sign', { token: 'a.b.c', body: { claims: {} } }), 401],
      ['a token without the scope', await h.request('GET', '/v1/admin/keysets', { token: signer }), 403],
    ]
    for (const [label, response, status] of refusals) {
      expect(response.statusCode, label).toBe(status)
      expect(response.headers['www-authenticate'], label).toBe(status === 401 ? 'Bearer' : undefined)
    }
  })

  it('answers that carry tokens or admin data are never cacheable; JWK Sets keep their max-age', async () => {
    expect((await h.request('POST', '/v1/sign', { token: signer, body: { claims: {} } })).headers['cache-control']).toBe('no-store')
    expect((await h.request('GET', '/v1/admin/keysets', { token: h.adminToken })).headers['cache-control']).toBe('no-store')
    expect((await h.request('GET', '/.well-known/jwks.json')).headers['cache-control']).toMatch(/^public, max-age=\d+$/)
  })

  it('answers TRACE with 405 on every path, and a known path under another method with 405 and Allow', async () => {
    for (const path of ['/healthz', '/v1/sign', '/.well-known/jwks.json', '/nowhere']) {
      const response = await h.request('TRACE', path)
      expectProblem(response, 405, 'method_not_allowed')
      expect(response.headers.allow).toBeDefined()
    }
    const wrongMethod = await h.request('DELETE', '/v1/sign', { token: signer })
    expectProblem(wrongMethod, 405, 'method_not_allowed')
    expect(wrongMethod.headers.allow).toBe('POST')
    expect((await h.request('PUT', '/keysets/default/jwks.json')).headers.allow).toBe('GET, HEAD')
    // Over real HTTP too, where no injection shortcut applies.
    const traced = await fetch(`${url}/healthz`, { method: 'TRACE' }).catch(() => null)
    if (traced) expect(traced.status).toBe(405) // some fetch implementations refuse to send TRACE at all
    const raw = parseRaw(await rawExchange(url, 'TRACE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))
    expect(raw.statusCode).toBe(405)
    expectSecurityHeaders(raw, 'raw TRACE')
  })

  it('request logs keep the path and query parameter names, never query values', async () => {
    const marker = `value-${Date.now()}`
    await h.request('GET', `/v1/admin/audit?after=0&limit=5&access_token=${marker}`, { token: h.adminToken })
    const line = h.logs.lines.find((text) => text.includes('/v1/admin/audit?'))
    expect(line).toContain('/v1/admin/audit?after=_&limit=_&access_token=_')
    expect(h.logs.lines.join('\n')).not.toContain(marker)
  })

  it('a 5xx never carries a stack trace or the failure message', async () => {
    for (const path of ['/test/boom', '/test/throw-object', '/test/type-error']) {
      const response = await app.inject({ method: 'GET', url: path })
      h.watch.record(response.body)
      const body = expectProblem(response, 500, 'internal_error')
      expect(Object.keys(body).sort()).toEqual(['code', 'detail', 'status', 'title', 'type'])
      expect(response.body).not.toMatch(/internal detail|not even|secret\.ts|\bat \S+:\d+|TypeError|Cannot read|\/srv\/|signet-test-/)
    }
    // The whole error is in the log, for the operator.
    expect(h.logs.lines.some((line) => line.includes('internal detail') && line.includes('"stack"'))).toBe(true)
  })

  it('answers a 1 MB URL over real HTTP with a clean 431 problem, not a reset or a storage error', async () => {
    const raw = await rawExchange(url, `GET /keysets/${'k'.repeat(1024 * 1024)}/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n`)
    const response = parseRaw(raw)
    expectProblem(response, 431, 'headers_too_large')
    expectSecurityHeaders(response, '431')
    // A huge header, and garbage instead of HTTP.
    expectProblem(parseRaw(await rawExchange(url, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(64 * 1024)}\r\n\r\n`)), 431, 'headers_too_large')
    expectProblem(parseRaw(await rawExchange(url, 'NOT HTTP AT ALL\r\n\r\n')), 400, 'invalid_request')
    // The service is still up.
    expect((await fetch(`${url}/healthz`)).status).toBe(200)
  })
})
