import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MasterKey } from '../../src/crypto/master-key.js'
import { LeakWatch, watchPrivateKey } from '../helpers/secrets.js'
import { tempDir } from '../helpers/harness.js'
import { cliJson, fileTempDir, newMasterKey, requireBuild, runCli, type CliResult } from './helpers.js'

/**
 * Acceptance 1 of issue 3: every CLI command works, its --json output parses, and
 * a wrong argument exits non-zero with one line on stderr that names it. Each
 * command runs the built binary against one database, as an operator would.
 */

const dir = fileTempDir('signet-cli-')
const db = join(dir.path, 'signet.db')
const watch = new LeakWatch()
let env: Record<string, string>
const outputs: CliResult[] = []

async function run(args: string[], extra: Record<string, string | undefined> = {}): Promise<CliResult> {
  const result = await runCli(args, { env: { ...env, ...extra } })
  outputs.push(result)
  return result
}

async function json<T = any>(args: string[], extra: Record<string, string | undefined> = {}): Promise<T> {
  const result = await run([...args, '--json'], extra)
  expect(result.code, `signet ${args.join(' ')}: ${result.stderr}`).toBe(0)
  expect(result.stderr).toBe('')
  return JSON.parse(result.stdout) as T
}

/** A failure: non-zero exit, exactly one line on stderr, which names `what`. */
async function refused(args: string[], what: string, extra: Record<string, string | undefined> = {}): Promise<string> {
  const result = await run(args, extra)
  expect(result.code, `signet ${args.join(' ')} should fail`).not.toBe(0)
  expect(result.stderr.endsWith('\n')).toBe(true)
  const lines = result.stderr.trimEnd().split('\n')
  expect(lines, `signet ${args.join(' ')}: ${result.stderr}`).toHaveLength(1)
  expect(lines[0]).toMatch(/^signet: /)
  expect(lines[0]).toContain(what)
  return lines[0]!
}

const auditCount = async () => (await cliJson<{ events: number }>(['audit', 'verify'], env)).events

beforeAll(async () => {
  requireBuild()
  const init = await cliJson<{ masterKey: string; adminToken: string; kid: string; keyset: string }>(['init'], { SIGNET_DB: db })
  env = { SIGNET_DB: db, SIGNET_MASTER_KEY: init.masterKey }
  watch.secret('the master key', init.masterKey)
  watch.secret('the admin token', init.adminToken)
})

afterAll(() => dir.remove())

describe('signet init', () => {
  it('created the database and keyset default, and wrote no secret to disk', async () => {
    const keysets = await json<{ keysets: { name: string; alg: string; activeKid: string }[] }>(['keysets', 'list'])
    expect(keysets.keysets.map((k) => [k.name, k.alg])).toEqual([['default', 'ES256']])
    // The database holds the key's check value, never the key or the token.
    const bytes = readFileSync(db)
    expect(bytes.includes(Buffer.from(env.SIGNET_MASTER_KEY!))).toBe(false)
    expect(bytes.includes(Buffer.from(env.SIGNET_MASTER_KEY!, 'base64'))).toBe(false)
  })

  it('refuses an existing database and changes nothing', async () => {
    const before = await auditCount()
    await refused(['init'], 'already initialised')
    expect(await auditCount()).toBe(before)
  })

  it('uses SIGNET_MASTER_KEY when given, and prints no key then', async () => {
    const other = tempDir('signet-cli-init-')
    try {
      const key = newMasterKey()
      const result = await runCli(['init', '--alg', 'EdDSA', '--json'], { env: { SIGNET_DB: join(other.path, 's.db'), SIGNET_MASTER_KEY: key } })
      expect(result.code).toBe(0)
      const out = JSON.parse(result.stdout)
      expect(out.masterKey).toBeUndefined()
      expect(out.alg).toBe('EdDSA')
      expect(typeof out.adminToken).toBe('string')
      expect(result.stdout).not.toContain(key)
      // The database belongs to that key.
      const listed = await runCli(['keys', 'rotate', '--json'], { env: { SIGNET_DB: join(other.path, 's.db'), SIGNET_MASTER_KEY: key } })
      expect(listed.code).toBe(0)
    } finally {
      other.remove()
    }
  })

  it('prints the master key and admin token once in its human output', async () => {
    const other = tempDir('signet-cli-init-')
    try {
      const result = await runCli(['init'], { env: { SIGNET_DB: join(other.path, 's.db') } })
      expect(result.code).toBe(0)
      const key = /^ {2}([A-Za-z0-9+/]{43}=)$/m.exec(result.stdout)?.[1]
      const token = /^ {2}(signet_[A-Za-z0-9_-]{43})$/m.exec(result.stdout)?.[1]
      expect(key && MasterKey.fromBase64(key)).toBeTruthy()
      expect(token).toBeTruthy()
      expect(result.stdout).toContain('signet serve')
    } finally {
      other.remove()
    }
  })
})

