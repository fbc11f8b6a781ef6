import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliJson, fileTempDir, REPO, requireBuild, spawnCli } from '../cli/helpers.js'

/**
 * `signet serve` re-executes itself once with V8's memory flags (bin/signet.cjs,
 * README "Performance"): a young generation of 16 MB a semi-space and an old
 * generation that grows to 1.5 times what is live. A flag the operator gives on the
 * command line wins. What the running process was started with is its
 * /proc/<pid>/cmdline: the re-exec keeps the pid.
 */

const BIN = join(REPO, 'bin/signet.cjs')
const dir = fileTempDir('signet-memory-flags-')
let env: Record<string, string>

beforeAll(async () => {
  requireBuild()
  const db = join(dir.path, 'signet.db')
  const init = await cliJson(['init'], { SIGNET_DB: db })
  env = { SIGNET_DB: db, SIGNET_MASTER_KEY: init.masterKey, SIGNET_PORT: '0', SIGNET_LOG_LEVEL: 'info' }
})

afterAll(() => dir.remove())

/** The command line of `node <nodeArgs> bin/signet.cjs serve` once it listens. */
async function servingCommandLine(nodeArgs: string[]): Promise<string[]> {
  const running = spawnCli([], { env, command: [process.execPath, ...nodeArgs, BIN, 'serve'] })
  try {
    await running.waitFor((line) => (line.includes('signet listening') ? true : undefined))
    return readFileSync(`/proc/${running.child.pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
  } finally {
    await running.stop()
  }
}

describe.runIf(process.platform === 'linux')('the memory flags of signet serve', () => {
  it('runs with a small young generation and a bounded old-generation growth', async () => {
    const args = await servingCommandLine([])
    expect(args).toContain('--max-semi-space-size=16')
    expect(args).toContain('--heap-growing-percent=50')
    expect(args.at(-1)).toBe('serve')
  })

  it('keeps a flag the command line gives and adds only the missing one', async () => {
    const args = await servingCommandLine(['--heap-growing-percent=30'])
    expect(args).toContain('--heap-growing-percent=30')
    expect(args).not.toContain('--heap-growing-percent=50')
    expect(args).toContain('--max-semi-space-size=16')
  })
})
