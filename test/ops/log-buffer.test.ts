import { execFileSync, spawn } from 'node:child_process'
import { closeSync, constants, openSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger, LOG_BUFFER_LIMIT } from '../../src/logger.js'
import { tempDir } from '../helpers/harness.js'
import { requireBuild } from '../cli/helpers.js'

/**
 * When nobody reads the service's stdout (a stalled log collector), log lines are
 * held in memory only up to LOG_BUFFER_LIMIT; the rest are dropped, and logging
 * never blocks or throws. A FIFO that is never read stands for the stalled pipe.
 */
describe('a log reader that stops reading', () => {
  const dir = tempDir('signet-log-buffer-')
  afterAll(() => dir.remove())

  it('costs at most LOG_BUFFER_LIMIT of memory: later lines are dropped, and logging goes on', async () => {
    const fifo = join(dir.path, 'stdout')
    execFileSync('mkfifo', [fifo])
    // Opened for reading and writing so the open does not wait for a reader; never read.
    // Non-blocking, as Node leaves a stdout pipe.
    const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK)
    const logger = createLogger('info', fd)
    const stream = (logger as unknown as Record<symbol, NodeJS.EventEmitter & { destroy(): void }>)[pino.symbols.streamSym]!
    let dropped = 0
    stream.on('drop', (data: string) => { dropped += Buffer.byteLength(data) })

    const line = 'x'.repeat(10_000)
    const lines = 4000 // 40 MB: five times the limit
    for (let i = 0; i < lines; i++) {
      logger.info({ i, line }, 'a long line')
      if (i % 100 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    const logged = lines * (line.length + 60)
    // Whatever is not dropped is either in the pipe (it holds at most 1 MiB) or held in memory.
    expect(dropped).toBeGreaterThan(logged - LOG_BUFFER_LIMIT - 1024 * 1024 - lines * 100)
    expect(() => logger.info('still logging')).not.toThrow()
    stream.destroy() // closes the FIFO too
  })

  it('does not keep the process from exiting: the last lines wait for the reader only a moment', async () => {
    requireBuild() // the child logs through the build's logger
    const fifo = join(dir.path, 'stdout-at-exit')
    execFileSync('mkfifo', [fifo])
    const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK)
    const started = Date.now()
    const child = spawn(process.execPath, [join(import.meta.dirname, '../fixtures/log-then-exit.ts')], { stdio: ['ignore', fd, 'inherit'] })
    const code = await new Promise<number | null>((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), 30_000)
      child.once('exit', (exitCode) => {
        clearTimeout(kill)
        resolve(exitCode)
      })
    })
    closeSync(fd)
    // Without a deadline the exit flush retries a full pipe for ever (killed above: null).
    expect(code).toBe(0)
    expect(Date.now() - started).toBeLessThan(30_000)
  }, 40_000)
})
