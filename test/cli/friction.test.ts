import { existsSync, mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newMasterKey } from '../helpers/temp.js'
import { cliJson, fileTempDir, postJson, requireBuild, runCli, startServe, type CliResult } from './helpers.js'
import { within } from '../helpers/wait.js'

/**
 * What the CLI tells people (issue 17): each rough edge a new user met, tried
 * again through the built binary. Remote mode has its own file (remote.test.ts).
 */

const dir = fileTempDir('signet-friction-')
const db = join(dir.path, 'signet.db')
const keyFile = join(dir.path, 'master.key')
let env: Record<string, string>
/** The master key of the database after the forced rewrap. */
let newKey = ''

const run = (args: string[], extra: Record<string, string | undefined> = {}, cwd?: string): Promise<CliResult> =>
  runCli(args, { env: { ...env, ...extra }, ...(cwd ? { cwd } : {}) })

/** A failure with one line on stderr that contains `what`; returns the line. */
async function refused(args: string[], what: string, extra: Record<string, string | undefined> = {}, cwd?: string): Promise<string> {
  const result = await run(args, extra, cwd)
  expect(result.code, `signet ${args.join(' ')} should fail`).not.toBe(0)
  const lines = result.stderr.trimEnd().split('\n')
  expect(lines, result.stderr).toHaveLength(1)
  expect(lines[0]).toContain(what)
  return lines[0]!
}

beforeAll(async () => {
  requireBuild()
  const init = await cliJson(['init', '--master-key-file', keyFile], { SIGNET_DB: db })
  expect(init.masterKey).toBeUndefined() // written to the file, not printed
  expect(init.masterKeyFile).toBe(keyFile)
  env = { SIGNET_DB: db, SIGNET_MASTER_KEY_FILE: keyFile }
})

afterAll(() => dir.remove())

describe('init --master-key-file', () => {
  it('wrote the new master key to a 0600 file that opens the database, and printed none', async () => {
    expect(statSync(keyFile).mode & 0o777).toBe(0o600)
    const key = readFileSync(keyFile, 'utf8').trim()
    expect(Buffer.from(key, 'base64')).toHaveLength(32)
    const rotated = await cliJson(['keys', 'rotate'], env)
    expect(rotated.state).toBe('pending')
    const text = await runCli(['init', '--master-key-file', join(dir.path, 'other.key')], { env: { SIGNET_DB: join(dir.path, 'text.db') } })
    expect(text.code).toBe(0)
    expect(text.stdout).toContain(`Master key: written to ${join(dir.path, 'other.key')} (mode 0600)`)
    expect(text.stdout).not.toContain(readFileSync(join(dir.path, 'other.key'), 'utf8').trim())
  })

  it('refuses an existing file, with the friendly message, and makes no database', async () => {
    const other = join(dir.path, 'new.db')
    const line = await refused(['init', '--master-key-file', keyFile], `${keyFile} exists: choose another name for --master-key-file`, { SIGNET_DB: other, SIGNET_MASTER_KEY_FILE: undefined })
    expect(line).not.toContain(readFileSync(keyFile, 'utf8').trim())
    expect(existsSync(other)).toBe(false)
  })
})

