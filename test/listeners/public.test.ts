import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startLiveSignet, type LiveSignet } from '../helpers/live-server.js'
import { LeakWatch } from '../helpers/secrets.js'

/** Every route that must not exist on the public listener, with a plausible request for each. */
const INTERNAL_ROUTES: [method: string, path: string, body?: unknown][] = [
  ['POST', '/v1/sign', { claims: { sub: 'x' } }],
  ['POST', '/v1/sign/batch', { items: [{ claims: {} }] }],
  ['POST', '/v1/verify', { token: 'a.b.c' }],
  ['GET', '/v1/admin/keysets'],
  ['POST', '/v1/admin/keysets', { name: 'created-on-public' }],
  ['GET', '/v1/admin/keysets/default'],
  ['PATCH', '/v1/admin/keysets/default', { defaultTtl: 60 }],
  ['GET', '/v1/admin/keysets/default/keys'],
  ['POST', '/v1/admin/keysets/default/rotate', { mode: 'immediate' }],
  ['POST', '/v1/admin/keysets/default/import', { jwk: {} }],
  ['POST', '/v1/admin/keys/some-kid/revoke', { reason: 'x' }],
  ['POST', '/v1/admin/clients', { name: 'x', keysets: '*', scopes: ['sign'] }],
  ['GET', '/v1/admin/clients'],
  ['DELETE', '/v1/admin/clients/some-id'],
  ['GET', '/v1/admin/audit'],
  ['GET', '/metrics'],
  ['GET', '/openapi.json'],
  ['GET', '/docs'],
  ['GET', '/docs/'],
  ['GET', '/docs/json'],
  ['GET', '/docs/static/swagger-ui.css'],
  ['GET', '/console'],
  ['GET', '/console/'],
  ['GET', '/console/main.js'],
  ['GET', '/v1/admin/audit/verify'],
]

