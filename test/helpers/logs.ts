import { Writable } from 'node:stream'
import pino from 'pino'
import type { LeakWatch } from './secrets.js'

/** A log sink that keeps every line, for the leak scan and for assertions. */
export function captureLogs(watch?: LeakWatch) {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      const text = chunk.toString()
      lines.push(text)
      watch?.record(text)
      done()
    },
  })
  return { lines, logger: pino({ level: 'debug' }, stream) }
}