describe('keysets', () => {
  it('creates, lists and updates keysets, as JSON and as a table', async () => {
    const created = await json(['keysets', 'create', 'sessions', '--alg', 'PS256', '--rsa-bits', '3072', '--issuer', 'https://id.example', '--default-ttl', '300', '--max-ttl', '600', '--rotation-period', '0', '--prepublish', '120', '--x5c'])
    expect(created).toMatchObject({ name: 'sessions', alg: 'PS256', rsaBits: 3072, issuer: 'https://id.example', defaultTtl: 300, maxTtl: 600, rotationPeriod: 0, prepublish: 120, x5c: true, backend: 'software' })
    expect(created.activeKid).toMatch(/^[A-Za-z0-9_-]{43}$/)

    const updated = await json(['keysets', 'update', 'sessions', '--no-issuer', '--no-x5c', '--prepublish', 'default', '--alg', 'ES384'])
    expect(updated).toMatchObject({ name: 'sessions', alg: 'ES384', issuer: null, x5c: false, prepublish: 3600, activeKid: created.activeKid })

    const list = await json<{ keysets: { name: string }[] }>(['keysets', 'list'])
    expect(list.keysets.map((k) => k.name)).toEqual(['default', 'sessions'])

    const table = await run(['keysets', 'list'])
    expect(table.code).toBe(0)
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+ALG\s+ACTIVE KID/)
    expect(table.stdout).toContain(created.activeKid)
  })

  it('refuses bad input with one line naming it, and changes nothing', async () => {
    const before = await auditCount()
    await refused(['keysets', 'create', 'Bad Name'], 'name')
    await refused(['keysets', 'create', 'x1', '--alg', 'HS256'], '--alg')
    await refused(['keysets', 'create', 'x1', '--max-ttl', 'abc'], '--max-ttl')
    await refused(['keysets', 'create', 'x1', '--rsa-bits', '1024'], '--rsa-bits')
    await refused(['keysets', 'create', 'x1', '--default-ttl', '900', '--max-ttl', '60'], '--default-ttl must not exceed --max-ttl')
    await refused(['keysets', 'create', 'sessions'], 'sessions exists')
    await refused(['keysets', 'update', 'nope', '--max-ttl', '60'], 'nope')
    await refused(['keysets', 'update', 'sessions'], 'nothing to change')
    await refused(['keysets', 'list', 'extra'], 'too many arguments')
    await refused(['keysets'], 'keysets needs a command')
    await refused(['keysets', 'lst'], "unknown command 'lst'")
    expect(await auditCount()).toBe(before)
    expect((await json<{ keysets: unknown[] }>(['keysets', 'list'])).keysets).toHaveLength(2)
  })
})

