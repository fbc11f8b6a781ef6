import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createLocalJWKSet, jwtVerify } from 'jose'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MasterKey } from '../../src/crypto/master-key.js'
import { checkIntegrity } from '../../src/storage/integrity-check.js'
import { IntegrityKeys } from '../../src/storage/row-integrity.js'
import { PostgresStorage } from '../../src/storage/postgres/index.js'
import { cliJson, runCli } from '../cli/helpers.js'
import { createHarness, tempDir } from '../helpers/harness.js'
import { createTestSchema, pgBaseUrl, PG_SKIP, urlForSchema, type TestSchema } from '../storage/postgres-fixture.js'
import { call, requireBuild, startReplica, type ReplicaProcess } from './cluster.js'
import { within } from '../helpers/wait.js'

const run = promisify(execFile)

/**
 * The `signet` commands work on PostgreSQL exactly as on SQLite (they go through
 * openStorage), a running replica picks their changes up within 1 s, and the
 * pg_dump backup procedure of docs/postgres.md restores into a working Signet.
 */
const suite = pgBaseUrl ? describe : describe.skip

suite('signet CLI on PostgreSQL', () => {
  let db: TestSchema
  let env: Record<string, string>
  let replica: ReplicaProcess | null = null

  beforeAll(async () => {
    requireBuild()
    db = await createTestSchema('signet_cli')
  }, 60_000)
  afterAll(async () => {
    await replica?.stop()
    await db?.drop()
  })

  it('initialises the database once, and a second init refuses', async () => {
    const init = await cliJson(['init'], { SIGNET_DATABASE_URL: db.url })
    expect(init).toMatchObject({ keyset: 'default', alg: 'ES256', database: expect.stringContaining('PostgreSQL') })
    expect(JSON.stringify(init)).not.toContain('postgres://')
    env = { SIGNET_DATABASE_URL: db.url, SIGNET_MASTER_KEY: init.masterKey, SIGNET_ADMIN_TOKEN: init.adminToken }
    const again = await runCli(['init'], { env })
    expect(again.code).not.toBe(0)
    expect(again.stderr).toMatch(/already initialised/)
    const keys = await db.query("SELECT state FROM keys WHERE keyset = 'default'")
    expect(keys.rows).toEqual([{ state: 'active' }])
  })

  it('changes keys and clients from the command line; a running replica sees each within 1 s', async () => {
    replica = await startReplica('cli-served', env)
    const kids = async () => (await call(replica!, 'GET', '/.well-known/jwks.json')).json.keys.map((k: { kid: string }) => k.kid) as string[]

    const rotated = await cliJson(['keys', 'rotate', 'default'], env)
    await within(1000, async () => (await kids()).includes(rotated.kid))

    await cliJson(['keysets', 'create', 'sessions', '--alg', 'EdDSA'], env)
    await within(1000, async () => (await call(replica!, 'GET', '/keysets/sessions/jwks.json')).status === 200)

    const client = await cliJson(['clients', 'create', 'billing', '--keysets', '*'], env)
    expect(client.token).toMatch(/^signet_/)
    await within(1000, async () => (await call(replica!, 'POST', '/v1/sign', client.token, { claims: { sub: 'cli' } })).status === 200)

    const listed = await cliJson(['keys', 'list', 'default'], env)
    expect(listed.keys.map((k: { kid: string }) => k.kid)).toContain(rotated.kid)
    const printed = await cliJson(['jwks', 'default'], env)
    expect(printed).toEqual((await call(replica!, 'GET', '/.well-known/jwks.json')).json)

    await cliJson(['keys', 'revoke', rotated.kid, '--reason', 'test'], env)
    await within(1000, async () => !(await kids()).includes(rotated.kid))
    await cliJson(['clients', 'revoke', client.id], env)
    await within(1000, async () => (await call(replica!, 'POST', '/v1/sign', client.token, { claims: { sub: 'cli' } })).status === 401)

    const audit = await runCli(['audit', 'verify'], { env })
    expect(audit.code).toBe(0)
  }, 60_000)

  it('answers signet backup with the pg_dump procedure instead of a copy', async () => {
    const dir = tempDir('signet-pg-backup-')
    try {
      const backup = await runCli(['backup', join(dir.path, 'copy.db')], { env })
      expect(backup.code).not.toBe(0)
      expect(backup.stderr).toMatch(/pg_dump/)
    } finally {
      dir.remove()
    }
  })

  it('restores a pg_dump backup (docs/postgres.md) into a Signet that signs with the same master key only', async () => {
    const dir = tempDir('signet-pg-dump-')
    const database = `signet_restore_${process.pid}_${randomBytes(3).toString('hex')}`
    const admin = new pg.Client({ connectionString: pgBaseUrl! })
    await admin.connect()
    try {
      // The documented procedure: a consistent online dump of the schema, restored into a new database.
      const file = join(dir.path, 'signet.dump')
      await run('pg_dump', ['--format=custom', `--schema=${db.schema}`, `--file=${file}`, pgBaseUrl!])
      await admin.query(`CREATE DATABASE ${database}`)
      const target = new URL(pgBaseUrl!)
      target.pathname = `/${database}`
      await run('pg_restore', ['--no-owner', `--dbname=${target.toString()}`, file])

      const restoredUrl = urlForSchema(target.toString(), db.schema)
      const source = new PostgresStorage({ url: db.url })
      const original = await source.snapshot()
      await source.close()
      const restored = new PostgresStorage({ url: restoredUrl })
      const copy = await restored.snapshot()
      expect(copy.generation).toBe(original.generation)
      expect(copy.keys.map((k) => [k.kid, k.state])).toEqual(original.keys.map((k) => [k.kid, k.state]))
      // The copy keeps every guarantee: rows authentic, the audit chain whole under the master key.
      expect(await checkIntegrity(restored, new IntegrityKeys(MasterKey.fromBase64(env.SIGNET_MASTER_KEY!)))).toMatchObject({ failures: [] })

      const h = await createHarness({ storage: restored, masterKey: env.SIGNET_MASTER_KEY, adminToken: env.SIGNET_ADMIN_TOKEN, env: { SIGNET_DATABASE_URL: restoredUrl } })
      try {
        expect((await h.request('GET', '/readyz')).statusCode).toBe(200)
        const { token } = await h.createClient()
        const signed = (await h.request('POST', '/v1/sign', { token, body: { claims: { sub: 'restored' } } })).json()
        await jwtVerify(signed.token, createLocalJWKSet((await h.request('GET', '/.well-known/jwks.json')).json()))
      } finally {
        await h.close()
      }
      const wrongKey = await runCli(['keys', 'rotate'], { env: { ...env, SIGNET_DATABASE_URL: restoredUrl, SIGNET_MASTER_KEY: randomBytes(32).toString('base64') } })
      expect(wrongKey.code).not.toBe(0)
      expect(wrongKey.stderr).toMatch(/master key/)
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => {})
      await admin.end()
      dir.remove()
    }
  }, 60_000)

  it('rewraps every private key under a new master key in one transaction', async () => {
    // While a replica runs it holds the scheduler lease: rewrap would seal it, and refuses.
    expect(replica).not.toBeNull()
    const refused = await runCli(['rewrap'], { env: { ...env, SIGNET_NEW_MASTER_KEY: randomBytes(32).toString('base64') } })
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('a Signet replica holds the scheduler lease of this PostgreSQL database')
    await replica?.stop()
    replica = null
    const newKey = randomBytes(32).toString('base64')
    const before = await db.query<{ kid: string; private_key: Buffer | null }>('SELECT kid, private_key FROM keys WHERE private_key IS NOT NULL ORDER BY kid')
    expect(before.rowCount).toBeGreaterThan(0)
    const rewrap = await runCli(['rewrap'], { env: { ...env, SIGNET_NEW_MASTER_KEY: newKey } })
    expect(rewrap.code, rewrap.stderr).toBe(0)
    const after = await db.query<{ kid: string; private_key: Buffer | null }>('SELECT kid, private_key FROM keys WHERE private_key IS NOT NULL ORDER BY kid')
    expect(after.rows.map((r) => r.kid)).toEqual(before.rows.map((r) => r.kid))
    after.rows.forEach((row, i) => expect(row.private_key!.equals(before.rows[i]!.private_key!)).toBe(false))
    expect((await runCli(['keys', 'rotate'], { env })).code).not.toBe(0)
    expect((await runCli(['keys', 'rotate'], { env: { ...env, SIGNET_MASTER_KEY: newKey } })).code).toBe(0)
  }, 60_000)
})

if (!pgBaseUrl) {
  describe('signet CLI on PostgreSQL', () => {
    it.skip(PG_SKIP, () => {})
  })
}