describe('the public listener (SIGNET_PUBLIC_PORT)', () => {
  const watch = new LeakWatch()
  let server: LiveSignet
  let adminToken: string
  let clientToken: string
  let internal: string
  let external: string

  const send = async (base: string, method: string, path: string, init: { token?: string; body?: unknown; headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { ...init.headers }
    if (init.token) headers.authorization = `Bearer ${init.token}`
    if (init.body !== undefined) headers['content-type'] = 'application/json'
    const response = await fetch(`${base}${path}`, { method, headers, ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}) })
    const bytes = Buffer.from(await response.arrayBuffer())
    watch.record(bytes.toString('utf8').replace(/signet_[A-Za-z0-9_-]{43}/g, '<token shown once>'))
    return { status: response.status, headers: response.headers, bytes, json: () => JSON.parse(bytes.toString('utf8')) }
  }

  beforeAll(async () => {
    server = await startLiveSignet({ SIGNET_HOST: '127.0.0.1', SIGNET_PUBLIC_PORT: '0' }, { watch })
    adminToken = server.adminToken
    internal = server.url
    expect(server.publicUrl).not.toBeNull()
    external = server.publicUrl!
    expect(external).not.toBe(internal)
    const created = await send(internal, 'POST', '/v1/admin/clients', { token: adminToken, body: { name: 'app', keysets: '*', scopes: ['sign', 'verify', 'admin'] } })
    expect(created.status).toBe(201)
    clientToken = watch.secret('the client token', created.json().token)
    expect((await send(internal, 'POST', '/v1/admin/keysets', { token: adminToken, body: { name: 'issuing', issuer: 'https://issuer.example' } })).status).toBe(201)
  })

  afterAll(async () => {
    await server?.close()
    watch.assertClean()
  })

  it('answers 404 to every internal route: sign, verify, admin, metrics and docs', async () => {
    for (const [method, path, body] of INTERNAL_ROUTES) {
      // With credentials that work on the internal listener: the route is absent, not refused.
      const token = path.startsWith('/v1/admin') ? adminToken : clientToken
      const answer = await send(external, method, path, { token, ...(body !== undefined ? { body } : {}) })
      expect(answer.status, `${method} ${path}`).toBe(404)
      expect(answer.headers.get('content-type'), `${method} ${path}`).toMatch(/^application\/problem\+json/)
      expect(answer.json().code, `${method} ${path}`).toBe('not_found')
    }
    // Nothing happened: no keyset was created, the default keyset kept its policy and key.
    const keysets = (await send(internal, 'GET', '/v1/admin/keysets', { token: adminToken })).json().keysets as { name: string; defaultTtl: number }[]
    expect(keysets.map((k) => k.name).sort()).toEqual(['default', 'issuing'])
    expect(keysets.find((k) => k.name === 'default')?.defaultTtl).toBe(900)
  })

  it('serves the same internal routes on the internal listener', async () => {
    expect((await send(internal, 'POST', '/v1/sign', { token: clientToken, body: { claims: {} } })).status).toBe(200)
    expect((await send(internal, 'GET', '/metrics')).status).toBe(200)
    expect((await send(internal, 'GET', '/openapi.json')).status).toBe(200)
    expect((await send(internal, 'GET', '/docs')).status).toBe(200)
  })

  it('serves the JWK Sets with the same bytes, headers and ETag as the internal listener, before and after a rotation', async () => {
    for (let round = 0; round < 2; round++) {
      for (const path of ['/.well-known/jwks.json', '/keysets/default/jwks.json', '/keysets/issuing/jwks.json']) {
        const inside = await send(internal, 'GET', path)
        const outside = await send(external, 'GET', path)
        expect(outside.status, path).toBe(200)
        expect(outside.bytes.equals(inside.bytes), path).toBe(true)
        for (const header of ['etag', 'content-type', 'cache-control']) expect(outside.headers.get(header), `${path} ${header}`).toBe(inside.headers.get(header))
        const again = await send(external, 'GET', path, { headers: { 'if-none-match': outside.headers.get('etag')! } })
        expect(again.status).toBe(304)
      }
      expect((await send(internal, 'POST', '/v1/admin/keysets/default/rotate', { token: adminToken, body: { mode: 'scheduled' } })).status).toBe(201)
    }
    expect((await send(external, 'GET', '/.well-known/jwks.json')).json().keys).toHaveLength(3)
  })

  it('serves discovery pointing at the public listener, and health', async () => {
    const discovery = await send(external, 'GET', '/keysets/issuing/.well-known/openid-configuration')
    expect(discovery.status).toBe(200)
    expect(discovery.json()).toMatchObject({ issuer: 'https://issuer.example', jwks_uri: `${external}/keysets/issuing/jwks.json` })
    // The internal listener's discovery names the public JWKS too: that is where verifiers can reach it.
    expect((await send(internal, 'GET', '/keysets/issuing/.well-known/openid-configuration')).json().jwks_uri).toBe(`${external}/keysets/issuing/jwks.json`)
    const fetched = await send(external, 'GET', '/keysets/issuing/jwks.json')
    expect(fetched.status).toBe(200)
    expect((await send(external, 'GET', '/.well-known/openid-configuration')).status).toBe(404) // default has no issuer
    expect((await send(external, 'GET', '/healthz')).json()).toEqual({ status: 'ok' })
    expect((await send(external, 'GET', '/readyz')).status).toBe(200)
    expect((await send(external, 'GET', '/keysets/nope/jwks.json')).status).toBe(404)
  })

  it('counts the public listener\'s JWKS requests in the internal /metrics', async () => {
    const before = await send(internal, 'GET', '/metrics')
    const count = (text: string) => Number(/^signet_jwks_requests_total\{keyset="default",status="200"\} (\d+)$/m.exec(text)?.[1] ?? 0)
    const start = count(before.bytes.toString())
    await send(external, 'GET', '/.well-known/jwks.json')
    await send(external, 'GET', '/keysets/default/jwks.json')
    expect(count((await send(internal, 'GET', '/metrics')).bytes.toString())).toBe(start + 2)
  })
})
