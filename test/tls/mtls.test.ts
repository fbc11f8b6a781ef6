import { writeFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SignetClient } from '../../src/client/index.js'
import { loadConfig } from '../../src/config.js'
import { ConfigError } from '../../src/errors.js'
import { startServer } from '../../src/server.js'
import { captureLogs, createHarness, newMasterKey, tempDir } from '../helpers/harness.js'
import { startLiveSignet, type LiveSignet } from '../helpers/live-server.js'
import { LeakWatch } from '../helpers/secrets.js'
import { issue, makeCa, type Issued } from './certs.js'

/**
 * How a refused handshake looks to the client: under TLS 1.3 the server's alert
 * (certificate required, unknown CA) may arrive as the alert or as a closed socket.
 */
const REFUSED = /alert certificate required|alert unknown ca|alert bad certificate|socket hang up|ECONNRESET/

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** One HTTPS request on a fresh connection (no agent), trusting `ca`, presenting `client` if given. */
function call(url: string, options: { ca: string; client?: Issued; method?: string; token?: string; body?: unknown }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body)
    const headers: Record<string, string> = {}
    if (options.token) headers.authorization = `Bearer ${options.token}`
    if (payload !== undefined) headers['content-type'] = 'application/json'
    const req = httpsRequest(url, {
      method: options.method ?? 'GET',
      headers,
      ca: options.ca,
      ...(options.client ? { cert: options.client.certPem, key: options.client.keyPem } : {}),
      agent: false,
      timeout: 10_000,
    }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.end(payload)
  })
}

