import type { FastifyInstance } from 'fastify'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { ManualClock, type Clock } from '../../src/clock.js'
import { loadConfig } from '../../src/config.js'
import { Signet } from '../../src/runtime.js'
import { PostgresStorage } from '../../src/storage/postgres/index.js'
import { captureLogs, createHarness, newAdminToken, newMasterKey, type Harness } from '../helpers/harness.js'
import { createTestSchema, pgBaseUrl, PG_SKIP, type TestSchema } from '../storage/postgres-fixture.js'
import { TcpProxy } from './proxy.js'
import { within } from '../helpers/wait.js'


interface Replica {
  signet: Signet
  app: FastifyInstance
  request(method: string, url: string, token?: string, body?: unknown): Promise<{ status: number; json: any; body: string }>
  close(): Promise<void>
}

/** A Signet on the shared schema with its HTTP app, as `signet serve` builds it, without listening. */
async function openReplica(url: string, secrets: { masterKey: string; adminToken: string }, options: { clock?: Clock; pollIntervalMs?: number; env?: Record<string, string> } = {}): Promise<Replica> {
  const config = loadConfig({ SIGNET_MASTER_KEY: secrets.masterKey, SIGNET_ADMIN_TOKEN: secrets.adminToken, SIGNET_DATABASE_URL: url, ...options.env })
  const signet = await Signet.open({
    config,
    clock: options.clock,
    logger: captureLogs().logger,
    storage: new PostgresStorage({ url, poolSize: 4 }),
    createDefaultKeyset: true,
    pollIntervalMs: options.pollIntervalMs,
  })
  const app = await buildApp(signet)
  await app.ready()
  return {
    signet,
    app,
    async request(method, path, token, body) {
      const response = await app.inject({
        method: method as 'GET',
        url: path,
        headers: token ? { authorization: `Bearer ${token}` } : {},
        ...(body !== undefined ? { payload: body as object } : {}),
      })
      let json: unknown = null
      try {
        json = response.json()
      } catch {
        // not JSON (304, empty)
      }
      return { status: response.statusCode, json, body: response.body }
    },
    async close() {
      await app.close()
      await signet.close()
    },
  }
}

const suite = pgBaseUrl ? describe : describe.skip

