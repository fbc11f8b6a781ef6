import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { StorageUnavailable } from '../../src/errors.js'
import type { LiveKeyset } from '../../src/keys/keystore.js'
import { nextRotationAt, SignetMetrics } from '../../src/metrics/registry.js'
import { instrumentStorage } from '../../src/metrics/storage.js'
import { SqliteStorage } from '../../src/storage/sqlite/index.js'
import type { Storage } from '../../src/storage/types.js'
import { createHarness, tempDir, type Harness } from '../helpers/harness.js'
import { parsePrometheus, sampleSum, sampleValue, type Family } from './prometheus.js'

/** A storage that answers storage_unavailable to everything while `state.broken`. */
function breakable(storage: Storage): { storage: Storage; state: { broken: boolean } } {
  const state = { broken: false }
  const proxy = new Proxy(storage, {
    get(target, property) {
      const value = Reflect.get(target, property, target)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) =>
        state.broken && property !== 'close'
          ? Promise.reject(new StorageUnavailable('injected outage'))
          : (value as (...a: unknown[]) => unknown).apply(target, args)
    },
  })
  return { storage: proxy, state }
}

describe('GET /metrics after a scripted sequence', () => {
  const dir = tempDir()
  const metrics = new SignetMetrics()
  const outage = breakable(new SqliteStorage(join(dir.path, 'signet.db')))
  let h: Harness
  let app: FastifyInstance
  let families: Map<string, Family>
  let exposition: string
  /** Everything the script saw that must never be a label: kids, tokens, jtis, claim values. */
  const forbiddenInLabels: string[] = []

  const call = async (method: string, url: string, init: { token?: string; body?: unknown; headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { ...init.headers }
    if (init.token) headers.authorization = `Bearer ${init.token}`
    if (init.body !== undefined) headers['content-type'] = 'application/json'
    const response = await app.inject({ method: method as 'GET', url, headers, ...(init.body !== undefined ? { payload: JSON.stringify(init.body) } : {}) })
    h.watch.record(response.body.replace(/signet_[A-Za-z0-9_-]{43}/g, '<token shown once>'))
    return response
  }
  const admin = (method: string, url: string, body?: unknown) => call(method, url, { token: h.adminToken, body })

  beforeAll(async () => {
    h = await createHarness({ storage: instrumentStorage(outage.storage, metrics), dir: dir.path })
    metrics.track(h.signet)
    app = await buildApp(h.signet, { metrics })
    await app.ready()

    expect((await admin('POST', '/v1/admin/keysets', { name: 'rsa', alg: 'RS256' })).statusCode).toBe(201)
    const billing = await h.createClient({ name: 'billing', keysets: '*', scopes: ['sign', 'verify'] })
    const reports = await h.createClient({ name: 'reports', keysets: ['default'], scopes: ['sign'] })

    // Signs: 3 + 2 single tokens on default, one batch of 4 on rsa.
    const tokens: string[] = []
    for (let i = 0; i < 3; i++) {
      const signed = await call('POST', '/v1/sign', { token: billing.token, body: { claims: { sub: `claim-marker-${i}` } } })
      expect(signed.statusCode).toBe(200)
      tokens.push(signed.json().token)
      forbiddenInLabels.push(signed.json().token, signed.json().kid, signed.json().jti, `claim-marker-${i}`)
    }
    const batch = await call('POST', '/v1/sign/batch', { token: billing.token, body: { keyset: 'rsa', items: [1, 2, 3, 4].map((n) => ({ claims: { n } })) } })
    expect(batch.statusCode).toBe(200)
    expect(batch.json().results).toHaveLength(4)
    for (let i = 0; i < 2; i++) expect((await call('POST', '/v1/sign', { token: reports.token, body: { claims: {} } })).statusCode).toBe(200)

    // Refused signs.
    expect((await call('POST', '/v1/sign', { token: reports.token, body: { keyset: 'rsa', claims: {} } })).statusCode).toBe(403)
    expect((await call('POST', '/v1/sign', { token: billing.token, body: { claims: { exp: 1 } } })).json().code).toBe('reserved_claim')
    for (const ghost of ['ghost-one', 'ghost-two']) {
      expect((await call('POST', '/v1/sign', { token: billing.token, body: { keyset: ghost, claims: {} } })).json().code).toBe('keyset_not_found')
    }
    expect((await call('POST', '/v1/sign', { token: 'signet_not-a-real-token', body: { claims: {} } })).statusCode).toBe(401)
    expect((await call('POST', '/v1/sign/batch', { token: billing.token, body: { items: [{ claims: {} }, { claims: { iat: 1 } }] } })).json().code).toBe('reserved_claim')

    // Verifies: two valid, one tampered, one expired, one without scope, one without token.
    for (const token of tokens.slice(0, 2)) expect((await call('POST', '/v1/verify', { token: billing.token, body: { token } })).json().valid).toBe(true)
    const [head, payload, signature] = tokens[2]!.split('.') as [string, string, string]
    const flipped = `${signature.slice(0, 10)}${signature[10] === 'A' ? 'B' : 'A'}${signature.slice(11)}`
    expect((await call('POST', '/v1/verify', { token: billing.token, body: { token: `${head}.${payload}.${flipped}` } })).json().code).toBe('invalid_signature')
    expect((await call('POST', '/v1/verify', { token: reports.token, body: { token: tokens[0] } })).statusCode).toBe(403)
    expect((await call('POST', '/v1/verify', { body: { token: tokens[0] } })).statusCode).toBe(401)
    h.clock.advanceSeconds(1000) // default ttl is 900 s
    expect((await call('POST', '/v1/verify', { token: billing.token, body: { token: tokens[0] } })).json().code).toBe('expired')

    // JWK Sets: two plain, one conditional (304), one other keyset, one unknown.
    const jwks = await call('GET', '/.well-known/jwks.json')
    await call('GET', '/.well-known/jwks.json')
    expect((await call('GET', '/.well-known/jwks.json', { headers: { 'if-none-match': String(jwks.headers.etag) } })).statusCode).toBe(304)
    expect((await call('GET', '/keysets/rsa/jwks.json')).statusCode).toBe(200)
    expect((await call('GET', '/keysets/ghost-three/jwks.json')).statusCode).toBe(404)

    // Rotations: default scheduled (a pending key), rsa immediate, then its old key revoked.
    const oldRsa = (await admin('GET', '/v1/admin/keysets/rsa')).json().activeKid as string
    forbiddenInLabels.push(oldRsa)
    expect((await admin('POST', '/v1/admin/keysets/default/rotate', { mode: 'scheduled' })).statusCode).toBe(201)
    expect((await admin('POST', '/v1/admin/keysets/rsa/rotate', { mode: 'immediate' })).statusCode).toBe(201)
    expect((await admin('POST', `/v1/admin/keys/${oldRsa}/revoke`, { reason: 'test' })).statusCode).toBe(200)

    // Storage out: an admin change and a poll fail, then it comes back.
    outage.state.broken = true
    expect((await admin('POST', '/v1/admin/keysets/default/rotate', { mode: 'scheduled' })).json().code).toBe('storage_unavailable')
    await h.signet.keystore.poll()
    outage.state.broken = false
    await h.signet.keystore.poll()

    const scraped = await call('GET', '/metrics')
    expect(scraped.statusCode).toBe(200)
    expect(scraped.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8')
    exposition = scraped.body
    families = parsePrometheus(exposition)
  })

  afterAll(async () => {
    await app?.close()
    await h?.close()
    dir.remove()
  })

  it('parses as Prometheus text, with the default process metrics', () => {
    expect(families.get('signet_sign_requests_total')?.type).toBe('counter')
    expect(families.get('signet_sign_duration_seconds')?.type).toBe('histogram')
    expect(families.get('signet_keys')?.type).toBe('gauge')
    expect(families.has('process_cpu_user_seconds_total')).toBe(true)
    expect(families.has('nodejs_heap_size_used_bytes')).toBe(true)
  })

  it('counts sign requests and tokens by keyset, alg, client and outcome', () => {
    const requests = (labels: Record<string, string>) => sampleSum(families, 'signet_sign_requests_total', labels)
    expect(requests({ endpoint: 'sign', keyset: 'default', alg: 'ES256', client: 'billing', outcome: 'ok' })).toBe(3)
    expect(requests({ endpoint: 'sign', keyset: 'default', alg: 'ES256', client: 'reports', outcome: 'ok' })).toBe(2)
    expect(requests({ endpoint: 'batch', keyset: 'rsa', alg: 'RS256', client: 'billing', outcome: 'ok' })).toBe(1)
    expect(requests({ endpoint: 'sign', keyset: 'rsa', alg: 'RS256', client: 'reports', outcome: 'forbidden' })).toBe(1)
    expect(requests({ endpoint: 'sign', keyset: 'default', client: 'billing', outcome: 'reserved_claim' })).toBe(1)
    expect(requests({ endpoint: 'batch', keyset: 'default', client: 'billing', outcome: 'reserved_claim' })).toBe(1)
    // A keyset that does not exist is never a label value.
    expect(requests({ endpoint: 'sign', keyset: '', alg: '', client: 'billing', outcome: 'keyset_not_found' })).toBe(2)
    expect(requests({ endpoint: 'sign', client: '', outcome: 'unauthorized' })).toBe(1)
    expect(requests({})).toBe(3 + 2 + 1 + 1 + 1 + 1 + 2 + 1)

    expect(sampleValue(families, 'signet_tokens_signed_total', { keyset: 'default', alg: 'ES256', client: 'billing' })).toBe(3)
    expect(sampleValue(families, 'signet_tokens_signed_total', { keyset: 'default', alg: 'ES256', client: 'reports' })).toBe(2)
    expect(sampleValue(families, 'signet_tokens_signed_total', { keyset: 'rsa', alg: 'RS256', client: 'billing' })).toBe(4)
    expect(sampleSum(families, 'signet_tokens_signed_total')).toBe(9)
  })

  it('has a sign latency histogram of the successful requests', () => {
    expect(sampleValue(families, 'signet_sign_duration_seconds_count', { endpoint: 'sign' })).toBe(5)
    expect(sampleValue(families, 'signet_sign_duration_seconds_count', { endpoint: 'batch' })).toBe(1)
    expect(sampleValue(families, 'signet_sign_duration_seconds_bucket', { endpoint: 'sign', le: '+Inf' })).toBe(5)
    expect(sampleValue(families, 'signet_sign_duration_seconds_sum', { endpoint: 'sign' })).toBeGreaterThan(0)
    const buckets = families.get('signet_sign_duration_seconds')!.samples.filter((s) => s.name.endsWith('_bucket') && s.labels.endpoint === 'sign')
    const counts = buckets.map((s) => s.value)
    expect(counts).toEqual([...counts].sort((a, b) => a - b)) // cumulative
  })

  it('counts verify outcomes by code', () => {
    expect(sampleValue(families, 'signet_verify_requests_total', { outcome: 'valid' })).toBe(2)
    expect(sampleValue(families, 'signet_verify_requests_total', { outcome: 'invalid_signature' })).toBe(1)
    expect(sampleValue(families, 'signet_verify_requests_total', { outcome: 'expired' })).toBe(1)
    expect(sampleValue(families, 'signet_verify_requests_total', { outcome: 'forbidden' })).toBe(1)
    expect(sampleValue(families, 'signet_verify_requests_total', { outcome: 'unauthorized' })).toBe(1)
    expect(sampleSum(families, 'signet_verify_requests_total')).toBe(6)
  })

  it('counts JWKS requests and the 304s among them', () => {
    expect(sampleValue(families, 'signet_jwks_requests_total', { keyset: 'default', status: '200' })).toBe(2)
    expect(sampleValue(families, 'signet_jwks_requests_total', { keyset: 'default', status: '304' })).toBe(1)
    expect(sampleValue(families, 'signet_jwks_requests_total', { keyset: 'rsa', status: '200' })).toBe(1)
    expect(sampleValue(families, 'signet_jwks_requests_total', { keyset: '', status: '404' })).toBe(1)
  })

  it('counts auth failures and storage errors', () => {
    expect(sampleValue(families, 'signet_auth_failures_total', { code: 'unauthorized' })).toBe(2)
    expect(sampleValue(families, 'signet_auth_failures_total', { code: 'forbidden' })).toBe(2)
    expect(sampleSum(families, 'signet_auth_failures_total')).toBe(4)
    expect(sampleValue(families, 'signet_storage_errors_total', { operation: 'transaction' })).toBe(1)
    expect(sampleValue(families, 'signet_storage_errors_total', { operation: 'generation' })).toBe(1)
    expect(sampleSum(families, 'signet_storage_errors_total')).toBe(2)
  })

  it('gives the number of keys per keyset and state', () => {
    const keys = (keyset: string, state: string) => sampleValue(families, 'signet_keys', { keyset, state })
    expect([keys('default', 'pending'), keys('default', 'active'), keys('default', 'retired'), keys('default', 'revoked')]).toEqual([1, 1, 0, 0])
    expect([keys('rsa', 'pending'), keys('rsa', 'active'), keys('rsa', 'retired'), keys('rsa', 'revoked'), keys('rsa', 'destroyed')]).toEqual([0, 1, 0, 1, 0])
  })

  it('gives per keyset the age of the active key and the time to the next rotation', () => {
    // default: active since the start, 1000 s ago; its pending key activates after prepublish (3600 s).
    expect(sampleValue(families, 'signet_active_key_age_seconds', { keyset: 'default' })).toBe(1000)
    expect(sampleValue(families, 'signet_next_rotation_seconds', { keyset: 'default' })).toBe(3600)
    // rsa: rotated just now; the next automatic rotation starts rotationPeriod - prepublish later.
    expect(sampleValue(families, 'signet_active_key_age_seconds', { keyset: 'rsa' })).toBe(0)
    expect(sampleValue(families, 'signet_next_rotation_seconds', { keyset: 'rsa' })).toBe(2_592_000 - 3600)
    expect(sampleValue(families, 'signet_ready')).toBe(1)
  })

  it('moves the gauges with the clock, computed at scrape time', async () => {
    h.clock.advanceSeconds(600)
    const later = parsePrometheus((await call('GET', '/metrics')).body)
    expect(sampleValue(later, 'signet_active_key_age_seconds', { keyset: 'default' })).toBe(1600)
    expect(sampleValue(later, 'signet_next_rotation_seconds', { keyset: 'default' })).toBe(3000)
  })

  it('never uses a kid, token, jti, claim value or unknown keyset name as a label value', () => {
    const labelValues = [...families.values()].flatMap((family) => family.samples.flatMap((sample) => Object.values(sample.labels)))
    for (const secret of forbiddenInLabels) {
      expect(secret.length).toBeGreaterThan(0)
      expect(exposition).not.toContain(secret)
    }
    expect(exposition).not.toContain('ghost')
    expect(new Set(labelValues).size).toBeLessThan(80)
    h.watch.assertClean()
  })
})

describe('signet_next_rotation_seconds follows the scheduler\'s rule', () => {
  const live = (activatedAt: number | null, pending: number | null = null) => ({
    keyset: { rotationPeriod: 1000 },
    activeKid: 'a',
    published: [
      { kid: 'a', state: 'active', createdAt: 50_000, activatedAt, activatesAt: null },
      ...(pending === null ? [] : [{ kid: 'p', state: 'pending', createdAt: 60_000, activatedAt: null, activatesAt: pending }]),
    ],
  }) as unknown as LiveKeyset

  it('is when the next key is asked for, prepublish before rotation is due; a pending key\'s activation first', () => {
    expect(nextRotationAt(live(100_000), 100)).toBe(1_000_000)
    expect(nextRotationAt(live(100_000, 300_000), 100)).toBe(300_000)
  })

  it('counts an active key with no activatedAt from its createdAt', () => {
    expect(nextRotationAt(live(null), 100)).toBe(950_000)
  })
})