describe('HTTPS with a client CA (mutual TLS)', () => {
  const dir = tempDir()
  const watch = new LeakWatch()
  let server: LiveSignet
  let adminToken: string
  let ca: Issued
  let otherCa: Issued
  let billingCert: Issued
  let intruderCert: Issued
  let rogueCert: Issued
  let unboundCert: Issued
  let boundToken: string
  let unboundToken: string

  const file = (name: string, content: string) => {
    const path = join(dir.path, name)
    writeFileSync(path, content, { mode: 0o600 })
    return path
  }

  beforeAll(async () => {
    ca = makeCa('Signet test client CA')
    otherCa = makeCa('Some other CA')
    const server_ = issue(ca, [{ shortName: 'CN', value: 'localhost' }], 'server')
    billingCert = issue(ca, [{ shortName: 'O', value: 'Acme' }, { shortName: 'CN', value: 'billing-api' }], 'client')
    intruderCert = issue(ca, [{ shortName: 'O', value: 'Acme' }, { shortName: 'CN', value: 'reports-api' }], 'client')
    unboundCert = issue(ca, [{ shortName: 'CN', value: 'ops' }], 'client')
    // Same subject as billing's, from a CA the server does not trust.
    rogueCert = issue(otherCa, [{ shortName: 'O', value: 'Acme' }, { shortName: 'CN', value: 'billing-api' }], 'client')
    for (const issued of [server_, billingCert, intruderCert, unboundCert, rogueCert, ca, otherCa]) watch.secret('a TLS private key', issued.keyPem.split('\n')[1]!)

    server = await startLiveSignet({
      SIGNET_HOST: '127.0.0.1',
      SIGNET_PUBLIC_PORT: '0',
      SIGNET_TLS_CERT_FILE: file('server.crt', server_.certPem),
      SIGNET_TLS_KEY_FILE: file('server.key', server_.keyPem),
      SIGNET_TLS_CLIENT_CA_FILE: file('client-ca.crt', ca.certPem),
    }, { watch, dir: dir.path })
    adminToken = server.adminToken
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
    expect(server.publicUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)

    // The binding is set through the admin API (over mTLS: any certificate of the CA, then the admin token).
    const bound = await call(`${server.url}/v1/admin/clients`, {
      ca: ca.certPem, client: unboundCert, method: 'POST', token: adminToken,
      body: { name: 'billing', keysets: '*', scopes: ['sign', 'verify'], certificateSubject: 'CN=billing-api, O=Acme' },
    })
    expect(bound.status, bound.body).toBe(201)
    boundToken = watch.secret('the bound client token', JSON.parse(bound.body).token)
    expect(JSON.parse(bound.body).certificateSubject).toBe('CN=billing-api,O=Acme')
    const unbound = await call(`${server.url}/v1/admin/clients`, {
      ca: ca.certPem, client: unboundCert, method: 'POST', token: adminToken,
      body: { name: 'ops', keysets: '*', scopes: ['sign'] },
    })
    expect(unbound.status).toBe(201)
    unboundToken = watch.secret('the unbound client token', JSON.parse(unbound.body).token)
  })

  afterAll(async () => {
    await server?.close()
    watch.assertClean()
    dir.remove()
  })

  const sign = (client: Issued | undefined, token: string) =>
    call(`${server.url}/v1/sign`, { ca: ca.certPem, ...(client ? { client } : {}), method: 'POST', token, body: { claims: { sub: 'user-1' } } })

  it('refuses a client without a certificate during the handshake', async () => {
    await expect(sign(undefined, boundToken)).rejects.toThrow(REFUSED)
    await expect(call(`${server.url}/healthz`, { ca: ca.certPem })).rejects.toThrow(REFUSED)
  })

  it('refuses a client whose certificate comes from another CA, even with the bound subject', async () => {
    await expect(sign(rogueCert, boundToken)).rejects.toThrow(REFUSED)
    // The same subject from the trusted CA gets through the handshake (and is refused only without a token).
    expect((await sign(billingCert, 'signet_wrong')).status).toBe(401)
  })

  it('answers 403 when the certificate subject does not match the client\'s binding', async () => {
    const answer = await sign(intruderCert, boundToken)
    expect(answer.status).toBe(403)
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(JSON.parse(answer.body)).toMatchObject({ code: 'forbidden', status: 403 })
    expect(answer.body).not.toContain('billing-api') // the binding is not disclosed
  })

  it('signs with the right certificate and the right token; the token verifies against the public JWKS', async () => {
    const answer = await sign(billingCert, boundToken)
    expect(answer.status, answer.body).toBe(200)
    const { token } = JSON.parse(answer.body)
    watch.secret('a signed token', token)
    // The public listener asks for no client certificate.
    const jwks = await call(`${server.publicUrl}/.well-known/jwks.json`, { ca: ca.certPem })
    expect(jwks.status).toBe(200)
    const { payload } = await jwtVerify(token, createLocalJWKSet(JSON.parse(jwks.body)), { currentDate: new Date() })
    expect(payload.sub).toBe('user-1')
  })

  it('works through SignetClient with its tls option, and fails there without the bound certificate', async () => {
    const good = new SignetClient({ url: server.url, token: boundToken, tls: { ca: ca.certPem, cert: billingCert.certPem, key: billingCert.keyPem } })
    const wrong = new SignetClient({ url: server.url, token: boundToken, retries: 0, tls: { ca: ca.certPem, cert: intruderCert.certPem, key: intruderCert.keyPem } })
    try {
      const signed = await good.sign({ sub: 'via-client' })
      watch.secret('a token signed through the client', signed.token)
      expect(signed.keyset).toBe('default')
      await expect(wrong.sign({ sub: 'x' })).rejects.toMatchObject({ status: 403, code: 'forbidden' })
    } finally {
      await good.close()
      await wrong.close()
    }
  })

  it('lets an unbound client sign with any certificate of the CA', async () => {
    expect((await sign(unboundCert, unboundToken)).status).toBe(200)
    expect((await sign(intruderCert, unboundToken)).status).toBe(200)
  })

  it('still needs the token: the right certificate alone gets 401', async () => {
    expect((await sign(billingCert, 'signet_wrong')).status).toBe(401)
  })

  it('counts the refused binding as an auth failure in /metrics', async () => {
    const forbidden = async () => {
      const metrics = await call(`${server.url}/metrics`, { ca: ca.certPem, client: unboundCert })
      expect(metrics.status).toBe(200)
      return Number(/^signet_auth_failures_total\{code="forbidden"\} (\d+)$/m.exec(metrics.body)?.[1] ?? 0)
    }
    const before = await forbidden()
    expect((await sign(intruderCert, boundToken)).status).toBe(403)
    expect(await forbidden()).toBe(before + 1)
  })

  it('records the binding in the audit log and in the client list', async () => {
    const clients = await call(`${server.url}/v1/admin/clients`, { ca: ca.certPem, client: unboundCert, token: adminToken })
    const listed = JSON.parse(clients.body).clients as { name: string; certificateSubject?: string }[]
    expect(listed.find((c) => c.name === 'billing')?.certificateSubject).toBe('CN=billing-api,O=Acme')
    expect(listed.find((c) => c.name === 'ops')).not.toHaveProperty('certificateSubject')
    const audit = JSON.parse((await call(`${server.url}/v1/admin/audit?limit=1000`, { ca: ca.certPem, client: unboundCert, token: adminToken })).body)
    const created = audit.events.find((e: { action: string; details: { name?: string } }) => e.action === 'client.create' && e.details.name === 'billing')
    expect(created.details.certificateSubject).toBe('CN=billing-api,O=Acme')
  })
})

