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
 * `signet serve`: runs until SIGTERM or SIGINT, then stops accepting, finishes the
 * requests in flight, closes storage and exits 0 (close-with-grace).
 */
export async function serve(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfig(env)
  const logger = pino({ level: config.logLevel })
  const server = await startServer(config, logger)
  closeWithGrace({ delay: SHUTDOWN_GRACE_MS }, async ({ signal, err }) => {
    if (err) logger.error({ err }, 'stopping after an uncaught error')
    else logger.info({ signal }, 'stopping')
    await server.close()
    logger.info('stopped')
  })
}
