import pino, { type Logger } from 'pino'

/** Log bytes held in memory while the log reader is not taking them, before lines are dropped. */
export const LOG_BUFFER_LIMIT = 8 * 1024 * 1024

/**
 * The service's logger: pino JSON lines on stdout (or `fd`), written
 * asynchronously: a log line never holds up an answer. pino flushes what is left
 * when the process exits.
 *
 * stdout is usually a pipe to a log collector (Docker, systemd). If the collector
 * stops reading, lines wait in memory up to LOG_BUFFER_LIMIT and past it are
 * dropped, so a stalled collector can neither stop the service nor grow its memory
 * without end. The audit log (in storage) is the record, not these lines.
 *
 * `process.stdout.fd` (rather than 1) makes Node open stdout first, which leaves a
 * pipe in non-blocking mode: a full pipe then delays a write instead of holding a
 * thread-pool thread, which signing needs. The bench's ceiling server uses this
 * logger too, so both pay the same for logging.
 */
export function createLogger(level: string, fd: number = process.stdout.fd): Logger {
  return pino({ level }, pino.destination({ dest: fd, sync: false, minLength: 0, maxLength: LOG_BUFFER_LIMIT }))
}