describe('keys', () => {
  it('rotates (scheduled and immediate), lists and revokes keys', async () => {
    const before = await json<{ keys: { kid: string; state: string }[] }>(['keys', 'list'])
    expect(before.keys.map((k) => k.state)).toEqual(['active'])

    const pending = await json(['keys', 'rotate'])
    expect(pending.state).toBe('pending')
    expect(pending.keyset).toBe('default')
    expect(Date.parse(pending.activatesAt) - Date.parse(pending.createdAt)).toBe(3600_000)

    const active = await json(['keys', 'rotate', 'default', '--immediate'])
    expect(active.state).toBe('active')

    const keys = await json<{ keys: { kid: string; state: string; jwk: Record<string, unknown> }[] }>(['keys', 'list', 'default'])
    const states = Object.fromEntries(keys.keys.map((k) => [k.kid, k.state]))
    expect(states).toEqual({ [before.keys[0]!.kid]: 'retired', [pending.kid]: 'pending', [active.kid]: 'active' })
    for (const key of keys.keys) expect(key.jwk.d).toBeUndefined()

    const revoked = await json(['keys', 'revoke', pending.kid, '--reason', 'test revoke'])
    expect(revoked).toMatchObject({ kid: pending.kid, state: 'revoked', revokeReason: 'test revoke' })

    const table = await run(['keys', 'list'])
    expect(table.stdout.split('\n')[0]).toMatch(/^KID\s+KEYSET\s+STATE/)
    expect(table.stdout).toContain('test revoke')
  })

  it('refuses bad input with one line naming it, and changes nothing', async () => {
    const before = await auditCount()
    await refused(['keys', 'rotate', 'nope'], 'no keyset nope')
    await refused(['keys', 'list', 'nope'], 'no keyset nope')
    await refused(['keys', 'revoke', 'no-such-kid'], 'no-such-kid')
    // A kid is base64url, so one in 64 starts with "-": it is still the argument, not an option.
    await refused(['keys', 'revoke', '-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcde', '--reason', 'x'], '-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcde')
    await refused(['keys', 'revoke'], "missing required argument 'kid'")
    await refused(['keys', 'rotate', '--immediat'], '--immediat')
    await refused(['keys'], 'keys needs a command')
    expect(await auditCount()).toBe(before)
  })
})

describe('clients', () => {
  let clientId: string

  it('creates a client and shows its token once, lists without tokens, revokes', async () => {
    const created = await json(['clients', 'create', 'billing api', '--keysets', 'default,sessions', '--scopes', 'sign,verify', '--audiences', 'api,web', '--max-ttl', '120'])
    watch.secret('the client token', created.token)
    expect(created).toMatchObject({ name: 'billing api', keysets: ['default', 'sessions'], scopes: ['sign', 'verify'], audiences: ['api', 'web'], maxTtl: 120, revokedAt: null })
    expect(created.token).toMatch(/^signet_[A-Za-z0-9_-]{43}$/)
    clientId = created.id

    const defaults = await json(['clients', 'create', 'plain'])
    watch.secret('the plain client token', defaults.token)
    expect(defaults).toMatchObject({ keysets: ['default'], scopes: ['sign'], audiences: null, maxTtl: null })

    const list = await run(['clients', 'list', '--json'])
    expect(JSON.parse(list.stdout).clients.map((c: { name: string }) => c.name)).toEqual(['billing api', 'plain'])
    expect(list.stdout).not.toContain('signet_')
    expect(list.stdout).not.toContain('tokenHash')

    const revoked = await json(['clients', 'revoke', clientId])
    expect(revoked.id).toBe(clientId)
    expect(revoked.revokedAt).not.toBeNull()
  })

  it('writes the token to a new 0600 file with --token-file', async () => {
    const file = join(dir.path, 'app.token')
    const created = await json(['clients', 'create', 'app server', '--token-file', file])
    expect(created.token).toBeUndefined()
    expect(created.tokenFile).toBe(file)
    const token = readFileSync(file, 'utf8').trim()
    watch.secret('the file client token', token)
    expect(token).toMatch(/^signet_/)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    // An existing file is never overwritten, and no client is made then.
    const before = (await json<{ clients: unknown[] }>(['clients', 'list'])).clients.length
    await refused(['clients', 'create', 'again', '--token-file', file], 'EEXIST')
    expect((await json<{ clients: unknown[] }>(['clients', 'list'])).clients.length).toBe(before)
  })

  it('refuses bad input with one line naming it, and changes nothing', async () => {
    const before = await auditCount()
    await refused(['clients', 'create', 'x', '--scopes', 'sing'], 'scopes')
    await refused(['clients', 'create', 'x', '--keysets', 'Bad!'], 'keysets')
    await refused(['clients', 'create', 'x', '--max-ttl', '0'], '--max-ttl')
    await refused(['clients', 'create', 'x', '--scopes', 'sign,,verify'], '--scopes')
    await refused(['clients', 'create'], "missing required argument 'name'")
    await refused(['clients', 'revoke', 'no-such-client'], 'no-such-client')
    await refused(['clients', 'revoke', clientId], 'already revoked')
    expect(await auditCount()).toBe(before)
  })
})