suite('two replicas on one PostgreSQL schema (in process)', () => {
  let db: TestSchema
  const secrets = { masterKey: newMasterKey(), adminToken: newAdminToken() }
  const replicas: Replica[] = []

  beforeAll(async () => {
    db = await createTestSchema('signet_inproc')
  })
  afterEach(async () => {
    for (const replica of replicas.splice(0)) await replica.close()
    await db.query(`DROP SCHEMA ${db.schema} CASCADE; CREATE SCHEMA ${db.schema}`)
  })
  afterAll(async () => {
    await db?.drop()
  })

  const open = async (options: Parameters<typeof openReplica>[2] = {}) => {
    const replica = await openReplica(db.url, secrets, options)
    replicas.push(replica)
    return replica
  }

  it('sees changes made through the other within 1 s by notification alone (periodic poll switched off)', async () => {
    const a = await open()
    // b polls once an hour: only a NOTIFY can bring it a change in time.
    const b = await open({ pollIntervalMs: 3_600_000 })
    b.signet.start()
    await within(2000, async () => b.signet.storage.schedulerLease!().then(() => true)) // b's session is LISTENing
    const jwksOf = async (r: Replica) => (await r.request('GET', '/.well-known/jwks.json')).json.keys.map((k: { kid: string }) => k.kid) as string[]

    const rotated = await a.request('POST', '/v1/admin/keysets/default/rotate', secrets.adminToken, { mode: 'scheduled' })
    expect(rotated.status).toBe(201)
    const newKid = rotated.json.kid as string
    expect(await within(1000, async () => (await jwksOf(b)).includes(newKid))).toBeLessThan(1000)

    const created = await a.request('POST', '/v1/admin/clients', secrets.adminToken, { name: 'app', keysets: '*', scopes: ['sign'] })
    expect(created.status).toBe(201)
    const token = created.json.token as string
    await within(1000, async () => (await b.request('POST', '/v1/sign', token, { claims: { sub: 'u' } })).status === 200)

    // A policy change (PATCH) reaches b the same way: then b refuses a token without aud.
    expect((await a.request('PATCH', `/v1/admin/clients/${created.json.id}`, secrets.adminToken, { audiences: ['api'] })).status).toBe(200)
    await within(1000, async () => (await b.request('POST', '/v1/sign', token, { claims: { sub: 'u' } })).status === 400)
    expect((await b.request('POST', '/v1/sign', token, { claims: { sub: 'u' } })).json.code).toBe('missing_claim')
    expect((await b.request('POST', '/v1/sign', token, { claims: { sub: 'u', aud: 'api' } })).status).toBe(200)

    expect((await a.request('DELETE', `/v1/admin/clients/${created.json.id}`, secrets.adminToken)).status).toBe(200)
    await within(1000, async () => (await b.request('POST', '/v1/sign', token, { claims: { sub: 'u' } })).status === 401)

    expect((await a.request('POST', `/v1/admin/keys/${newKid}/revoke`, secrets.adminToken, { reason: 'test' })).status).toBe(200)
    await within(1000, async () => !(await jwksOf(b)).includes(newKid))
  })

  it('never ends with two active keys when both replicas rotate and revoke at the same time', async () => {
    const a = await open()
    const b = await open()
    const rotations = Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).request('POST', '/v1/admin/keysets/default/rotate', secrets.adminToken, { mode: 'immediate' }))
    const results = await Promise.all(rotations)
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(201))
    const active = await db.query<{ kid: string }>("SELECT kid FROM keys WHERE keyset = 'default' AND state = 'active'")
    expect(active.rows).toHaveLength(1)

    // Both replicas revoke the active key at once: one revokes and activates a
    // replacement, the other re-reads inside its transaction and gets 409.
    const kid = active.rows[0]!.kid
    const revokes = await Promise.all([a, b].map((r) => r.request('POST', `/v1/admin/keys/${kid}/revoke`, secrets.adminToken, { reason: 'race' })))
    expect(revokes.map((r) => r.status).sort()).toEqual([200, 409])
    const after = await db.query<{ state: string; n: string }>("SELECT state, count(*) AS n FROM keys WHERE keyset = 'default' GROUP BY state ORDER BY state")
    expect(Object.fromEntries(after.rows.map((r) => [r.state, Number(r.n)]))).toEqual({ active: 1, retired: 8, revoked: 1 })
  })

  it('makes each scheduled change once when two schedulers tick at the same instant', async () => {
    const clock = new ManualClock()
    const a = await open({ clock })
    const b = await open({ clock })
    expect((await a.request('POST', '/v1/admin/keysets', secrets.adminToken, { name: 'fast', rotationPeriod: 100, prepublish: 10, maxTtl: 60 })).status).toBe(201)
    await b.signet.keystore.poll()
    const countStates = async () => {
      const states = await db.query<{ state: string; n: string }>("SELECT state, count(*) AS n FROM keys WHERE keyset = 'fast' GROUP BY state")
      return Object.fromEntries(states.rows.map((r) => [r.state, Number(r.n)])) as Record<string, number>
    }
    for (let period = 0; period < 5; period++) {
      clock.advanceSeconds(91) // the next key is due to be made
      await Promise.all([a.signet.tick(), b.signet.tick(), a.signet.tick(), b.signet.tick()])
      expect(await countStates()).toMatchObject({ active: 1, pending: 1 })
      clock.advanceSeconds(10) // and now to activate
      await Promise.all([a.signet.tick(), b.signet.tick(), a.signet.tick(), b.signet.tick()])
      const after = await countStates()
      expect(after.active).toBe(1)
      expect(after.pending ?? 0).toBe(0)
    }
    const keys = await db.query<{ n: string }>("SELECT count(*) AS n FROM keys WHERE keyset = 'fast'")
    expect(Number(keys.rows[0]!.n)).toBe(6)
    // The audit log shows each rotation and each state change once.
    const events = (await a.signet.storage.listAudit(0, 1000)).filter((e) => e.details.keyset === 'fast' && e.actor === 'scheduler')
    expect(events.filter((e) => e.action === 'key.rotate')).toHaveLength(5)
    const transitions = events.filter((e) => e.action === 'key.state').map((e) => `${e.target}>${String(e.details.to)}`)
    expect(new Set(transitions).size).toBe(transitions.length)
  })
})

