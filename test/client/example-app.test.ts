import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SignetClient } from '../../src/client/index.js'
import { tempDir } from '../helpers/harness.js'
import { kubernetesClaims, issuerKey, TestIssuer } from '../identity/test-issuer.js'
import { startLiveSignet, type LiveSignet } from '../helpers/live-server.js'

// The example is plain JavaScript importing the built package (`signet` -> dist/client);
// `npm test` builds first (pretest).
// @ts-expect-error -- a .js module without type declarations
const example = await import('../../examples/app-server/server.js') as {
  buildAppServer: (options: Record<string, unknown>) => Promise<FastifyInstance>
  configFromEnv: (env: Record<string, string>) => Record<string, unknown>
}

const DEMO_PASSWORD = 'correct horse battery staple'

describe('examples/app-server', () => {
  let signet: LiveSignet
  let app: FastifyInstance
  let appToken: string
  let otherToken: string

  beforeAll(async () => {
    // JWKS max-age 1 s, so the app's verifier refreshes its cached JWK Set every second.
    signet = await startLiveSignet({ SIGNET_JWKS_MAX_AGE: '1' })
    await signet.createKeyset({ name: 'other', alg: 'ES256' })
    appToken = await signet.createClient({ name: 'example app', keysets: ['default'], scopes: ['sign'] })
    otherToken = await signet.createClient({ name: 'another app', keysets: ['other'], scopes: ['sign'] })
    app = await example.buildAppServer({ signetUrl: signet.url, clientToken: appToken, demoPassword: DEMO_PASSWORD, clockTolerance: 0 })
    await app.ready()
  })
  afterAll(async () => {
    await app?.close()
    await signet.close()
    signet.watch.assertClean()
  })

  const login = (body: unknown) => app.inject({ method: 'POST', url: '/login', payload: body as object })
  const me = (token?: string) => app.inject({ method: 'GET', url: '/me', headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })

  async function sessionToken(username = 'alice'): Promise<string> {
    const response = await login({ username, password: DEMO_PASSWORD })
    expect(response.statusCode, response.body).toBe(200)
    return response.json().token
  }

  it('POST /login then GET /me with the token succeeds', async () => {
    const response = await login({ username: 'alice', password: DEMO_PASSWORD })
    expect(response.statusCode).toBe(200)
    const { token, tokenType, expiresAt } = response.json()
    expect(tokenType).toBe('Bearer')
    expect(decodeJwt(token)).toMatchObject({ sub: 'alice', exp: expiresAt })
    const answer = await me(token)
    expect(answer.statusCode, answer.body).toBe(200)
    expect(answer.json()).toMatchObject({ sub: 'alice', exp: expiresAt })
  })

  it('POST /login refuses a wrong password and bad bodies, without asking Signet', async () => {
    const before = signet.requests()
    expect((await login({ username: 'alice', password: 'wrong' })).statusCode).toBe(401)
    expect((await login({ username: 'alice', password: '' })).statusCode).toBe(401)
    expect((await login({ username: 'alice' })).statusCode).toBe(400)
    expect((await login({ username: 'no spaces allowed', password: DEMO_PASSWORD })).statusCode).toBe(400)
    expect(signet.requests()).toBe(before)
  })

  it('GET /me refuses a missing or malformed Authorization header', async () => {
    const missing = await me()
    expect(missing.statusCode).toBe(401)
    expect(missing.headers['www-authenticate']).toBe('Bearer')
    const garbage = await me('not-a-token')
    expect(garbage.statusCode).toBe(401)
    expect(garbage.json().code).toBe('malformed')
  })

  it('GET /me refuses an expired token', async () => {
    const signer = new SignetClient({ url: signet.url, token: appToken })
    try {
      // ttl 2: at least a second of validity left for the first check, whatever the sub-second of iat.
      const { token, exp } = await signer.sign({ sub: 'alice' }, { ttl: 2 })
      expect((await me(token)).statusCode).toBe(200)
      await sleep(Math.max(0, exp * 1000 - Date.now()) + 50)
      const answer = await me(token)
      expect(answer.statusCode).toBe(401)
      expect(answer.json().code).toBe('expired')
    } finally {
      await signer.close()
    }
  })

  it('GET /me refuses a token Signet signed with another keyset', async () => {
    const other = new SignetClient({ url: signet.url, token: otherToken, keyset: 'other' })
    try {
      const { token, keyset } = await other.sign({ sub: 'alice' })
      expect(keyset).toBe('other')
      const answer = await me(token)
      expect(answer.statusCode).toBe(401)
      expect(answer.json().code).toBe('unknown_kid')
    } finally {
      await other.close()
    }
  })

  it('GET /me refuses a token whose kid was revoked once the JWKS cache refreshes; new logins keep working', async () => {
    const token = await sessionToken('bob')
    expect((await me(token)).statusCode).toBe(200)
    const { kid } = decodeProtectedHeader(token)
    const revoked = await signet.admin('POST', `/v1/admin/keys/${kid}/revoke`, { reason: 'compromised in a drill' })
    expect(revoked.status).toBe(200)
    await sleep(1200) // past the JWKS max-age of 1 s
    const answer = await me(token)
    expect(answer.statusCode).toBe(401)
    expect(answer.json().code).toBe('unknown_kid')
    // Signet activated a replacement at once: the next login signs with it and verifies.
    const fresh = await sessionToken('bob')
    expect(decodeProtectedHeader(fresh).kid).not.toBe(kid)
    expect((await me(fresh)).statusCode).toBe(200)
  })

  it('POST /login answers 503 when Signet cannot sign, and says nothing of why to the user', async () => {
    const broken = await example.buildAppServer({ signetUrl: signet.url, clientToken: `signet_${'z'.repeat(43)}`, demoPassword: DEMO_PASSWORD })
    try {
      const response = await broken.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: DEMO_PASSWORD } })
      expect(response.statusCode).toBe(503)
      expect(response.json().code).toBe('signing_unavailable')
      expect(response.body).not.toContain('unauthorized')
    } finally {
      await broken.close()
    }
  })

  it('GET /me answers 503 while the JWK Set cannot be fetched', async () => {
    const blind = await example.buildAppServer({ signetUrl: signet.url, clientToken: appToken, demoPassword: DEMO_PASSWORD, jwksUrl: 'http://127.0.0.1:9/jwks.json' })
    try {
      const token = await sessionToken()
      const response = await blind.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } })
      expect(response.statusCode).toBe(503)
      expect(response.json().code).toBe('jwks_unavailable')
    } finally {
      await blind.close()
    }
  })

  describe('configFromEnv', () => {
    it('reads SIGNET_URL, the token or its file, DEMO_PASSWORD, PORT and the JWKS URL', () => {
      const dir = tempDir()
      try {
        const file = join(dir.path, 'token')
        writeFileSync(file, 'signet_from_a_file\n')
        const config = example.configFromEnv({ SIGNET_URL: 'http://signet:8080', SIGNET_CLIENT_TOKEN_FILE: file, DEMO_PASSWORD: 'pw' })
        expect(config).toMatchObject({ port: 3000, signetUrl: 'http://signet:8080', clientToken: 'signet_from_a_file', demoPassword: 'pw', jwksUrl: undefined })
        expect(example.configFromEnv({ SIGNET_URL: 'http://s', SIGNET_CLIENT_TOKEN: 't', DEMO_PASSWORD: 'pw', PORT: '8081', SIGNET_JWKS_URL: 'http://s/keysets/a/jwks.json' }))
          .toMatchObject({ port: 8081, jwksUrl: 'http://s/keysets/a/jwks.json' })
      } finally {
        dir.remove()
      }
    })

    it('takes SIGNET_WORKLOAD_TOKEN_FILE instead of a client token', () => {
      const config = example.configFromEnv({ SIGNET_URL: 'http://signet:8080', SIGNET_WORKLOAD_TOKEN_FILE: '/var/run/secrets/signet/token', DEMO_PASSWORD: 'pw' })
      expect(config).toMatchObject({ tokenFile: '/var/run/secrets/signet/token' })
      expect(config.clientToken).toBeUndefined()
      expect(() => example.configFromEnv({ SIGNET_URL: 'http://s', SIGNET_CLIENT_TOKEN: 't', SIGNET_WORKLOAD_TOKEN_FILE: '/t', DEMO_PASSWORD: 'pw' })).toThrow(/both set/)
    })

    it('names what is missing or wrong', () => {
      const ok = { SIGNET_URL: 'http://signet:8080', SIGNET_CLIENT_TOKEN: 't', DEMO_PASSWORD: 'pw' }
      expect(() => example.configFromEnv({ ...ok, SIGNET_URL: '' })).toThrow(/SIGNET_URL/)
      expect(() => example.configFromEnv({ ...ok, SIGNET_CLIENT_TOKEN: '' })).toThrow(/SIGNET_CLIENT_TOKEN.*SIGNET_WORKLOAD_TOKEN_FILE/)
      expect(() => example.configFromEnv({ ...ok, SIGNET_CLIENT_TOKEN_FILE: '/x' })).toThrow(/both set/)
      expect(() => example.configFromEnv({ ...ok, DEMO_PASSWORD: '' })).toThrow(/DEMO_PASSWORD/)
      expect(() => example.configFromEnv({ ...ok, PORT: 'eighty' })).toThrow(/PORT/)
    })
  })
})

