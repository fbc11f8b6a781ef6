import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MasterKey } from '../../src/crypto/master-key.js'
import { openStoredKey } from '../helpers/secrets.js'
import { ConfigError } from '../../src/errors.js'
import { backupDatabase } from '../../src/ops/backup.js'
import type { Storage } from '../../src/storage/types.js'
import { cliJson, fileTempDir, postJson, requireBuild, runCli, startServe, type RunningChild } from '../cli/helpers.js'

/**
 * Acceptance 4 of issue 3: `signet backup FILE` taken while a load of sign requests
 * runs; the copy, restored as the README says, gives a server that serves the same
 * JWK Sets and verifies the tokens signed before the backup. The copy is still
 * encrypted: no private key in it opens without the master key.
 */

const dir = fileTempDir('signet-backup-')
const db = join(dir.path, 'signet.db')
const backupFile = join(dir.path, 'backups', 'signet-backup.db')
let env: Record<string, string>
let server: (RunningChild & { url: string }) | null = null
let clientToken: string

beforeAll(async () => {
  requireBuild()
  const init = await cliJson(['init'], { SIGNET_DB: db })
  env = { SIGNET_DB: db, SIGNET_MASTER_KEY: init.masterKey, SIGNET_ADMIN_TOKEN: init.adminToken }
  await cliJson(['keysets', 'create', 'sessions', '--alg', 'RS256', '--issuer', 'https://id.example'], env)
  await cliJson(['keys', 'rotate'], env) // a pending key, so the JWKS holds two keys
  clientToken = (await cliJson(['clients', 'create', 'backup test', '--keysets', '*', '--scopes', 'sign,verify'], env)).token
})

afterAll(async () => {
  await server?.stop('SIGKILL')
  dir.remove()
})

const fetchText = async (url: string) => {
  const response = await fetch(url)
  return { status: response.status, etag: response.headers.get('etag'), body: await response.text() }
}

