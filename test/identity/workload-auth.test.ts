import { KeyObject, randomBytes } from 'node:crypto'
import { SignJWT, UnsecuredJWT, exportJWK, type JWTPayload } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness } from '../helpers/harness.js'
import { parsePrometheus, sampleValue } from '../metrics/prometheus.js'
import { expectProblem } from '../security/helpers.js'
import { githubClaims, issuerKey, kubernetesClaims, spiffeClaims, TestIssuer, type IssuerKey } from './test-issuer.js'

const GITHUB_ISS = 'https://token.actions.githubusercontent.com'

describe('authentication by a workload token', () => {
  let h: Harness
  let k8s: TestIssuer
  let spire: TestIssuer
  let github: TestIssuer
  const clients: Record<string, string> = {}
  const seconds = () => Math.floor(h.clock.now() / 1000)

  /** Every workload token is a secret: the leak watch fails the run if any answer or log line holds it or its signature. */
  const secret = (token: string): string => {
    h.watch.secret('a workload token', token)
    h.watch.secret('a workload token signature', token.split('.')[2]!)
    return token
  }
  const signWith = (token: string) => h.request('POST', '/v1/sign', { token, body: { claims: { sub: 'user-1' } } })
  const refused = async (token: string, why: string) => {
    const response = await signWith(token)
    expect(response.statusCode, why).toBe(401)
    const body = expectProblem(response, 401, 'unauthorized')
    expect(body.detail, why).toBe('the bearer token is not valid')
  }
  const k8sToken = async (claims: JWTPayload = {}, options: Parameters<TestIssuer['sign']>[1] = {}) =>
    secret(await k8s.sign({ ...kubernetesClaims(k8s.issuer, seconds()), ...claims }, options))
  const spiffeToken = async (path: string, claims: JWTPayload = {}) =>
    secret(await spire.sign({ ...spiffeClaims(spire.issuer, seconds(), path), ...claims }))
  const createIdentityClient = async (name: string, issuer: string, subject: string, extra: Record<string, unknown> = {}) => {
    const response = await h.admin('POST', '/v1/admin/clients', { name, keysets: '*', scopes: ['sign'], identity: { issuer, subject }, ...extra })
    expect(response.statusCode, response.body).toBe(201)
    return response.json() as { id: string; token?: string }
  }
  /** The request log line of the last answer to POST /v1/sign. */
  const lastSignLog = () => h.logs.lines.map((line) => JSON.parse(line)).filter((line) => line.msg === 'request' && line.url === '/v1/sign').at(-1)

  beforeAll(async () => {
    h = await createHarness({ env: { SIGNET_AUTH_FAILURE_LIMIT: '0' } })
    k8s = await new TestIssuer().start(await issuerKey('k8s-1', 'RS256'))
    spire = await new TestIssuer().start(await issuerKey('spire-1', 'ES256'))
    github = await new TestIssuer(GITHUB_ISS).start(await issuerKey('gh-1', 'RS256'))
    for (const [name, issuer, extra] of [
      ['cluster', k8s, {}],
      ['spire', spire, { maxTokenLifetime: 600 }],
      ['github', github, { algorithms: ['RS256'] }],
    ] as const) {
      const response = await h.admin('POST', '/v1/admin/issuers', { name, issuer: issuer.issuer, jwksUri: issuer.jwksUri, audiences: ['signet'], ...extra })
      expect(response.statusCode, response.body).toBe(201)
    }
    clients.billing = (await createIdentityClient('billing api', 'cluster', 'system:serviceaccount:billing:api')).id
    clients.spiffeBilling = (await createIdentityClient('billing workloads', 'spire', 'spiffe://example.org/ns/billing/*')).id
    clients.github = (await createIdentityClient('deploy', 'github', 'repo:acme/billing:ref:refs/heads/main')).id
  })
  afterAll(async () => {
    await h.close()
    await Promise.all([k8s.close(), spire.close(), github.close()])
  })

  it('a client created with an identity gets no bearer token unless it asks for one', async () => {
    const without = await createIdentityClient('no token', 'cluster', 'system:serviceaccount:ops:*')
    expect(without.token).toBeUndefined()
    const withToken = await h.request('POST', '/v1/admin/clients', { token: h.adminToken, body: { name: 'both', keysets: '*', scopes: ['sign'], identity: { issuer: 'cluster', subject: 'system:serviceaccount:ops:both' }, token: true } }, (body) => body.replace(/signet_[A-Za-z0-9_-]+/g, '<token>'))
    expect(withToken.statusCode).toBe(201)
    expect(withToken.json().token).toMatch(/^signet_/)
    h.watch.secret('a bearer token', withToken.json().token)
    expect((await signWith(withToken.json().token)).statusCode).toBe(200)
    const listed = (await h.admin('GET', '/v1/admin/clients')).json().clients.find((c: { id: string }) => c.id === without.id)
    expect(listed.identity).toEqual({ issuer: 'cluster', subject: 'system:serviceaccount:ops:*' })
  })

  it('a Kubernetes service-account token signs, and the request log names the client and the workload subject', async () => {
    const response = await signWith(await k8sToken())
    expect(response.statusCode, response.body).toBe(200)
    expect(lastSignLog()).toMatchObject({ status: 200, client: clients.billing, workload: { issuer: 'cluster', subject: 'system:serviceaccount:billing:api' } })
  })

  it('a SPIFFE JWT-SVID matches a pattern subject; other namespaces do not', async () => {
    expect((await signWith(await spiffeToken('ns/billing/sa/api'))).statusCode).toBe(200)
    expect(lastSignLog().client).toBe(clients.spiffeBilling)
    expect((await signWith(await spiffeToken('ns/billing/sa/worker'))).statusCode).toBe(200)
    await refused(await spiffeToken('ns/payments/sa/api'), 'another namespace')
    await refused(await spiffeToken('ns/billingx/sa/api'), 'a prefix of the literal part is not a match')
  })

  it('a GitHub Actions token signs for its repository and branch only', async () => {
    expect((await signWith(secret(await github.sign(githubClaims(GITHUB_ISS, seconds())))))).toMatchObject({ statusCode: 200 })
    expect(lastSignLog().client).toBe(clients.github)
    await refused(secret(await github.sign(githubClaims(GITHUB_ISS, seconds(), 'mallory/billing'))), 'another repository')
  })

  it('an exact subject wins over a pattern; a subject matching two patterns and no exact binding matches none', async () => {
    const exact = await createIdentityClient('billing api exact', 'spire', 'spiffe://example.org/ns/billing/sa/api')
    expect((await signWith(await spiffeToken('ns/billing/sa/api'))).statusCode).toBe(200)
    expect(lastSignLog().client).toBe(exact.id)
    expect((await signWith(await spiffeToken('ns/billing/sa/worker'))).statusCode).toBe(200)
    expect(lastSignLog().client).toBe(clients.spiffeBilling)

    await createIdentityClient('shared namespace', 'spire', 'spiffe://example.org/ns/shared/*')
    await createIdentityClient('every db', 'spire', 'spiffe://example.org/ns/*/sa/db')
    await refused(await spiffeToken('ns/shared/sa/db'), 'two patterns match')
    expect((await signWith(await spiffeToken('ns/shared/sa/web'))).statusCode).toBe(200)
  })

  it('refuses a wrong aud, an expired token, a future nbf or iat, a too-long lifetime, missing times, an unknown subject or iss', async () => {
    const now = seconds()
    await refused(await k8sToken({ aud: ['vault'] }), 'wrong aud')
    await refused(await k8sToken({ aud: undefined }), 'no aud')
    await refused(await k8sToken({ iat: now - 3000, nbf: now - 3000, exp: now - 61 }), 'expired beyond the skew')
    await refused(await k8sToken({ exp: undefined }), 'no exp')
    await refused(await k8sToken({ nbf: now + 120 }), 'nbf in the future')
    await refused(await k8sToken({ iat: now + 120, nbf: undefined }), 'iat in the future')
    await refused(await k8sToken({ exp: now + 3601 }), 'lifetime over maxTokenLifetime')
    await refused(await k8sToken({ iat: undefined, nbf: undefined }), 'neither iat nor nbf')
    await refused(await k8sToken({ sub: 'system:serviceaccount:billing:other' }), 'no client bound to the subject')
    await refused(await k8sToken({ sub: undefined }), 'no sub')
    await refused(await k8sToken({ iss: 'https://kubernetes.default.svc' }), 'unregistered iss')
    await refused(await k8sToken({ iss: spire.issuer }), 'the iss of another issuer whose keys did not sign it')
    // Within the 60 s skew: still accepted.
    expect((await signWith(await k8sToken({ iat: now - 3000, nbf: now - 3000, exp: now - 30 })))).toMatchObject({ statusCode: 200 })
    expect((await signWith(await k8sToken({ nbf: now + 30 })))).toMatchObject({ statusCode: 200 })
  })

  it('refuses alg none, HS256 keyed with the issuer public key, a foreign key under a published kid, and a tampered payload', async () => {
    const claims = kubernetesClaims(k8s.issuer, seconds())
    await refused(secret(new UnsecuredJWT(claims).encode()), 'alg none')
    const publicKey = KeyObject.from(k8s.keys[0]!.pair.publicKey as CryptoKey)
    const asSecrets = [
      Buffer.from(publicKey.export({ format: 'pem', type: 'spki' }) as string),
      publicKey.export({ format: 'der', type: 'spki' }),
      Buffer.from(JSON.stringify(await exportJWK(k8s.keys[0]!.pair.publicKey))),
    ]
    for (const key of asSecrets) {
      await refused(secret(await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'k8s-1' }).sign(key)), 'HS256 with the public key as secret')
    }
    const foreign = await issuerKey('k8s-1', 'RS256')
    await refused(await k8sToken({}, { key: foreign }), 'a foreign key under a published kid')
    const [header, , signature] = (await k8sToken()).split('.')
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: 'system:serviceaccount:billing:api', admin: true })).toString('base64url')
    await refused(secret(`${header}.${forged}.${signature}`), 'a payload changed after signing')
    await refused(secret(`${header}.${forged}.`), 'a token without signature')
    // The github issuer accepts RS256 only: an ES256 token under its name is refused even with a published key.
    const es = await issuerKey('gh-es', 'ES256')
    github.publish(es)
    h.clock.advanceSeconds(31)
    await refused(secret(await github.sign(githubClaims(GITHUB_ISS, seconds()), { key: es })), 'an algorithm the issuer does not allow')
  })

  it('picks up a rotated issuer key (new kid) with one fetch', async () => {
    h.clock.advanceSeconds(31)
    const next = await issuerKey('k8s-2', 'RS256')
    k8s.publish(next)
    const before = k8s.jwksRequests
    expect((await signWith(await k8sToken({}, { key: next })))).toMatchObject({ statusCode: 200 })
    expect(k8s.jwksRequests).toBe(before + 1)
  })

  it('a flood of made-up kids costs the issuer at most one fetch per cooldown', async () => {
    h.clock.advanceSeconds(31)
    const flood = async () => {
      const tokens = await Promise.all(Array.from({ length: 40 }, async () => k8sToken({}, { kid: randomBytes(8).toString('hex') })))
      const answers = await Promise.all(tokens.map(signWith))
      for (const answer of answers) expectProblem(answer, 401, 'unauthorized')
    }
    const before = k8s.jwksRequests
    await flood()
    await flood()
    expect(k8s.jwksRequests - before).toBe(1)
    h.clock.advanceSeconds(10)
    await flood()
    expect(k8s.jwksRequests - before).toBe(1)
    h.clock.advanceSeconds(21)
    await flood()
    expect(k8s.jwksRequests - before).toBe(2)
  })

  it('keeps the last good key set while the endpoint fails, past its max-age', async () => {
    k8s.mode = 'error'
    try {
      h.clock.advanceSeconds(3600)
      const before = k8s.jwksRequests
      expect((await signWith(await k8sToken()))).toMatchObject({ statusCode: 200 })
      expect(k8s.jwksRequests).toBe(before + 1) // it did try
      expect((await signWith(await k8sToken({}, { key: k8s.keys[1] })))).toMatchObject({ statusCode: 200 })
      expect(k8s.jwksRequests).toBe(before + 1) // and waits a cooldown before trying again
    } finally {
      k8s.mode = 'up'
    }
  })

  it('answers a repeated token from memory, yet refuses it at once when its client is revoked', async () => {
    const token = await k8sToken()
    expect((await signWith(token)).statusCode).toBe(200)
    k8s.mode = 'error' // a second verification could not even fetch keys; the cache does not need to
    try {
      expect((await signWith(token)).statusCode).toBe(200)
    } finally {
      k8s.mode = 'up'
    }
    const victim = await createIdentityClient('short lived', 'cluster', 'system:serviceaccount:billing:batch')
    const batch = await k8sToken({ sub: 'system:serviceaccount:billing:batch' })
    expect((await signWith(batch)).statusCode).toBe(200)
    expect((await h.admin('DELETE', `/v1/admin/clients/${victim.id}`)).statusCode).toBe(200)
    await refused(batch, 'revoked client, token cached')
  })

  it('refuses a cached token once its issuer no longer accepts its audience', async () => {
    const token = await spiffeToken('ns/billing/sa/cron')
    expect((await signWith(token)).statusCode).toBe(200)
    expect((await h.admin('PATCH', '/v1/admin/issuers/spire', { audiences: ['other'] })).statusCode).toBe(200)
    await refused(token, 'issuer changed')
    expect((await h.admin('PATCH', '/v1/admin/issuers/spire', { audiences: ['signet'] })).statusCode).toBe(200)
    expect((await signWith(token)).statusCode).toBe(200)
  })

  it('an expired cached token is refused', async () => {
    const token = await k8sToken({ exp: seconds() + 100 })
    expect((await signWith(token)).statusCode).toBe(200)
    h.clock.advanceSeconds(161)
    await refused(token, 'expired after being cached')
  })

  it('audits admin actions of a workload client with its client and subject', async () => {
    await createIdentityClient('ops admin', 'cluster', 'system:serviceaccount:ops:admin', { scopes: ['admin'] })
    const token = await k8sToken({ sub: 'system:serviceaccount:ops:admin' })
    const created = await h.request('POST', '/v1/admin/keysets', { token, body: { name: 'workload-made' } })
    expect(created.statusCode, created.body).toBe(201)
    const events = (await h.admin('GET', '/v1/admin/audit?limit=1000')).json().events
    const event = events.find((e: { action: string; target: string }) => e.action === 'keyset.create' && e.target === 'workload-made')
    expect(event.actor).toContain('client:')
    expect(event.actor).toContain('system:serviceaccount:ops:admin')
  })

  it('counts accepted and refused workload tokens per issuer and reason', async () => {
    const families = parsePrometheus((await h.request('GET', '/metrics')).body)
    expect(sampleValue(families, 'signet_workload_auth_total', { issuer: 'cluster', result: 'accepted' })).toBeGreaterThan(0)
    expect(sampleValue(families, 'signet_workload_auth_total', { issuer: 'cluster', result: 'audience' })).toBeGreaterThan(0)
    expect(sampleValue(families, 'signet_workload_auth_total', { issuer: 'cluster', result: 'invalid_signature' })).toBeGreaterThan(0)
    expect(sampleValue(families, 'signet_workload_auth_total', { issuer: '', result: 'unknown_issuer' })).toBeGreaterThan(0)
    expect(sampleValue(families, 'signet_workload_auth_total', { issuer: 'spire', result: 'ambiguous_client' })).toBeGreaterThan(0)
  })

  it('no answer or log line holds a workload token, any part of its signature, or a private key', async () => {
    expect(h.logs.lines.length).toBeGreaterThan(0)
    await h.watchPrivateKeys()
    h.watch.assertClean()
  })
})

