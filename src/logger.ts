import pino, { type Logger } from 'pino'

/**
 * The service's logger: pino JSON lines on stdout, written synchronously so the
 * last lines before a crash are not lost. The bench's ceiling server uses the same,
 * so both pay the same for logging.
 */
export function createLogger(level: string): Logger {
  return pino({ level })
}