suite('PostgreSQL outage (in process, manual clock)', () => {
  let db: TestSchema
  let proxy: TcpProxy
  let h: Harness
  let token: string

  beforeAll(async () => {
    db = await createTestSchema('signet_outage_inproc')
    proxy = new TcpProxy(db.url)
    await proxy.listen()
    const url = proxy.route(db.url)
    h = await createHarness({
      storage: new PostgresStorage({ url, timeoutMs: 1000 }),
      env: { SIGNET_DATABASE_URL: url, SIGNET_STORAGE_OUTAGE_GRACE: '60' },
    })
    token = (await h.createClient({ scopes: ['sign', 'verify'] })).token
    h.signet.start()
  })
  afterAll(async () => {
    await h?.close()
    await proxy?.close()
    await db?.drop()
  })

  const sign = () => h.request('POST', '/v1/sign', { token, body: { claims: { sub: 'u' } } })

  it('signs from memory within the grace, stops after it, and recovers by itself when the database is back', async () => {
    expect((await h.request('GET', '/readyz')).statusCode).toBe(200)
    await proxy.cut()
    await within(5000, async () => (await h.request('GET', '/readyz')).statusCode === 503)

    const ready = (await h.request('GET', '/readyz')).json()
    expect(ready).toMatchObject({ status: 503, code: 'storage_unavailable' })
    expect(ready.detail).toMatch(/signing continues from memory until/)
    expect((await sign()).statusCode).toBe(200)
    expect((await h.request('GET', '/.well-known/jwks.json')).statusCode).toBe(200)
    const write = await h.admin('POST', '/v1/admin/keysets/default/rotate', { mode: 'immediate' })
    expect(write.statusCode).toBe(503)
    expect(write.headers['content-type']).toMatch(/application\/problem\+json/)
    expect(write.json()).toMatchObject({ code: 'storage_unavailable', status: 503 })
    expect(write.body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|postgres/i)
    expect((await h.admin('POST', '/v1/admin/clients', { name: 'x', keysets: '*', scopes: ['sign'] })).statusCode).toBe(503)

    // Past the grace, a revocation made elsewhere could have been missed: signing stops.
    h.clock.advanceSeconds(61)
    const refused = await sign()
    expect(refused.statusCode).toBe(503)
    expect(refused.json()).toMatchObject({ code: 'storage_unavailable' })
    expect((await h.request('GET', '/readyz')).json().detail).toMatch(/signing stopped/)
    expect((await h.request('GET', '/.well-known/jwks.json')).statusCode).toBe(200)

    await proxy.restore()
    await within(5000, async () => (await h.request('GET', '/readyz')).statusCode === 200)
    expect((await sign()).statusCode).toBe(200)
    expect((await h.admin('POST', '/v1/admin/keysets/default/rotate', { mode: 'immediate' })).statusCode).toBe(201)
    // The rotation that failed during the outage left nothing behind.
    const keys = await db.query<{ n: string }>("SELECT count(*) AS n FROM keys WHERE keyset = 'default'")
    expect(Number(keys.rows[0]!.n)).toBe(2)
    await h.watchPrivateKeys()
    h.watch.assertClean()
  })
})

if (!pgBaseUrl) {
  describe('replicas on PostgreSQL (in process)', () => {
    it.skip(PG_SKIP, () => {})
  })
}