describe('a static JWK Set (a cluster whose issuer is not reachable)', () => {
  let h: Harness
  let key: IssuerKey

  beforeAll(async () => {
    h = await createHarness({ env: { SIGNET_AUTH_FAILURE_LIMIT: '0' } })
    key = await issuerKey('static-1', 'ES256')
    const created = await h.admin('POST', '/v1/admin/issuers', { name: 'private-cluster', issuer: 'https://kubernetes.default.svc.cluster.local', jwks: { keys: [key.publicJwk] }, audiences: ['signet'] })
    expect(created.statusCode, created.body).toBe(201)
    const client = await h.admin('POST', '/v1/admin/clients', { name: 'api', keysets: '*', scopes: ['sign'], identity: { issuer: 'private-cluster', subject: 'system:serviceaccount:billing:api' } })
    expect(client.statusCode).toBe(201)
  })
  afterAll(async () => {
    await h.close()
  })

  it('verifies against the stored keys and refuses unknown kids without fetching anything', async () => {
    const now = Math.floor(h.clock.now() / 1000)
    const sign = (k: IssuerKey) => new SignJWT(kubernetesClaims('https://kubernetes.default.svc.cluster.local', now)).setProtectedHeader({ alg: k.alg, kid: k.kid }).sign(k.pair.privateKey)
    expect((await h.request('POST', '/v1/sign', { token: await sign(key), body: { claims: {} } })).statusCode).toBe(200)
    expectProblem(await h.request('POST', '/v1/sign', { token: await sign(await issuerKey('static-2', 'ES256')), body: { claims: {} } }), 401, 'unauthorized')
  })
})
