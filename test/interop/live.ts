import { join } from 'node:path'
import { loadConfig } from '../../src/config.js'
import { startServer, type RunningServer } from '../../src/server.js'
import { captureLogs, newAdminToken, newMasterKey, tempDir } from '../helpers/harness.js'
import { LeakWatch } from '../helpers/secrets.js'

/**
 * A real, listening Signet for client and interop tests: started in-process with
 * startServer() on a free port over a temporary SQLite database, with its logs
 * captured for the leak watch. `restart()` stops it and starts it again on the same
 * port and database, the way an operator restarts the service.
 */
export interface LiveSignet {
  url: string
  port: number
  server: RunningServer
  adminToken: string
  watch: LeakWatch
  logs: string[]
  /** Requests the current listener has received (counted on the node http server). */
  requests: () => number
  admin: (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any; headers: Headers }>
  createClient: (fields?: Record<string, unknown>) => Promise<string>
  createKeyset: (fields: Record<string, unknown>) => Promise<any>
  stop: () => Promise<void>
  start: () => Promise<void>
  close: () => Promise<void>
}

export async function startLiveSignet(env: Record<string, string> = {}): Promise<LiveSignet> {
  const watch = new LeakWatch()
  const dir = tempDir('signet-live-')
  const masterKey = watch.secret('the master key', newMasterKey())
  const adminToken = watch.secret('the admin token', newAdminToken())
  const logs = captureLogs(watch)
  let port = 0
  let server: RunningServer | null = null
  let count = 0

  const start = async () => {
    const config = loadConfig({
      SIGNET_MASTER_KEY: masterKey,
      SIGNET_ADMIN_TOKEN: adminToken,
      SIGNET_DB: join(dir.path, 'signet.db'),
      SIGNET_PORT: String(port),
      // The server shares its event loop with the test (verifiers, child processes,
      // module loading on a busy machine): load shedding on event-loop delay would
      // answer 503 overloaded at random and spoil the request counts.
      SIGNET_MAX_EVENT_LOOP_DELAY_MS: '0',
      ...env,
    })
    server = await startServer(config, logs.logger)
    port = Number(new URL(server.url).port)
    server.app.server.on('request', () => { count++ })
  }
  await start()

  const adminCall = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await response.text()
    return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers, text }
  }

  const live: LiveSignet = {
    get url() { return `http://127.0.0.1:${port}` },
    get port() { return port },
    get server() { return server! },
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
