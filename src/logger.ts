import pino, { type Logger } from 'pino'
import sonicBoom, { type SonicBoom as SonicBoomClass } from 'sonic-boom'

// sonic-boom is CommonJS: its default export is the class, which its types call by name.
const SonicBoom = sonicBoom as unknown as typeof SonicBoomClass

/** Log bytes held in memory while the log reader is not taking them, before lines are dropped. */
export const LOG_BUFFER_LIMIT = 8 * 1024 * 1024
/** At exit, how long the last lines may wait for a reader that is not taking them. */
export const EXIT_FLUSH_MS = 1000

/**
 * The service's logger: pino JSON lines on stdout (or `fd`), written
 * asynchronously: a log line never holds up an answer.
 *
 * stdout is usually a pipe to a log collector (Docker, systemd). If the collector
 * stops reading, lines wait in memory up to LOG_BUFFER_LIMIT and past it are
 * dropped, so a stalled collector can neither stop the service nor grow its memory
 * without end. At exit what is left is written synchronously, waiting at most
 * EXIT_FLUSH_MS for a stalled reader (pino's own exit flush would wait forever, and
 * the process would never exit); a reader that went away (EPIPE) ends logging. The
 * audit log (in storage) is the record, not these lines.
 *
 * `process.stdout.fd` (rather than 1) makes Node open stdout first, which leaves a
 * pipe in non-blocking mode: a full pipe then delays a write instead of holding a
 * thread-pool thread, which signing needs. The bench's ceiling server uses this
 * logger too, so both pay the same for logging.
 */
export function createLogger(level: string, fd: number = process.stdout.fd): Logger {
  return pino({ level }, logDestination(fd))
}

/**
 * A logger whose lines wait in memory until `release()`: `signet dev --json` prints
 * its JSON line first, so a script reads it as the first line of stdout.
 */
export function createHeldLogger(level: string, fd: number = process.stdout.fd): { logger: Logger; release(): void } {
  const destination = logDestination(fd)
  let held: string[] | null = []
  const gate = { write: (line: string) => (held ? held.push(line) > 0 : destination.write(line)) }
  return {
    logger: pino({ level }, gate),
    release() {
      const lines = held ?? []
      held = null
      for (const line of lines) destination.write(line)
    },
  }
}

function logDestination(fd: number): SonicBoomClass {
  let exitDeadline: number | null = null
  const destination = new SonicBoom({
    fd,
    sync: false,
    minLength: 0,
    maxLength: LOG_BUFFER_LIMIT,
    // A full pipe is tried again later; once exiting, only until the deadline.
    retryEAGAIN: () => exitDeadline === null || Date.now() < exitDeadline,
  })
  const flushAtExit = () => {
    exitDeadline = Date.now() + EXIT_FLUSH_MS
    try {
      destination.flushSync()
    } catch {
      // The reader is stalled or gone: the remaining lines are dropped.
    }
  }
  process.once('exit', flushAtExit)
  destination.on('close', () => process.removeListener('exit', flushAtExit))
  destination.on('error', (error: NodeJS.ErrnoException) => {
    // Nobody reads stdout any more (EPIPE), or it failed: logging stops, the service does not.
    destination.write = () => true
    process.removeListener('exit', flushAtExit)
    if (error.code !== 'EPIPE') process.stderr.write(`signet: logging stopped: ${error.code ?? error.message}\n`)
  })
  return destination
}
