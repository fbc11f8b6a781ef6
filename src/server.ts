import type { AddressInfo } from 'node:net'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import pino, { type Logger } from 'pino'
import { buildApp } from './app.js'
import { loadConfig, type Config } from './config.js'
import { Signet } from './runtime.js'

/** Longest a graceful shutdown may take before the process exits anyway. */
export const SHUTDOWN_GRACE_MS = 10_000

export interface RunningServer {
  signet: Signet
  app: FastifyInstance
  /** The bound address, e.g. http://127.0.0.1:8080. */
  url: string
  close(): Promise<void>
}

/**
 * Starts Signet from a configuration: opens storage, loads keys, starts the
 * background loop, and listens. The only place that listens.
 */
export async function startServer(config: Config, logger: Logger = pino({ level: config.logLevel })): Promise<RunningServer> {
  const signet = await Signet.open({ config, logger, createDefaultKeyset: true })
  let app: FastifyInstance | null = null
  try {
    app = await buildApp(signet)
    await app.listen({ host: config.host, port: config.port })
  } catch (error) {
    await app?.close()
    await signet.close()
    throw error
  }
  signet.start()
  const address = app.server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${host}:${address.port}`
  logger.info({ url, storage: signet.storage.kind }, 'signet listening')
  const running = app
  return {
    signet,
    app: running,
    url,
    close: async () => {
      await running.close() // stops accepting, waits for requests in flight
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
  await runServer(config, pino({ level: config.logLevel }))
}
