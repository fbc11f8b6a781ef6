import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { newAdminToken } from '../helpers/temp.js'
import { cliJson, fileTempDir, getJson, requireBuild, runCli, startServe } from '../cli/helpers.js'

/**
 * SIGNET_URL and SIGNET_CLIENT_TOKEN (/_FILE) tell the CLI's remote mode and the
 * client library where Signet is (README, "Configuration"). `serve` ignores them: a
 * value meant for another program never stops the service. The CLI checks
 * SIGNET_URL when a command uses it, naming the variable.
 */

const masterKey = randomBytes(32).toString('base64')
const dir = fileTempDir('signet-client-variables-')
const malformed = {
  SIGNET_URL: 'signet.internal:8080 (ask ops)',
  SIGNET_CLIENT_TOKEN: '',
}

afterAll(() => dir.remove())

describe('the configuration of serve', () => {
  it('accepts a malformed SIGNET_URL, an empty SIGNET_CLIENT_TOKEN and an unreadable SIGNET_CLIENT_TOKEN_FILE', () => {
    expect(() => loadConfig({ SIGNET_MASTER_KEY: masterKey, ...malformed })).not.toThrow()
    expect(() => loadConfig({ SIGNET_MASTER_KEY: masterKey, SIGNET_URL: 'ftp://x', SIGNET_CLIENT_TOKEN_FILE: join(dir.path, 'absent') })).not.toThrow()
  })

  it('still refuses a misspelt variable next to them', () => {
    expect(() => loadConfig({ SIGNET_MASTER_KEY: masterKey, SIGNET_URLS: 'http://x' })).toThrow(/SIGNET_URLS is not a Signet variable/)
  })

  it('keeps SIGNET_URL for the CLI, and takes the client token out of the process environment', () => {
    const env: NodeJS.ProcessEnv = { SIGNET_MASTER_KEY: masterKey, SIGNET_URL: 'http://127.0.0.1:8080/', SIGNET_CLIENT_TOKEN: 'signet_x' }
    expect(loadConfig(env).url).toBe('http://127.0.0.1:8080')
    const before = { ...process.env }
    try {
      process.env.SIGNET_CLIENT_TOKEN = 'signet_x'
      process.env.SIGNET_MASTER_KEY = masterKey
      loadConfig()
      expect(process.env.SIGNET_CLIENT_TOKEN).toBeUndefined()
    } finally {
      for (const name of ['SIGNET_CLIENT_TOKEN', 'SIGNET_MASTER_KEY']) {
        if (before[name] === undefined) delete process.env[name]
        else process.env[name] = before[name]
      }
    }
  })
})

describe('signet serve and the CLI with a malformed SIGNET_URL', () => {
  const adminToken = newAdminToken()
  const db = join(dir.path, 'signet.db')
  let key: string

  beforeAll(async () => {
    requireBuild()
    key = (await cliJson(['init'], { SIGNET_DB: db, SIGNET_ADMIN_TOKEN: adminToken })).masterKey
  })

  it('serve starts and answers', async () => {
    const server = await startServe({ SIGNET_DB: db, SIGNET_MASTER_KEY: key, ...malformed, SIGNET_CLIENT_TOKEN_FILE: undefined })
    try {
      expect((await getJson(`${server.url}/healthz`)).body).toEqual({ status: 'ok' })
    } finally {
      await server.stop('SIGTERM')
    }
  })

  it('a command in remote mode refuses it, naming SIGNET_URL (or --url when that was given)', async () => {
    const fromEnv = await runCli(['keys', 'list'], { env: { SIGNET_URL: malformed.SIGNET_URL, SIGNET_ADMIN_TOKEN: adminToken }, cwd: dir.path })
    expect(fromEnv.code).toBe(1)
    expect(fromEnv.stderr).toBe('signet: SIGNET_URL must be an absolute http(s) URL, e.g. http://127.0.0.1:8080\n')
    const otherScheme = await runCli(['audit', 'verify'], { env: { SIGNET_URL: 'ftp://signet.internal', SIGNET_ADMIN_TOKEN: adminToken }, cwd: dir.path })
    expect(otherScheme.code).toBe(1)
    expect(otherScheme.stderr).toBe('signet: SIGNET_URL must be an http(s) URL, e.g. http://127.0.0.1:8080\n')
    const flag = await runCli(['--url', 'http://signet internal', 'issuers', 'list'], { env: { SIGNET_ADMIN_TOKEN: adminToken }, cwd: dir.path })
    expect(flag.code).toBe(1)
    expect(flag.stderr).toBe('signet: --url must be an absolute http(s) URL, e.g. http://127.0.0.1:8080\n')
  })

  it('a URL with credentials is refused without printing them; a query or fragment is refused, not dropped', async () => {
    const withToken = await runCli(['status'], { env: { SIGNET_URL: `http://admin:${adminToken}@127.0.0.1:9/`, SIGNET_ADMIN_TOKEN: adminToken }, cwd: dir.path })
    expect(withToken.code).toBe(1)
    expect(withToken.stderr).toBe('signet: SIGNET_URL must not hold credentials (user:password@): tokens have their own option, e.g. http://127.0.0.1:8080\n')
    const userOnly = await runCli(['--url', 'http://admin@127.0.0.1:9', 'keys', 'list'], { env: { SIGNET_ADMIN_TOKEN: adminToken }, cwd: dir.path })
    expect(userOnly.stderr).toMatch(/^signet: --url must not hold credentials/)
    for (const url of ['http://127.0.0.1:9/?token=x', 'http://127.0.0.1:9/#x']) {
      const refused = await runCli(['keysets', 'list'], { env: { SIGNET_URL: url, SIGNET_ADMIN_TOKEN: adminToken }, cwd: dir.path })
      expect(refused.code, url).toBe(1)
      expect(refused.stderr, url).toBe('signet: SIGNET_URL must not hold a query or fragment, e.g. http://127.0.0.1:8080\n')
    }
  })

  it('a local-only command ignores it', async () => {
    const result = await runCli(['check'], { env: { SIGNET_DB: db, SIGNET_MASTER_KEY: key, SIGNET_URL: malformed.SIGNET_URL }, cwd: dir.path })
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/^intact: /)
  })
})
