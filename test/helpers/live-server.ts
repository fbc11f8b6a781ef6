import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { loadConfig } from '../../src/config.js'
import { startServer, type RunningServer } from '../../src/server.js'
import { captureLogs } from './logs.js'
import { LeakWatch } from './secrets.js'
import { newAdminToken, newMasterKey, tempDir } from './temp.js'

/**
 * The one way tests get a Signet listening on a real port, in this process.
 *
 * - startLiveSignet(): the whole service as `signet serve` starts it (server.ts:
 *   both listeners, TLS and its reload, the background loop), on a temporary SQLite
 *   database, with fresh secrets and captured logs under a leak watch.
 * - listenOnLoopback(): an app a test built itself (the inject harness, with its
 *   manual clock) put on a free loopback port, for clients that need a URL.
 *
 * Tests of the `signet` binary start it as a child process instead (test/cli/helpers.ts):
 * they test the command, its environment, its exit codes and its signals.
 */

/** Listens on a free loopback port and answers the base URL. */
export async function listenOnLoopback(app: FastifyInstance, scheme: 'http' | 'https' = 'http'): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address() as { port: number }
  return `${scheme}://127.0.0.1:${address.port}`
}

export interface LiveSignetOptions {
  /** A leak watch shared with the caller (a new one by default). */
  watch?: LeakWatch
  /** A directory the caller made (for TLS files, say) and removes; a new one, removed by close(), by default. */
  dir?: string
}

/**
 * A real, listening Signet. `restart()` is `stop()` then `start()`: the same port
 * and database, the way an operator restarts the service.
 */
export interface LiveSignet {
  /** The internal listener's URL, as bound (https:// with TLS, [::1] for IPv6). */
  url: string
  port: number
  /** The public listener's URL (SIGNET_PUBLIC_PORT), or null. */
  publicUrl: string | null
  server: RunningServer
  /** The directory holding the database. */
  dir: string
  adminToken: string
  watch: LeakWatch
  logs: string[]
  /** Requests the current listener has received (counted on the node http server). */
  requests: () => number
  /** An admin API call with the admin token, over plain HTTP. */
  admin: (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any; headers: Headers }>
  createClient: (fields?: Record<string, unknown>) => Promise<string>
  createKeyset: (fields: Record<string, unknown>) => Promise<any>
  stop: () => Promise<void>
  start: () => Promise<void>
  close: () => Promise<void>
}

export async function startLiveSignet(env: Record<string, string> = {}, options: LiveSignetOptions = {}): Promise<LiveSignet> {
  const watch = options.watch ?? new LeakWatch()
  const dir = options.dir ? { path: options.dir, remove: () => {} } : tempDir('signet-live-')
  const masterKey = watch.secret('the master key', newMasterKey())
  const adminToken = watch.secret('the admin token', newAdminToken())
  const logs = captureLogs(watch)
  let port = env.SIGNET_PORT ?? '0'
  let server: RunningServer | null = null
  let count = 0

  const start = async () => {
    const config = loadConfig({
      SIGNET_MASTER_KEY: masterKey,
      SIGNET_ADMIN_TOKEN: adminToken,
      SIGNET_DB: join(dir.path, 'signet.db'),
      // The server shares its event loop with the test (verifiers, child processes,
      // module loading on a busy machine): load shedding on event-loop delay would
      // answer 503 overloaded at random and spoil the request counts.
      SIGNET_MAX_EVENT_LOOP_DELAY_MS: '0',
      ...env,
      SIGNET_PORT: port,
    })
    server = await startServer(config, logs.logger)
    port = new URL(server.url).port
    server.app.server.on('request', () => { count++ })
  }
  await start()

  const adminCall = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${live.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await response.text()
    return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers, text }
  }

  let lastUrl = server!.url
  let lastPublicUrl = server!.publicUrl
  const live: LiveSignet = {
    get url() { return server ? (lastUrl = server.url) : lastUrl },
    get port() { return Number(port) },
    get publicUrl() { return server ? (lastPublicUrl = server.publicUrl) : lastPublicUrl },
    get server() { return server! },
    dir: dir.path,
    adminToken,
    watch,
    logs: logs.lines,
    requests: () => count,
    async admin(method, path, body) {
      const { status, body: answer, headers, text } = await adminCall(method, path, body)
      watch.record(text)
      return { status, body: answer, headers }
    },
    async createClient(fields = {}) {
      // The creation answer is the one place a client token is shown; it is not a leak.
      const { status, body } = await adminCall('POST', '/v1/admin/clients', { name: 'app server', keysets: '*', scopes: ['sign', 'verify'], ...fields })
      if (status !== 201) throw new Error(`client creation failed: ${JSON.stringify(body)}`)
      return watch.secret(`the token of client ${body.id}`, body.token as string)
    },
    async createKeyset(fields) {
      const { status, body } = await live.admin('POST', '/v1/admin/keysets', fields)
      if (status !== 201) throw new Error(`keyset creation failed: ${JSON.stringify(body)}`)
      return body
    },
    async stop() {
      const running = server
      server = null
      await running?.close()
    },
    start,
    async close() {
      await live.stop()
      dir.remove()
    },
  }
  return live
}
