import type { Server as HttpsServer } from 'node:https'
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
import { reloadTlsOnChange } from './tls/reload.js'
import { createLogger } from './logger.js'
import { drainConnections, trackConnections } from './http/connection-drain.js'
import { ConfigError } from './errors.js'
import { isClusterWorker, joinPrimary, signetVariables, startWorkers, WORKER_STOP_MARGIN_MS, type WorkerPeers, type Workers } from './cluster.js'

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

/**
 * Closes a listener: it stops accepting, answers new requests on open connections
 * with a problem+json 503 (plugins/closing.ts) and waits for the requests in flight.
 * Their answers are never cut: each connection ends once its answer is flushed, idle
 * keep-alive ones at once; a new one gets a second to send a request (answered 503
 * with Connection: close) and is closed if none comes (http/connection-drain.ts).
 */
async function closeListener(app: FastifyInstance): Promise<void> {
  drainConnections(app.server)
  await app.close()
}

/**
 * Listens, and turns the failures a setting causes into a start-up error that
 * names the variable (docs/configuration.md, listeners): a port in use or privileged, an address that
 * is not this machine's, a host name that does not resolve.
 */
async function listenOn(app: FastifyInstance, host: string, port: number, portVariable: string): Promise<void> {
  trackConnections(app.server)
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

export interface StartOptions {
  /** The metrics to count into and serve (a cluster worker's answer for the whole instance); a new registry by default. */
  metrics?: SignetMetrics
  /** false: do not run the key schedule until given it (Signet.takeSchedule). */
  scheduler?: boolean
  /** A cluster worker's link to the other workers: a change is answered once they all serve it. */
  peers?: WorkerPeers
}

/**
 * Starts Signet from a configuration: opens storage, loads keys, starts the
 * background loop, and listens: the internal listener (SIGNET_PORT) and, with
 * SIGNET_PUBLIC_PORT, the public one. The only place that listens.
 */
export async function startServer(config: Config, logger: Logger = createLogger(config.logLevel), options: StartOptions = {}): Promise<RunningServer> {
  // TLS files are read and checked before storage is touched: a bad file changes nothing.
  const tls = config.tls ? loadTlsMaterial(config.tls) : null
  const scheme = tls ? 'https' : 'http'
  const metrics = options.metrics ?? new SignetMetrics()
  const peers = options.peers
  const signet = await Signet.open({
    config,
    logger,
    storage: instrumentStorage(await openStorage(config), metrics),
    createDefaultKeyset: true,
    scheduler: options.scheduler ?? true,
    ...(peers ? { afterCommit: () => peers.committed() } : {}),
  })
  peers?.opened(signet)
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
  const tlsReloader = config.tls && reloadTlsOnChange(config.tls, [
    { server: running.server as HttpsServer, listener: 'internal' },
    ...(runningPublic ? [{ server: runningPublic.server as HttpsServer, listener: 'public' as const }] : []),
  ], logger)
  return {
    signet,
    app: running,
    url,
    publicApp: runningPublic,
    publicUrl: publicListenerUrl,
    metrics,
    close: async () => {
      if (tlsReloader) tlsReloader.stop()
      // Both stop accepting and wait for requests in flight.
      await Promise.all([closeListener(running), runningPublic && closeListener(runningPublic)])
      stopPresence()
      await signet.close()
    },
  }
}

/**
 * Signals of a fault (a native crash, an abort) that must end the process as the crash
 * it is, never be taken for a request to stop. close-with-grace listens to them by
 * default; a JavaScript listener on SIGSEGV turns a real segmentation fault into an
 * endless loop (the handler returns, the faulting instruction runs again), a process
 * spinning on a core that its supervisor never restarts (seen here: 16 minutes).
 */
const CRASH_SIGNALS = ['SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL', 'SIGTRAP', 'SIGABRT'] as const

/**
 * Stops the process gracefully on SIGTERM or SIGINT (or an uncaught error), or when
 * `stop()` is called: runs `close`, then exits 0; past `graceMs` it exits 1 anyway
 * (close-with-grace). A second signal during the stop exits at once; `stop()` during
 * a stop does nothing.
 */
function stopGracefully(logger: Logger, graceMs: number, close: () => Promise<void>): { stop(): void; uninstall(): void } {
  let stopping = false
  const grace = closeWithGrace(
    { delay: graceMs, logger: { error: (message: unknown) => logger.error(String(message)) }, skip: [...CRASH_SIGNALS] },
    async ({ signal, err }) => {
      stopping = true
      if (err) logger.error({ err }, 'stopping after an uncaught error')
      else logger.info({ signal }, 'stopping: no new connections, finishing the requests in flight')
      await close()
      logger.info('stopped')
    },
  )
  return {
    stop: () => {
      if (!stopping) void grace.close()
    },
    uninstall: () => grace.uninstall(),
  }
}

export interface RunOptions extends StartOptions {
  /** Runs once the server listens (`signet dev` prints its banner there); if it fails, the server is closed and the error thrown. */
  onListening?: (server: RunningServer) => Promise<void>
}

/**
 * Runs a server until SIGTERM or SIGINT (or `stop()`), then stops accepting
 * connections, finishes the requests in flight, closes storage and exits 0; past
 * SHUTDOWN_GRACE_MS it exits 1 anyway. The handlers are in place before the server
 * starts, so a signal during start-up also stops it cleanly.
 */
export async function runServer(config: Config, logger: Logger, options: RunOptions = {}): Promise<RunningServer & { stop(): void }> {
  const starting = startServer(config, logger, options)
  const grace = stopGracefully(logger, SHUTDOWN_GRACE_MS, async () => {
    const server = await starting.catch(() => null)
    await server?.close()
  })
  let server: RunningServer
  try {
    server = await starting
  } catch (error) {
    grace.uninstall()
    throw error
  }
  try {
    await options.onListening?.(server)
  } catch (error) {
    grace.uninstall()
    await server.close()
    throw error
  }
  return Object.assign(server, { stop: grace.stop })
}

/**
 * SIGNET_WORKERS > 1: this process serves nothing itself (cluster.ts). It prepares
 * storage once (a wrong master key or an unreachable database stops the start here,
 * with one message), then starts the workers and, on SIGTERM or SIGINT, has each
 * finish its requests in flight and waits for them all before it exits.
 */
async function runWorkers(config: Config, variables: Record<string, string>, logger: Logger): Promise<void> {
  let workers: Workers | null = null
  // The workers each have SHUTDOWN_GRACE_MS; this process waits a little longer for their exits.
  const grace = stopGracefully(logger, SHUTDOWN_GRACE_MS + WORKER_STOP_MARGIN_MS, async () => {
    await workers?.stop()
  })
  try {
    const prepared = await Signet.open({ config, logger, createDefaultKeyset: true, keystore: false, scheduler: false })
    await prepared.close()
    workers = startWorkers({ count: config.workers, env: variables, logger })
    await workers.listening
  } catch (error) {
    grace.uninstall()
    await workers?.stop().catch(() => {})
    throw error
  }
}

/** A cluster worker: its configuration comes from the primary, which also tells it when to schedule and to stop. */
async function runAsWorker(): Promise<void> {
  const primary = await joinPrimary()
  try {
    const config = loadConfig(primary.env)
    const server = await runServer(config, createLogger(config.logLevel), { scheduler: false, metrics: primary.instanceMetrics(), peers: primary })
    primary.serving(server)
  } catch (error) {
    await primary.failed(error)
  }
}

/** `signet serve`: the service from the environment, until SIGTERM or SIGINT; SIGNET_WORKERS processes of it. */
export async function serve(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (isClusterWorker()) return runAsWorker()
  // Taken before loadConfig, which may remove secrets from the environment it read.
  const variables = signetVariables(env)
  const config = loadConfig(env)
  const logger = createLogger(config.logLevel)
  if (config.workers > 1) await runWorkers(config, variables, logger)
  else await runServer(config, logger)
}