describe('certificate binding without mutual TLS', () => {
  it('refuses a bound client\'s token over a connection without its certificate (403), and a malformed binding (400)', async () => {
    const h = await createHarness()
    try {
      const bound = await h.createClient({ name: 'bound', certificateSubject: 'CN=billing-api' })
      const answer = await h.request('POST', '/v1/sign', { token: bound.token, body: { claims: {} } })
      expect(answer.statusCode).toBe(403)
      expect(answer.json().detail).toMatch(/mutual TLS/)
      const before = (await h.admin('GET', '/v1/admin/clients')).json().clients.length
      for (const bad of ['', 'no equals sign', 'CN=', '=value', 42, `CN=${'x'.repeat(1100)}`, 'CN=a\\']) {
        const refused = await h.admin('POST', '/v1/admin/clients', { name: 'bad', keysets: '*', scopes: ['sign'], certificateSubject: bad })
        expect(refused.statusCode, String(bad)).toBe(400)
        expect(refused.json().code).toBe('invalid_request')
      }
      expect((await h.admin('GET', '/v1/admin/clients')).json().clients.length).toBe(before)
      h.watch.assertClean()
    } finally {
      await h.close()
    }
  })
})

describe('TLS configuration errors', () => {
  it('stop the start with a message naming the variable, before storage is touched', async () => {
    const dir = tempDir()
    try {
      const ca = makeCa('CA')
      const one = issue(ca, [{ shortName: 'CN', value: 'localhost' }], 'server')
      const two = issue(ca, [{ shortName: 'CN', value: 'localhost' }], 'server')
      const write = (name: string, content: string) => {
        const path = join(dir.path, name)
        writeFileSync(path, content)
        return path
      }
      const base = { SIGNET_MASTER_KEY: newMasterKey(), SIGNET_DB: join(dir.path, 'signet.db'), SIGNET_PORT: '0' }
      const start = (env: Record<string, string>) => startServer(loadConfig({ ...base, ...env }), captureLogs().logger)

      await expect(start({ SIGNET_TLS_CERT_FILE: join(dir.path, 'missing.crt'), SIGNET_TLS_KEY_FILE: write('a.key', one.keyPem) }))
        .rejects.toThrow(/^SIGNET_TLS_CERT_FILE: cannot read the file it names \(ENOENT\)$/)
      await expect(start({ SIGNET_TLS_CERT_FILE: write('a.crt', one.certPem), SIGNET_TLS_KEY_FILE: write('b.key', two.keyPem) }))
        .rejects.toThrow(ConfigError)
      await expect(start({ SIGNET_TLS_CERT_FILE: write('a.crt', one.certPem), SIGNET_TLS_KEY_FILE: write('b.key', two.keyPem) }))
        .rejects.toThrow(/SIGNET_TLS_CERT_FILE and SIGNET_TLS_KEY_FILE/)
      await expect(start({ SIGNET_TLS_CERT_FILE: write('a.crt', one.certPem), SIGNET_TLS_KEY_FILE: write('a.key', one.keyPem), SIGNET_TLS_CLIENT_CA_FILE: write('ca.crt', 'not a certificate') }))
        .rejects.toThrow(/SIGNET_TLS_CLIENT_CA_FILE/)
      expect(() => loadConfig({ ...base, SIGNET_TLS_CLIENT_CA_FILE: write('ca2.crt', ca.certPem) })).toThrow(/SIGNET_TLS_CLIENT_CA_FILE needs/)
      // Nothing was created.
      const { existsSync } = await import('node:fs')
      expect(existsSync(join(dir.path, 'signet.db'))).toBe(false)
    } finally {
      dir.remove()
    }
  })
})