describe('jwks', () => {
  it('prints the public JWK Set as JSON, indented by default and on one line with --json', async () => {
    const keys = await json<{ keys: { kid: string; state: string }[] }>(['keys', 'list'])
    const published = keys.keys.filter((k) => ['pending', 'active', 'retired'].includes(k.state)).map((k) => k.kid)
    const compact = await run(['jwks', '--json'])
    expect(compact.stdout.trimEnd().split('\n')).toHaveLength(1)
    const jwks = JSON.parse(compact.stdout)
    expect(jwks.keys.map((k: { kid: string }) => k.kid).sort()).toEqual([...published].sort())
    for (const jwk of jwks.keys) {
      expect(Object.keys(jwk).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'])
    }
    const pretty = await run(['jwks', 'default'])
    expect(JSON.parse(pretty.stdout)).toEqual(jwks)
    expect(pretty.stdout.split('\n').length).toBeGreaterThan(3)

    await refused(['jwks', 'nope'], 'no keyset nope')
  })
})

describe('read-only commands need no master key', () => {
  it('lists keysets, keys, clients and the JWKS without SIGNET_MASTER_KEY', async () => {
    const noKey = { SIGNET_MASTER_KEY: undefined }
    await json(['keysets', 'list'], noKey)
    await json(['keys', 'list'], noKey)
    await json(['clients', 'list'], noKey)
    await json(['jwks'], noKey)
    await json(['backup', join(dir.path, 'nokey.db')], noKey)
  })

  it('refuses to check or write authenticated rows and the audit log without it', async () => {
    const { id } = await json<{ id: string }>(['clients', 'create', 'to-revoke'])
    const before = await auditCount()
    for (const args of [['check'], ['audit', 'verify'], ['clients', 'create', 'x'], ['clients', 'revoke', id], ['clients', 'update', id, '--scopes', 'sign,verify']]) {
      await refused(args, 'SIGNET_MASTER_KEY', { SIGNET_MASTER_KEY: undefined })
    }
    expect(await auditCount()).toBe(before)
  })

  it('refuses commands that create or open private keys without it, or with the wrong one', async () => {
    const before = await auditCount()
    await refused(['keys', 'rotate'], 'SIGNET_MASTER_KEY', { SIGNET_MASTER_KEY: undefined })
    await refused(['keys', 'rotate'], 'SIGNET_MASTER_KEY', { SIGNET_MASTER_KEY: newMasterKey() })
    await refused(['keysets', 'create', 'other'], 'SIGNET_MASTER_KEY', { SIGNET_MASTER_KEY: newMasterKey() })
    await refused(['keys', 'list'], 'SIGNET_MASTER_KEY', { SIGNET_MASTER_KEY: 'not base64!' })
    expect(await auditCount()).toBe(before)
  })
})

describe('configuration and database errors', () => {
  it('names a misspelt variable, a bad value, and a missing database', async () => {
    await refused(['keys', 'list'], 'SIGNET_DEFAULT_KEYSETS', { SIGNET_DEFAULT_KEYSETS: 'x' })
    await refused(['keys', 'list'], 'SIGNET_JWKS_MAX_AGE', { SIGNET_JWKS_MAX_AGE: 'soon' })
    const missing = join(dir.path, 'missing', 'nothing.db')
    await refused(['keysets', 'list'], 'no Signet database', { SIGNET_DB: missing })
    await refused(['clients', 'create', 'x'], 'no Signet database', { SIGNET_DB: missing })
    expect(existsSync(missing)).toBe(false)
  })

  it('names unknown commands and options', async () => {
    await refused(['nope'], "unknown command 'nope'")
    await refused(['keys', 'list', '--bogus'], "unknown option '--bogus'")
  })
})

describe('audit verify', () => {
  it('passes on an intact log and, after one row is edited in SQLite, exits 1 naming that row', async () => {
    const intact = await json<{ ok: boolean; events: number }>(['audit', 'verify'])
    expect(intact.ok).toBe(true)
    expect(intact.events).toBeGreaterThan(5)
    const human = await run(['audit', 'verify'])
    expect(human.stdout).toMatch(/^audit log intact: \d+ events/)

    const copy = join(dir.path, 'tampered.db')
    expect((await run(['backup', copy])).code).toBe(0)
    const sqlite = new Database(copy)
    sqlite.prepare("UPDATE audit SET actor = 'mallory' WHERE id = 4").run()
    sqlite.close()
    const result = await run(['audit', 'verify', '--json'], { SIGNET_DB: copy })
    expect(result.code).toBe(1)
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, brokenId: 4 })
    expect(result.stderr).toBe('signet: audit log broken at event 4: row 4 was changed after it was written\n')

    // A deleted row is named by the row after the gap.
    const gap = join(dir.path, 'gap.db')
    expect((await run(['backup', gap])).code).toBe(0)
    const second = new Database(gap)
    second.prepare('DELETE FROM audit WHERE id = 6').run()
    second.close()
    await refused(['audit', 'verify'], 'event 7', { SIGNET_DB: gap })

    // Rows cut from the end leave an intact chain; the head written with each event names the loss.
    const cut = join(dir.path, 'cut.db')
    expect((await run(['backup', cut])).code).toBe(0)
    const third = new Database(cut)
    const last = (third.prepare('SELECT MAX(id) AS id FROM audit').get() as { id: number }).id
    third.prepare('DELETE FROM audit WHERE id >= ?').run(last - 1)
    third.close()
    const truncated = await run(['audit', 'verify', '--json'], { SIGNET_DB: cut })
    expect(truncated.code).toBe(1)
    expect(JSON.parse(truncated.stdout)).toMatchObject({ ok: false, brokenId: last })
    expect(truncated.stderr).toMatch(new RegExp(`the log ends at event ${last - 2}, but event ${last} was written`))
  })
})