describe('help, typos and values', () => {
  it('prints the help for a bare `signet`, on stdout, exit 0', async () => {
    const result = await runCli([])
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/^Usage: signet /)
    expect(result.stdout).toContain('  status')
    expect(result.stdout).toContain('--url <url>')
    expect(result.stderr).toBe('')
  })

  it('suggests the command a typo meant, at the top and inside a group', async () => {
    await refused(['stauts'], "unknown command 'stauts' (Did you mean status?)")
    await refused(['keys', 'lsit'], "keys: unknown command 'lsit' (did you mean list?)")
    await refused(['clients', 'crate', 'x'], '(did you mean create?)')
    const far = await refused(['keys', 'zzzzzz'], "unknown command 'zzzzzz'")
    expect(far).not.toContain('did you mean')
  })

  it('takes durations as 90s, 15m, 12h, 30d or seconds, and algorithms in any case', async () => {
    const created = await cliJson(['keysets', 'create', 'durations', '--alg', 'rs256', '--max-ttl', '12h', '--default-ttl', '15m', '--rotation-period', '30d', '--prepublish', '90s'], env)
    expect(created).toMatchObject({ alg: 'RS256', maxTtl: 43_200, defaultTtl: 900, rotationPeriod: 2_592_000, prepublish: 90 })
    const plain = await cliJson(['keysets', 'update', 'durations', '--max-ttl', '7200', '--alg', 'Es256'], env)
    expect(plain).toMatchObject({ maxTtl: 7200, alg: 'ES256' })
    await refused(['keysets', 'update', 'durations', '--max-ttl', '10x'], "option '--max-ttl <duration>' argument '10x' is invalid")
    await refused(['keysets', 'update', 'durations', '--max-ttl', '0m'], 'must be a duration from 1s')
    await refused(['keysets', 'update', 'durations', '--alg', 'hs256'], 'must be one of')
  })

  it('names flags, not API fields, when input is refused', async () => {
    expect(await refused(['keysets', 'create', 'ttl', '--default-ttl', '2h', '--max-ttl', '1h'], '--default-ttl must not exceed --max-ttl'))
      .toBe('signet: --default-ttl must not exceed --max-ttl (invalid_request)')
    await refused(['keysets', 'create', 'bits', '--rsa-bits', '3072'], '--rsa-bits applies to RSA algorithms only')
  })

  it('says when a new algorithm takes effect: at the next rotation, and when that is', async () => {
    const result = await run(['keysets', 'update', 'durations', '--alg', 'ES384'])
    expect(result.code, result.stderr).toBe(0)
    // No key pending: the automatic rotation, a period (30d) after the active key's activation.
    expect(result.stdout).toMatch(/The new algorithm takes effect at the next rotation: \d{4}-\d\d-\d\dT\S+Z \(in (29d 23h|30d)\), automatic, every 30d\./)
    // keys rotate above left an ES256 key pending in default: it keeps its algorithm, and says so.
    const pending = await run(['keysets', 'update', 'default', '--alg', 'es384'])
    expect(pending.code, pending.stderr).toBe(0)
    expect(pending.stdout).toMatch(/Key \S+ is already pending with ES256 and activates \S+ \(in (59m|1h)[^)]*\); ES384 takes effect at the rotation after it\./)
  })

  it('gives an existing --token-file the same friendly message as backup, and makes no client', async () => {
    const taken = join(dir.path, 'taken.token')
    writeFileSync(taken, 'keep me\n')
    const before = (await cliJson(['clients', 'list'], env)).clients.length
    const line = await refused(['clients', 'create', 'app', '--token-file', taken], `${taken} exists: choose another name for --token-file`)
    expect(line).not.toMatch(/EEXIST: file already exists, open/) // not the raw Node error
    expect(readFileSync(taken, 'utf8')).toBe('keep me\n')
    expect((await cliJson(['clients', 'list'], env)).clients).toHaveLength(before)
    const backup = await refused(['backup', taken], `${taken} exists: choose another name`)
    expect(backup).toMatch(/exists: choose another name/)
  })

  it('checks clients update before asking anything of Signet', async () => {
    await refused(['clients', 'update', 'app'], 'signet clients update: nothing to change')
    await refused(['clients', 'update', 'app', '--subject', 'a', '--no-subjects'], '--subject and --no-subjects contradict each other')
    await refused(['clients', 'update', 'app', '--max-ttl', '1w'], "option '--max-ttl <duration>' argument '1w' is invalid")
  })

  it('points at the data of signet dev, never at a second signet init, when run next to it', async () => {
    const project = join(dir.path, 'project')
    mkdirSync(join(project, 'data', 'dev'), { recursive: true })
    writeFileSync(join(project, 'data', 'dev', 'signet.db'), '')
    const line = await refused(['keys', 'list'], 'no Signet database at ./data/signet.db', { SIGNET_DB: undefined, SIGNET_MASTER_KEY_FILE: undefined }, project)
    expect(line).toContain('The data of signet dev is in ./data/dev: use it with SIGNET_DB=data/dev/signet.db SIGNET_MASTER_KEY_FILE=data/dev/master.key')
    expect(line).toContain('--url')
    expect(line).not.toContain('signet init')
    expect(existsSync(join(project, 'data', 'signet.db'))).toBe(false)
  })
})

