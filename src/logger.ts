import pino, { type Logger } from 'pino'

/**
 * The service's logger: pino JSON lines on stdout. The destination writes
 * asynchronously, so under load lines written while a write is in flight go out
 * together instead of one system call each; pino flushes what is left at exit.
 */
export function createLogger(level: string): Logger {
  return pino({ level }, pino.destination({ dest: 1, sync: false }))
}
