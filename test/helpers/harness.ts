import { join } from 'node:path'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildApp } from '../../src/app.js'
import { ManualClock, type Clock } from '../../src/clock.js'
import { loadConfig, type Config } from '../../src/config.js'
import { SignetMetrics } from '../../src/metrics/registry.js'
import { Signet, type SignetOptions } from '../../src/runtime.js'
import type { Storage } from '../../src/storage/types.js'
import { listenOnLoopback } from './live-server.js'
import { captureLogs } from './logs.js'
import { LeakWatch, watchPrivateKey } from './secrets.js'
import { newAdminToken, newMasterKey, tempDir } from './temp.js'

export { captureLogs, newAdminToken, newMasterKey, tempDir }

export interface HarnessOptions {
  env?: Record<string, string>
  clock?: Clock
  storage?: Storage
  /** Reuse a directory (a restart on the same database). */
  dir?: string
  masterKey?: string
  adminToken?: string
  createDefaultKeyset?: boolean
  watch?: LeakWatch
  backends?: SignetOptions['backends']
}

export interface InjectOptions {
  token?: string
  body?: unknown
  headers?: Record<string, string>
  /** Raw payload (string or Buffer), sent as is. */
  payload?: string | Buffer
}

export type Harness = Awaited<ReturnType<typeof createHarness>>

/**
 * Builds a Signet with a temporary SQLite database, a manual clock, captured logs
 * and a leak watch, plus helpers to call the API through inject().
 */
export async function createHarness(options: HarnessOptions = {}) {
  const watch = options.watch ?? new LeakWatch()
  const dir = options.dir ? { path: options.dir, remove: () => {} } : tempDir()
  const masterKey = watch.secret('the master key', options.masterKey ?? newMasterKey())
  watch.secret('the master key (hex)', Buffer.from(masterKey, 'base64').toString('hex'))
  const adminToken = watch.secret('the admin token', options.adminToken ?? newAdminToken())
  const clock = options.clock ?? new ManualClock()
  const logs = captureLogs(watch)
  const config: Config = loadConfig({
    // An HSM master key (SIGNET_MASTER_KEY_PKCS11 in options.env) replaces the software one.
    ...(options.env?.SIGNET_MASTER_KEY_PKCS11 === undefined ? { SIGNET_MASTER_KEY: masterKey } : {}),
    SIGNET_ADMIN_TOKEN: adminToken,
    SIGNET_DB: join(dir.path, 'signet.db'),
    SIGNET_PORT: '0',
    ...options.env,
  })
  const signet = await Signet.open({
    config,
    clock,
    logger: logs.logger,
    storage: options.storage,
    backends: options.backends,
    createDefaultKeyset: options.createDefaultKeyset ?? true,
  })
  // Without prom-client's process metrics: each set leaves a GC observer and an
  // event-loop monitor running for the rest of the process, and a vitest worker runs
  // many files (vitest.config.ts, isolate: false). test/metrics checks them on its own app.
  const app: FastifyInstance = await buildApp(signet, { metrics: new SignetMetrics({ defaultMetrics: false }).track(signet) })
  await app.ready()

  async function request(method: string, url: string, init: InjectOptions = {}, shownOnce?: (body: string) => string): Promise<LightMyRequestResponse> {
    const headers: Record<string, string> = { ...init.headers }
    if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`
    const response = await app.inject({
      method: method as 'GET',
      url,
      headers,
      ...(init.payload !== undefined ? { payload: init.payload } : init.body !== undefined ? { payload: JSON.stringify(init.body), headers: { 'content-type': 'application/json', ...headers } } : {}),
    })
    // The one answer allowed to hold a secret (a new client's token) is recorded without it.
    watch.record(shownOnce ? shownOnce(response.body) : response.body)
    watch.record(JSON.stringify(response.headers))
    return response
  }

  const admin = (method: string, url: string, body?: unknown) => request(method, url, { token: adminToken, body })

  /** Creates a client through the API and returns its token. */
  async function createClient(fields: Record<string, unknown> = {}): Promise<{ id: string; token: string }> {
    const response = await request('POST', '/v1/admin/clients', { token: adminToken, body: { name: 'test client', keysets: '*', scopes: ['sign', 'verify'], ...fields } }, (body) => body.replace(/signet_[A-Za-z0-9_-]+/g, '<token shown once>'))
    if (response.statusCode !== 201) throw new Error(`client creation failed: ${response.body}`)
    const { id, token } = response.json()
    watch.secret(`the token of client ${id}`, token)
    return { id, token }
  }

  async function createKeyset(fields: Record<string, unknown>) {
    const response = await admin('POST', '/v1/admin/keysets', fields)
    if (response.statusCode !== 201) throw new Error(`keyset creation failed: ${response.body}`)
    return response.json()
  }

  /** Registers every stored private key's secret members with the leak watch. */
  async function watchPrivateKeys(): Promise<void> {
    const snapshot = await signet.storage.snapshot()
    const mk = config.masterKey!
    for (const key of snapshot.keys) if (key.privateKey) watchPrivateKey(watch, mk, { ...key, privateKey: key.privateKey })
  }

  /** Puts this harness's app (inject and manual clock included) on a free loopback port, for clients that need a URL. */
  const listen = (): Promise<string> => listenOnLoopback(app)

  async function close(): Promise<void> {
    await app.close()
    await signet.close()
    dir.remove()
  }

  return { signet, app, clock: clock as ManualClock, config, dir: dir.path, logs, watch, adminToken, masterKey, request, admin, createClient, createKeyset, watchPrivateKeys, listen, close }
}
