import type { AddressInfo } from 'node:net'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildApp, buildPublicApp, discoveryBaseUrl } from './app.js'
import { loadConfig, urlHost, type Config } from './config.js'
import { SignetMetrics } from './metrics/registry.js'
import { instrumentStorage } from './metrics/storage.js'
import { Signet } from './runtime.js'
import { markPresence } from './ops/presence.js'
import { openStorage } from './storage/open.js'
import { httpsOptions, loadTlsMaterial } from './tls/options.js'
import { createLogger } from './logger.js'
import { ConfigError } from './errors.js'

/** Longest a graceful shutdown may take before the process exits anyway. */
export const SHUTDOWN_GRACE_MS = 10_000

export interface RunningServer {
  signet: Signet
  app: FastifyInstance
  /** The bound address, e.g. http://127.0.0.1:8080 (https:// with TLS). */
  url: string
  /** The public listener (SIGNET_PUBLIC_PORT): JWKS, discovery and health only; null without it. */
  publicApp: FastifyInstance | null
  publicUrl: string | null
  /** The metrics both listeners count into, served at /metrics on the internal one. */
  metrics: SignetMetrics
  close(): Promise<void>
}

/** How often, while a listener closes, the connections that went idle are closed. */
const IDLE_SWEEP_MS = 50

/**
 * Closes a listener: it stops accepting, answers new requests on open connections
 * with a problem+json 503 (plugins/closing.ts) and waits for the requests in flight. Node closes
 * idle keep-alive connections only once, when closing starts; a connection whose
 * request finishes later would stay open until its client drops it (keep-alive pools
 * do not), holding the shutdown until the grace timeout. So connections are closed
 * as they go idle, until the close completes.
 */
async function closeListener(app: FastifyInstance): Promise<void> {
  const sweep = setInterval(() => app.server.closeIdleConnections(), IDLE_SWEEP_MS)
  try {
    await app.close()
  } finally {
    clearInterval(sweep)
  }
}

/**
 * Listens, and turns the failures a setting causes into a start-up error that
 * names the variable (SPEC section 4): a port in use or privileged, an address that
 * is not this machine's, a host name that does not resolve.
 */
async function listenOn(app: FastifyInstance, host: string, port: number, portVariable: string): Promise<void> {
  try {
    await app.listen({ host, port })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') throw new ConfigError(`${portVariable}=${port}: the port is already in use on ${host} (EADDRINUSE)`)
    if (code === 'EACCES') throw new ConfigError(`${portVariable}=${port}: this user may not listen on that port (EACCES)`)
    if (code === 'EADDRNOTAVAIL') throw new ConfigError(`SIGNET_HOST=${host}: not an address of this machine (EADDRNOTAVAIL)`)
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL') throw new ConfigError(`SIGNET_HOST=${host}: the name does not resolve to an address (${code})`)
    throw error
  }
}

function boundUrl(app: FastifyInstance, scheme: string): string {
  const address = app.server.address() as AddressInfo
  return `${scheme}://${urlHost(address.address)}:${address.port}`
}

/**
 * Starts Signet from a configuration: opens storage, loads keys, starts the
 * background loop, and listens: the internal listener (SIGNET_PORT) and, with
 * SIGNET_PUBLIC_PORT, the public one. The only place that listens.
 */
export async function startServer(config: Config, logger: Logger = createLogger(config.logLevel)): Promise<RunningServer> {
  // TLS files are read and checked before storage is touched: a bad file changes nothing.
  const tls = config.tls ? loadTlsMaterial(config.tls) : null
  const scheme = tls ? 'https' : 'http'
  const metrics = new SignetMetrics()
  const signet = await Signet.open({ config, logger, storage: instrumentStorage(await openStorage(config), metrics), createDefaultKeyset: true })
  metrics.track(signet)
  let app: FastifyInstance | null = null
  let publicApp: FastifyInstance | null = null
  // Discovery documents point at the public listener when there is one.
  const publicUrl = discoveryBaseUrl(config, scheme === 'https', () => publicApp ?? app, config.publicPort ?? config.port)
  try {
    app = await buildApp(signet, { metrics, publicUrl, ...(tls ? { https: httpsOptions(tls, 'internal') } : {}) })
    await listenOn(app, config.host, config.port, 'SIGNET_PORT')
    if (config.publicPort !== null) {
      publicApp = await buildPublicApp(signet, { metrics, publicUrl, ...(tls ? { https: httpsOptions(tls, 'public') } : {}) })
      await listenOn(publicApp, config.host, config.publicPort, 'SIGNET_PUBLIC_PORT')
    }
  } catch (error) {
    await publicApp?.close()
    await app?.close()
    await signet.close()
    throw error
  }
  signet.start()
  // Tells `signet rewrap` that a server runs on this database (ops/presence.ts).
  const stopPresence = markPresence(config, logger)
  const url = boundUrl(app, scheme)
  const publicListenerUrl = publicApp ? boundUrl(publicApp, scheme) : null
  logger.info({ url, publicUrl: publicListenerUrl, tls: tls ? (tls.clientCa ? 'mutual' : 'server') : 'off', storage: signet.storage.kind }, 'signet listening')
  const running = app
  const runningPublic = publicApp
  return {
    signet,
    app: running,
    url,
    publicApp: runningPublic,
    publicUrl: publicListenerUrl,
    metrics,
    close: async () => {
      // Both stop accepting and wait for requests in flight.
      await Promise.all([closeListener(running), runningPublic && closeListener(runningPublic)])
      stopPresence()
      await signet.close()
    },
  }
}

/**
 * Runs a server until SIGTERM or SIGINT, then stops accepting connections,
 * finishes the requests in flight, closes storage and exits 0; past
 * SHUTDOWN_GRACE_MS it exits 1 anyway (close-with-grace). The handlers are in
 * place before the server starts, so a signal during start-up also stops it
 * cleanly. `onListening` runs once the server listens (`signet dev` prints its
 * banner there); if it fails, the server is closed and the error thrown.
 */
export async function runServer(
  config: Config,
  logger: Logger,
  onListening?: (server: RunningServer) => Promise<void>,
): Promise<RunningServer> {
  const starting = startServer(config, logger)
  const grace = closeWithGrace(
    { delay: SHUTDOWN_GRACE_MS, logger: { error: (message: unknown) => logger.error(String(message)) } },
    async ({ signal, err }) => {
      if (err) logger.error({ err }, 'stopping after an uncaught error')
      else logger.info({ signal }, 'stopping: no new connections, finishing the requests in flight')
      const server = await starting.catch(() => null)
      await server?.close()
      logger.info('stopped')
    },
  )
  let server: RunningServer
  try {
    server = await starting
  } catch (error) {
    grace.uninstall()
    throw error
  }
  try {
    await onListening?.(server)
  } catch (error) {
    grace.uninstall()
    await server.close()
    throw error
  }
  return server
}

/** `signet serve`: the service from the environment, until SIGTERM or SIGINT. */
export async function serve(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfig(env)
  await runServer(config, createLogger(config.logLevel))
}