describe('help and version', () => {
  const commands = [
    ['serve'], ['dev'], ['init'], ['keysets'], ['keysets', 'list'], ['keysets', 'create'], ['keysets', 'update'],
    ['keys'], ['keys', 'list'], ['keys', 'rotate'], ['keys', 'revoke'], ['keys', 'import'], ['clients'], ['clients', 'create'], ['clients', 'list'],
    ['clients', 'revoke'], ['clients', 'update'], ['issuers'], ['issuers', 'add'], ['issuers', 'list'], ['issuers', 'remove'], ['rewrap'], ['backup'], ['audit'], ['audit', 'verify'], ['audit', 'list'], ['jwks'], ['status'],
  ]

  it('answers --help on every command with its usage, on stdout, exit 0', async () => {
    const results = await Promise.all(commands.map((command) => runCli([...command, '--help'], { env })))
    results.forEach((result, i) => {
      expect(result.code, commands[i]!.join(' ')).toBe(0)
      expect(result.stdout).toMatch(new RegExp(`^Usage: signet ${commands[i]!.join(' ')}\\b`))
      expect(result.stderr).toBe('')
    })
    const top = await runCli(['--help'])
    for (const name of ['serve', 'dev', 'init', 'keysets', 'keys', 'clients', 'issuers', 'rewrap', 'backup', 'audit', 'jwks', 'status']) expect(top.stdout).toContain(`  ${name}`)
  })

  it('prints the package version', async () => {
    const result = await runCli(['--version'])
    expect(result.code).toBe(0)
    expect(result.stdout.trim()).toBe(JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')).version)
  })
})

describe('no private key in any output', () => {
  it('never prints private key material (every command run above, stdout and stderr)', () => {
    const masterKey = MasterKey.fromBase64(env.SIGNET_MASTER_KEY!)
    const sqlite = new Database(db, { readonly: true })
    const rows = sqlite.prepare('SELECT kid, keyset, alg, private_key FROM keys WHERE private_key IS NOT NULL').all() as { kid: string; keyset: string; alg: string; private_key: Buffer }[]
    sqlite.close()
    expect(rows.length).toBeGreaterThanOrEqual(3)
    // Tokens and the master key are printed once by design (init, clients create): only key material is checked here.
    const keyWatch = new LeakWatch()
    for (const row of rows) watchPrivateKey(keyWatch, masterKey, { ...row, privateKey: row.private_key })
    for (const output of outputs) {
      keyWatch.record(output.stdout)
      keyWatch.record(output.stderr)
    }
    keyWatch.assertClean()
  })
})