/**
 * Whether the client library takes `tokenFile` (docs/workload-identity.md). It comes
 * with the client-library change; until then the example's workload variant cannot run.
 */
function clientTakesTokenFile(): boolean {
  const dir = tempDir()
  try {
    const file = join(dir.path, 'token')
    writeFileSync(file, 'eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n')
    new SignetClient({ url: 'http://127.0.0.1:9', tokenFile: file } as never).close()
    return true
  } catch {
    return false
  } finally {
    dir.remove()
  }
}

describe.skipIf(!clientTakesTokenFile())('examples/app-server with a workload token file and no Signet secret', () => {
  let signet: LiveSignet
  let issuer: TestIssuer
  let app: FastifyInstance
  const dir = tempDir()
  const tokenFile = join(dir.path, 'token')

  beforeAll(async () => {
    signet = await startLiveSignet()
    issuer = await new TestIssuer().start(await issuerKey('cluster-1', 'RS256'))
    const created = await signet.admin('POST', '/v1/admin/issuers', { name: 'cluster', issuer: issuer.issuer, jwksUri: issuer.jwksUri, audiences: ['signet'] })
    expect(created.status).toBe(201)
    const client = await signet.admin('POST', '/v1/admin/clients', { name: 'example app', keysets: ['default'], scopes: ['sign'], identity: { issuer: 'cluster', subject: 'system:serviceaccount:demo:app' } })
    expect(client.status).toBe(201)
    expect(client.body.token).toBeUndefined()
    const now = Math.floor(Date.now() / 1000)
    const token = await issuer.sign(kubernetesClaims(issuer.issuer, now, 'demo', 'app'))
    signet.watch.secret('the workload token', token)
    writeFileSync(tokenFile, `${token}\n`)
    const config = example.configFromEnv({ SIGNET_URL: signet.url, SIGNET_WORKLOAD_TOKEN_FILE: tokenFile, DEMO_PASSWORD })
    expect(JSON.stringify(config)).not.toMatch(/signet_|eyJ/)
    app = await example.buildAppServer(config)
    await app.ready()
  })
  afterAll(async () => {
    await app?.close()
    await signet.close()
    await issuer.close()
    dir.remove()
    signet.watch.assertClean()
  })

  it('signs session tokens with the platform token read from the file', async () => {
    const login = await app.inject({ method: 'POST', url: '/login', payload: { username: 'alice', password: DEMO_PASSWORD } })
    expect(login.statusCode, login.body).toBe(200)
    const me = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${login.json().token}` } })
    expect(me.json()).toMatchObject({ sub: 'alice' })
  })
})