describe('status', () => {
  it('prints per keyset the active kid and its age, the next rotation, pending and retired keys', async () => {
    const status = await cliJson<{ now: string; keysets: any[] }>(['status'], env)
    const byName = Object.fromEntries(status.keysets.map((k) => [k.name, k]))
    expect(Object.keys(byName).sort()).toEqual(['default', 'durations'])
    expect(byName.default.active.ageSeconds).toBeGreaterThanOrEqual(0)
    expect(byName.default.pending).toHaveLength(1)
    expect(byName.durations.pending).toEqual([])
    // No pending key: the next rotation is the active key's activation plus the period (30d).
    const activated = Date.parse(byName.durations.active.activatedAt)
    expect(Date.parse(byName.durations.nextRotation.at)).toBe(activated + 2_592_000_000)
    const text = (await run(['status', 'durations'])).stdout
    expect(text).toMatch(/^keyset durations \(ES384\)\n/)
    expect(text).toMatch(/active\s+\S+ \(RS256\), activated \S+ \((now|\d+s ago)\)/)
    expect(text).toMatch(/next rotation\s+\S+ \(in (29d 23h|30d)\), automatic, every 30d/)
    await refused(['status', 'nope'], 'keyset_not_found')
  })
})

describe('rewrap beside a running server', () => {
  it('refuses while a server runs on the database, goes ahead with --force, and the sealed server logs at error', async () => {
    const server = await startServe(env)
    try {
      expect(existsSync(`${db}.server`)).toBe(true) // the server's heartbeat
      newKey = newMasterKey()
      const line = await refused(['rewrap'], 'a server is running on this database', { SIGNET_NEW_MASTER_KEY: newKey })
      expect(line).toContain('--force')
      expect(line).toContain('nothing was changed')
      // Still under the old key: the server signs, and the old key still opens the database.
      const client = await cliJson(['clients', 'create', 'rewrap probe'], env)
      expect((await cliJson(['keys', 'rotate', 'durations'], env)).state).toBe('pending')
      // The server has taken the client in (it reloads within its poll interval) before the rewrap seals it.
      await within(5000, async () => (await postJson(`${server.url}/v1/sign`, client.token, { claims: {} })).status === 200, 100)

      const forced = await run(['rewrap', '--force'], { SIGNET_NEW_MASTER_KEY: newKey })
      expect(forced.code, forced.stderr).toBe(0)
      const sealed = await server.waitFor((text) => {
        if (!text.includes('"msg":"sealed')) return undefined
        return JSON.parse(text) as { level: number; reason: string }
      }, 10_000)
      expect(sealed.level).toBe(50) // error
      expect(sealed.reason).toContain('does not match this database')
      expect((await postJson(`${server.url}/v1/sign`, client.token, { claims: {} })).body.code).toBe('sealed')
    } finally {
      await server.stop('SIGTERM')
    }
    expect(existsSync(`${db}.server`)).toBe(false) // removed on a clean stop
  })

  it('ignores the heartbeat of a server that stopped without removing it', async () => {
    const stale = `${db}.server`
    writeFileSync(stale, '{"pid":1,"host":"elsewhere"}\n')
    const past = new Date(Date.now() - 60_000)
    utimesSync(stale, past, past)
    // The database is under the key of the forced rewrap now: move it once more.
    const result = await run(['rewrap', '--json'], { SIGNET_MASTER_KEY_FILE: undefined, SIGNET_MASTER_KEY: newKey, SIGNET_NEW_MASTER_KEY: newMasterKey() })
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout).rewrapped).toBeGreaterThan(0)
  })
})