describe('signet backup', () => {
  it('copies the database while sign requests run; the restored copy serves the same JWKS and verifies older tokens', async () => {
    server = await startServe(env)
    const url = server.url
    const older = [
      (await postJson(`${url}/v1/sign`, clientToken, { claims: { sub: 'before-1' } })).body.token,
      (await postJson(`${url}/v1/sign`, clientToken, { keyset: 'sessions', claims: { sub: 'before-2' } })).body.token,
    ]
    expect(older.every((token) => typeof token === 'string')).toBe(true)

    // A steady load of sign requests from four concurrent callers, and an admin
    // writing meanwhile (clients made through the API), so the copy is taken while
    // the database changes.
    let running = true
    const statuses: number[] = []
    const loops = Array.from({ length: 4 }, async (_, n) => {
      while (running) {
        const answer = await postJson(`${url}/v1/sign`, clientToken, { keyset: n % 2 ? 'sessions' : 'default', claims: { sub: `load-${n}` } })
        statuses.push(answer.status)
      }
    })
    const writes: number[] = []
    loops.push((async () => {
      while (running) {
        writes.push((await postJson(`${url}/v1/admin/clients`, env.SIGNET_ADMIN_TOKEN!, { name: `writer ${writes.length}`, keysets: ['default'], scopes: ['sign'] })).status)
      }
    })())
    while (statuses.length < 50) await new Promise((later) => setTimeout(later, 10))

    // The backups directory does not exist yet: the command says so.
    const noDir = await runCli(['backup', backupFile], { env })
    expect(noDir.code).toBe(1)
    expect(noDir.stderr).toMatch(/^signet: cannot write .*: directory .*backups does not exist\n$/)

    mkdirSync(join(dir.path, 'backups'))
    const duringBackup = statuses.length
    const result = await cliJson(['backup', backupFile], { SIGNET_DB: db }) // no master key needed
    const signedDuring = statuses.length - duringBackup
    running = false
    await Promise.all(loops)

    expect(result).toMatchObject({ file: backupFile, keys: 3 })
    expect(result.bytes).toBe(statSync(backupFile).size)
    expect(statSync(backupFile).mode & 0o777).toBe(0o600)
    expect(existsSync(`${backupFile}-wal`)).toBe(false) // one self-contained file
    expect(statuses.length).toBeGreaterThan(50)
    expect(new Set(statuses)).toEqual(new Set([200])) // the backup disturbed no request
    expect(new Set(writes)).toEqual(new Set([201]))
    // The copy is one committed state: its audit chain is whole, and every row it holds is complete and authentic.
    const copyCheck = await cliJson(['audit', 'verify'], { SIGNET_DB: backupFile, SIGNET_MASTER_KEY: env.SIGNET_MASTER_KEY })
    expect(copyCheck.ok).toBe(true)
    expect((await cliJson(['check'], { SIGNET_DB: backupFile, SIGNET_MASTER_KEY: env.SIGNET_MASTER_KEY })).ok).toBe(true)
    const copiedClients = (await cliJson(['clients', 'list'], { SIGNET_DB: backupFile })).clients as { name: string }[]
    expect(copiedClients.length).toBeGreaterThanOrEqual(1)
    const created = copyCheck.events
    console.info(`backup test: ${statuses.length} sign requests (${signedDuring} while the backup ran), ${writes.length} clients made meanwhile; the copy holds ${copiedClients.length} clients, ${created} audit events`)

    const served = {
      default: await fetchText(`${url}/.well-known/jwks.json`),
      sessions: await fetchText(`${url}/keysets/sessions/jwks.json`),
    }

    // Restore, as the README's playbook says: stop, put the copy in place (no stale -wal/-shm), start.
    expect((await server.stop('SIGTERM')).code).toBe(0)
    server = null
    for (const file of [db, `${db}-wal`, `${db}-shm`]) rmSync(file, { force: true })
    copyFileSync(backupFile, db)
    server = await startServe(env)
    const restored = server.url

    for (const [path, before] of [['/.well-known/jwks.json', served.default], ['/keysets/sessions/jwks.json', served.sessions]] as const) {
      const after = await fetchText(`${restored}${path}`)
      expect(after.status).toBe(200)
      expect(after.body).toBe(before.body)
      expect(after.etag).toBe(before.etag)
    }
    const jwks = { default: JSON.parse(served.default.body), sessions: JSON.parse(served.sessions.body) }
    await jwtVerify(older[0], createLocalJWKSet(jwks.default))
    await jwtVerify(older[1], createLocalJWKSet(jwks.sessions), { issuer: 'https://id.example' })
    expect((await postJson(`${restored}/v1/verify`, clientToken, { token: older[0] })).body.valid).toBe(true)
    expect((await postJson(`${restored}/v1/verify`, clientToken, { token: older[1], keyset: 'sessions' })).body.valid).toBe(true)
    expect((await postJson(`${restored}/v1/sign`, clientToken, { claims: { sub: 'after-restore' } })).status).toBe(200)
    await server.stop('SIGTERM')
    server = null
  })

  it('holds the keys only encrypted: no private key material is in the file', () => {
    const masterKey = MasterKey.fromBase64(env.SIGNET_MASTER_KEY!)
    const bytes = readFileSync(backupFile)
    const copy = new Database(backupFile, { readonly: true })
    const rows = copy.prepare('SELECT kid, keyset, alg, private_key FROM keys WHERE private_key IS NOT NULL').all() as { kid: string; keyset: string; alg: string; private_key: Buffer }[]
    copy.close()
    expect(rows.length).toBe(3)
    for (const row of rows) {
      const { der, jwk } = openStoredKey(masterKey, { ...row, privateKey: row.private_key })
      expect(bytes.includes(der)).toBe(false)
      for (const member of ['d', 'p', 'q'] as const) {
        if (!jwk[member]) continue
        expect(bytes.includes(Buffer.from(jwk[member]!, 'base64url'))).toBe(false)
        expect(bytes.includes(Buffer.from(jwk[member]!))).toBe(false)
      }
    }
    expect(bytes.includes(Buffer.from(env.SIGNET_MASTER_KEY!))).toBe(false)
    expect(bytes.includes(masterKey.bytes)).toBe(false)
  })

  it('never overwrites a file unless --force, never writes over the database itself, and leaves no partial file', async () => {
    const before = readFileSync(backupFile)
    const exists = await runCli(['backup', backupFile], { env })
    expect(exists.code).toBe(1)
    expect(exists.stderr).toMatch(/^signet: .*signet-backup\.db exists: choose another name, or pass --force to replace it\n$/)
    expect(readFileSync(backupFile).equals(before)).toBe(true)

    const forced = await cliJson(['backup', backupFile, '--force'], env)
    expect(forced.file).toBe(backupFile)

    const itself = await runCli(['backup', db, '--force'], { env })
    expect(itself.code).toBe(1)
    expect(itself.stderr).toContain('is the database itself')

    const missing = await runCli(['backup'], { env })
    expect(missing.code).toBe(2)
    expect(missing.stderr).toBe("signet: missing required argument 'file'\n")

    const leftovers = readdirSync(join(dir.path, 'backups')).filter((name) => name.includes('partial'))
    expect(leftovers).toEqual([])
  })

  it('refuses a storage that cannot copy itself (PostgreSQL: use pg_dump), writing nothing', async () => {
    const storage = { kind: 'postgres' } as unknown as Storage
    const target = join(dir.path, 'pg.db')
    await expect(backupDatabase(storage, target)).rejects.toThrow(ConfigError)
    await expect(backupDatabase(storage, target)).rejects.toThrow(/pg_dump/)
    expect(existsSync(target)).toBe(false)
  })
})
