import { generateKeyPairSync } from 'node:crypto'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { SignJWT } from 'jose'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { auditHash, chainEvent, GENESIS_HASH, sealedAuditHead, verifyChain } from '../../src/audit/chain.js'
import { generateToken, hashToken } from '../../src/auth/tokens.js'
import { toPublicJwk } from '../../src/crypto/jwk.js'
import { MasterKey } from '../../src/crypto/master-key.js'
import { rewrapMasterKey } from '../../src/ops/rewrap.js'
import { checkIntegrity } from '../../src/storage/integrity-check.js'
import { MANIFEST_RECORDED } from '../../src/storage/integrity-upgrade.js'
import { IntegrityKeys } from '../../src/storage/row-integrity.js'
import { unsealed } from '../../src/storage/sealed-storage.js'
import { PostgresStorage } from '../../src/storage/postgres/index.js'
import { createHarness, newMasterKey, tempDir, type Harness, type HarnessOptions } from '../helpers/harness.js'
import { requireBuild, runCli } from '../cli/helpers.js'
import { createTestSchema, pgBaseUrl, PG_SKIP } from '../storage/postgres-fixture.js'

/**
 * "The database is not trusted" (docs/security.md): an attacker who can read and
 * write the database, but holds no master key, tries each attack of issue 15
 * against a running service, on SQLite and on PostgreSQL. Each must be refused or
 * detected, while the genuine keys and clients go on working.
 */

type Rows = Record<string, unknown>[]

/** A database the tests (and the attacker) reach directly, and Signet on it. */
interface Place {
  /** SQL as the attacker runs it, with $1-style parameters. */
  sql(query: string, params?: unknown[]): Promise<Rows>
  /** Starts Signet on this database. */
  open(options?: HarnessOptions): Promise<Harness>
  /** The environment of a `signet` command on this database (without the master key). */
  env: Record<string, string>
  remove(): Promise<void>
}

async function sqlitePlace(): Promise<Place> {
  const dir = tempDir()
  const file = join(dir.path, 'signet.db')
  let db: Database.Database | null = null
  return {
    sql: async (query, params = []) => {
      db ??= new Database(file)
      const statement = db.prepare(query.replace(/\$\d+/g, '?'))
      if (statement.reader) return statement.all(...params) as Rows
      statement.run(...params)
      return []
    },
    open: (options = {}) => createHarness({ ...options, dir: dir.path }),
    env: { SIGNET_DB: file },
    remove: async () => {
      db?.close()
      dir.remove()
    },
  }
}

async function postgresPlace(): Promise<Place> {
  const schema = await createTestSchema('signet_untrusted')
  return {
    sql: async (query, params) => (await schema.query(query, params)).rows,
    open: (options = {}) => createHarness({ ...options, storage: new PostgresStorage({ url: schema.url }), env: { SIGNET_DATABASE_URL: schema.url } }),
    env: { SIGNET_DATABASE_URL: schema.url },
    remove: () => schema.drop(),
  }
}

const PLACES: [string, () => Promise<Place>][] = [['SQLite', sqlitePlace]]
if (pgBaseUrl) PLACES.push(['PostgreSQL', postgresPlace])
else it.skip(PG_SKIP, () => {})

/** A running Signet on a database the attacker writes to. */
interface Target {
  h: Harness
  sql: Place['sql']
  /** The environment of a `signet` command on this database, with the master key. */
  env: Record<string, string>
  close(): Promise<void>
}

async function target(place: Place): Promise<Target> {
  const h = await place.open()
  return {
    h,
    sql: place.sql,
    env: { ...place.env, SIGNET_MASTER_KEY: h.masterKey },
    close: async () => {
      await h.close()
      await place.remove()
    },
  }
}

/** What the attacker does after each write: bump the generation so every replica reloads at once. */
async function reload(t: Target): Promise<void> {
  await t.sql("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE name = 'generation'")
  await t.h.signet.keystore.poll()
}

async function sign(h: Harness, token: string, body: Record<string, unknown> = {}) {
  return h.request('POST', '/v1/sign', { token, body: { claims: { sub: 'user-1' }, ...body } })
}

/** A genuine client signs and its token verifies. */
async function genuineWorks(h: Harness, token: string, keyset = 'default'): Promise<void> {
  // aud: a client limited to audiences must send one (guarantee 12); the others may.
  const signed = await sign(h, token, { keyset, claims: { sub: 'user-1', aud: 'api' } })
  expect(signed.statusCode, signed.body).toBe(200)
  const verified = await h.request('POST', '/v1/verify', { token, body: { token: signed.json().token, keyset } })
  expect(verified.json()).toMatchObject({ valid: true })
}

async function metric(h: Harness, table: string): Promise<number> {
  const text = (await h.request('GET', '/metrics')).body
  const match = new RegExp(`^signet_integrity_failures_total\\{table="${table}"\\} (\\d+)$`, 'm').exec(text)
  return match ? Number(match[1]) : 0
}

async function check(t: Target, args: string[] = ['check']) {
  return runCli(args, { env: t.env })
}

beforeAll(() => requireBuild())

describe.each(PLACES)('an attacker with write access to the database (%s)', (placeName, place) => {
  let t: Target
  let genuine: string

  const setUp = async () => {
    t = await target(await place())
    genuine = (await t.h.createClient()).token
  }
  afterEach(async () => {
    await t?.close()
  })

  it('passes signet check on an untouched database', async () => {
    await setUp()
    const result = await check(t)
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/^intact: 1 keysets, 1 keys, 1 clients, \d+ audit events\n$/)
  })

  it('cannot publish its own key: a forged retired key is left out of the JWKS and its tokens do not verify', async () => {
    await setUp()
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const jwk = await toPublicJwk(publicKey, 'ES256')
    const now = t.h.clock.now()
    const [genuineKey] = await t.sql("SELECT mac, max_ttl_seen FROM keys WHERE keyset = 'default'")
    // The kid is the right thumbprint, and the MAC is copied from a genuine row: still no.
    await t.sql(
      'INSERT INTO keys (kid, keyset, alg, state, public_jwk, created_at, retired_at, published_until, max_ttl_seen, mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)',
      [jwk.kid, 'default', 'ES256', 'retired', JSON.stringify(jwk), now - 1000, now - 1000, now + 10 * 365 * 86_400_000, genuineKey!.max_ttl_seen, genuineKey!.mac],
    )
    await reload(t)
    await t.h.signet.keystore.poll()

    const jwks = (await t.h.request('GET', '/.well-known/jwks.json')).json()
    expect(jwks.keys.map((key: { kid: string }) => key.kid)).not.toContain(jwk.kid)
    expect(jwks.keys).toHaveLength(1)
    const forged = await new SignJWT({ sub: 'admin' }).setProtectedHeader({ alg: 'ES256', kid: jwk.kid }).setIssuedAt(now / 1000).setExpirationTime(now / 1000 + 600).sign(privateKey)
    const verified = await t.h.request('POST', '/v1/verify', { token: genuine, body: { token: forged } })
    expect(verified.json()).toMatchObject({ valid: false })
    await genuineWorks(t.h, genuine)

    // Logged at error once, counted once, however often storage is reloaded.
    await reload(t)
    const logged = t.h.logs.lines.filter((line) => line.includes('integrity check failed') && line.includes(jwk.kid))
    expect(logged).toHaveLength(1)
    expect(JSON.parse(logged[0]!)).toMatchObject({ level: 50, integrity: { table: 'keys', id: jwk.kid } })
    expect(await metric(t.h, 'keys')).toBe(1)

    const result = await check(t)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`signet: integrity failure: keys ${jwk.kid}: integrity MAC does not match`)
    // The CLI, given the master key, prints the JWK Set the server serves, and says why.
    const printed = await runCli(['jwks', '--json'], { env: t.env })
    expect(printed.code).toBe(0)
    expect(JSON.parse(printed.stdout)).toEqual(jwks)
    expect(printed.stderr).toContain(`integrity check failed: keys row ${jwk.kid} is ignored`)
  })

  it('cannot have a forged pending key activated by the schedule', async () => {
    await setUp()
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const jwk = await toPublicJwk(publicKey, 'ES256')
    const now = t.h.clock.now()
    await t.sql(
      'INSERT INTO keys (kid, keyset, alg, state, public_jwk, created_at, activates_at, max_ttl_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
      [jwk.kid, 'default', 'ES256', 'pending', JSON.stringify(jwk), now - 1000, now - 1, 3600],
    )
    await reload(t)
    await t.h.signet.tick()
    const [row] = await t.sql('SELECT state FROM keys WHERE kid = $1', [jwk.kid])
    expect(row!.state).toBe('pending')
    const jwks = (await t.h.request('GET', '/.well-known/jwks.json')).json()
    expect(jwks.keys.map((key: { kid: string }) => key.kid)).not.toContain(jwk.kid)
    await genuineWorks(t.h, genuine)
  })

  it('a tampered active key stops its keyset, and the schedule that keeps failing on it says so once', async () => {
    await setUp()
    await t.h.createKeyset({ name: 'other', alg: 'ES256' })
    await t.sql("UPDATE keys SET max_ttl_seen = max_ttl_seen + 1 WHERE keyset = 'default' AND state = 'active'")
    await reload(t)
    expect((await sign(t.h, genuine)).statusCode).not.toBe(200)
    t.h.signet.start()
    const failures = () => t.h.logs.lines.filter((line) => line.includes('scheduled key changes failed')).length
    for (let waited = 0; failures() === 0 && waited < 5000; waited += 100) await new Promise((resolve) => setTimeout(resolve, 100))
    expect(failures()).toBe(1)
    // Several more polls meet the same failure, silently.
    await new Promise((resolve) => setTimeout(resolve, 2000))
    expect(failures()).toBe(1)
    await genuineWorks(t.h, genuine, 'other')
  })

  it('cannot hide a key under the kid of another: the kid must be the thumbprint of the stored JWK', async () => {
    await setUp()
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const jwk = await toPublicJwk(publicKey, 'ES256')
    const [row] = await t.sql("SELECT kid FROM keys WHERE keyset = 'default'")
    // The genuine row's public key swapped for the attacker's, under the genuine kid.
    await t.sql('UPDATE keys SET public_jwk = $1 WHERE kid = $2', [JSON.stringify({ ...jwk, kid: row!.kid }), row!.kid])
    await reload(t)
    const jwks = (await t.h.request('GET', '/.well-known/jwks.json')).json()
    expect(JSON.stringify(jwks)).not.toContain(jwk.x)
    const result = await check(t)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`keys ${row!.kid as string}:`)
  })

  it('cannot make itself a client: a forged admin client row gets 401', async () => {
    await setUp()
    const token = generateToken()
    const [client] = await t.sql('SELECT mac FROM clients')
    await t.sql(
      'INSERT INTO clients (id, name, keysets, scopes, audiences, max_ttl, token_hash, created_at, revoked_at, mac) VALUES ($1, $2, $3, $4, NULL, NULL, $5, $6, NULL, $7)',
      ['00000000-0000-4000-8000-000000000000', 'mallory', '"*"', '["admin","sign","verify"]', hashToken(token), t.h.clock.now(), client!.mac],
    )
    await reload(t)
    expect((await t.h.request('GET', '/v1/admin/clients', { token })).statusCode).toBe(401)
    expect((await sign(t.h, token)).statusCode).toBe(401)
    await genuineWorks(t.h, genuine)
    expect(await metric(t.h, 'clients')).toBe(1)
    const result = await check(t)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('clients 00000000-0000-4000-8000-000000000000:')
  })

  it('cannot widen a keyset: a raised max_ttl is never used, and other keysets keep working', async () => {
    await setUp()
    await t.h.createKeyset({ name: 'other', alg: 'ES256' })
    const [keyset] = await t.sql("SELECT max_ttl FROM keysets WHERE name = 'default'")
    const maxTtl = Number(keyset!.max_ttl)
    await t.sql("UPDATE keysets SET max_ttl = $1 WHERE name = 'default'", [maxTtl * 100])
    await reload(t)
    const widened = await sign(t.h, genuine, { ttl: maxTtl * 10 })
    expect(widened.statusCode).not.toBe(200)
    await genuineWorks(t.h, genuine, 'other')
    const result = await check(t)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('keysets default: integrity MAC does not match')
  })

  it('cannot lift a client\'s audiences: the changed client no longer authenticates', async () => {
    await setUp()
    const limited = await t.h.createClient({ name: 'limited', audiences: ['api'] })
    await genuineWorks(t.h, limited.token)
    await t.sql('UPDATE clients SET audiences = NULL WHERE id = $1', [limited.id])
    await reload(t)
    expect((await sign(t.h, limited.token, { claims: { sub: 'user-1', aud: 'elsewhere' } })).statusCode).toBe(401)
    expect((await sign(t.h, limited.token)).statusCode).toBe(401)
    await genuineWorks(t.h, genuine)
    const result = await check(t)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`clients ${limited.id}: integrity MAC does not match`)
  })

  // SQLite stores text in an integer column; PostgreSQL refuses it.
  it.runIf(placeName === 'SQLite')('cannot lift a ceiling with text in a number column: the NaN it reads is not the null the row held', async () => {
    await setUp()
    const capped = await t.h.createClient({ name: 'no-own-ceiling' })
    expect((await sign(t.h, capped.token, { ttl: 99_999 })).json().code).toBe('ttl_too_long')
    await t.sql("UPDATE clients SET max_ttl = 'x' WHERE id = $1", [capped.id])
    await reload(t)
    expect((await sign(t.h, capped.token, { ttl: 315_360_000 })).statusCode).toBe(401)
    expect(await metric(t.h, 'clients')).toBe(1)
    await genuineWorks(t.h, genuine)
  })

  it('reports a row again when it is tampered with again in another way, after a repair', async () => {
    await setUp()
    const victim = await t.h.createClient({ name: 'tampered-twice' })
    const [original] = await t.sql('SELECT name, scopes FROM clients WHERE id = $1', [victim.id])
    await t.sql('UPDATE clients SET scopes = $1 WHERE id = $2', ['["admin","sign","verify"]', victim.id])
    await reload(t)
    await reload(t)
    expect(await metric(t.h, 'clients')).toBe(1)
    await t.sql('UPDATE clients SET scopes = $1 WHERE id = $2', [original!.scopes, victim.id])
    await reload(t)
    await genuineWorks(t.h, victim.token)
    await t.sql('UPDATE clients SET name = $1 WHERE id = $2', ['renamed', victim.id])
    await reload(t)
    expect((await sign(t.h, victim.token)).statusCode).toBe(401)
    expect(await metric(t.h, 'clients')).toBe(2)
    expect(t.h.logs.lines.filter((line) => line.includes(`clients row ${victim.id} is ignored`))).toHaveLength(2)
  })

  describe('rolling rows back: an earlier genuine copy of a row put back (the state manifest)', () => {
    /** The row of `table` whose `column` is `id`, all columns as stored. */
    const copyOf = async (table: string, column: string, id: string) => (await t.sql(`SELECT * FROM ${table} WHERE ${column} = $1`, [id]))[0]!
    /** Puts a copied row back in place of the current one, as the attacker would. */
    const putBack = async (table: string, column: string, row: Record<string, unknown>) => {
      await t.sql(`DELETE FROM ${table} WHERE ${column} = $1`, [row[column]])
      const columns = Object.keys(row)
      await t.sql(`INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`, columns.map((name) => row[name]))
    }

    it('cannot bring a revoked client back: its row from before the revocation is refused', async () => {
      await setUp()
      const victim = await t.h.createClient({ name: 'revoked-later' })
      const before = await copyOf('clients', 'id', victim.id)
      expect((await t.h.request('DELETE', `/v1/admin/clients/${victim.id}`, { token: t.h.adminToken })).statusCode).toBe(200)
      await putBack('clients', 'id', before)
      await reload(t)
      expect((await sign(t.h, victim.token)).statusCode).toBe(401)
      await genuineWorks(t.h, genuine)
      expect(await metric(t.h, 'clients')).toBe(1)
      // Signet's next write carries its own record forward: it does not take in the row put back.
      await t.h.createClient({ name: 'written-after' })
      await reload(t)
      expect((await sign(t.h, victim.token)).statusCode).toBe(401)
      const result = await check(t)
      expect(result.code).toBe(1)
      expect(result.stderr).toContain(`clients ${victim.id}: not the version the state manifest records: an earlier copy was put back`)
    })

    it('cannot bring a revoked key back to sign: its active row put back, its replacement deleted', async () => {
      await setUp()
      await t.h.createKeyset({ name: 'other', alg: 'ES256' })
      const [active] = await t.sql("SELECT kid FROM keys WHERE keyset = 'default' AND state = 'active'")
      const compromised = String(active!.kid)
      const before = await copyOf('keys', 'kid', compromised)
      expect((await t.h.request('POST', `/v1/admin/keys/${compromised}/revoke`, { token: t.h.adminToken, body: { reason: 'key compromise' } })).statusCode).toBe(200)
      const [replacement] = await t.sql("SELECT kid FROM keys WHERE keyset = 'default' AND state = 'active'")
      await t.sql('DELETE FROM keys WHERE kid = $1', [replacement!.kid])
      await putBack('keys', 'kid', before)
      await reload(t)
      const jwks = await t.h.request('GET', '/.well-known/jwks.json')
      expect(jwks.body).not.toContain(compromised)
      const signed = await sign(t.h, genuine)
      expect(signed.statusCode).not.toBe(200)
      expect(signed.body).not.toContain(compromised)
      await genuineWorks(t.h, genuine, 'other')
      const result = await check(t)
      expect(result.code).toBe(1)
      expect(result.stderr).toContain(`keys ${compromised}: not the version the state manifest records`)
      expect(result.stderr).toContain(`keys ${String(replacement!.kid)}: the state manifest records this row, but it is missing: deleted outside Signet`)
    })

    it('cannot undo a narrowed policy: a client\'s row from before the change is refused', async () => {
      await setUp()
      await t.h.createKeyset({ name: 'other', alg: 'ES256' })
      const wide = await t.h.createClient({ name: 'narrowed-later', keysets: '*' })
      await genuineWorks(t.h, wide.token, 'other')
      const before = await copyOf('clients', 'id', wide.id)
      expect((await t.h.request('PATCH', `/v1/admin/clients/${wide.id}`, { token: t.h.adminToken, body: { keysets: ['default'] } })).statusCode).toBe(200)
      await putBack('clients', 'id', before)
      await reload(t)
      expect((await sign(t.h, wide.token, { keyset: 'other' })).statusCode).toBe(401)
      await genuineWorks(t.h, genuine)
      expect((await check(t)).stderr).toContain(`clients ${wide.id}: not the version the state manifest records`)
    })

    it('reports a row deleted outside Signet, and the service goes on', async () => {
      await setUp()
      const deleted = await t.h.createClient({ name: 'deleted' })
      await t.sql('DELETE FROM clients WHERE id = $1', [deleted.id])
      await reload(t)
      expect((await sign(t.h, deleted.token)).statusCode).toBe(401)
      await genuineWorks(t.h, genuine)
      expect(await metric(t.h, 'clients')).toBe(1)
      const result = await check(t)
      expect(result.code).toBe(1)
      expect(result.stderr).toContain(`clients ${deleted.id}: the state manifest records this row, but it is missing`)
    })

    it('cannot pass an emptied database off as a new one: with every row, event and integrity value deleted, what Signet writes next is not trusted', async () => {
      await setUp()
      const [marker] = await t.sql("SELECT value FROM meta WHERE name = 'integrity'")
      for (const table of ['keys', 'keysets', 'clients', 'issuers', 'audit']) await t.sql(`DELETE FROM ${table}`)
      await t.sql("DELETE FROM meta WHERE name IN ('state', 'integrity', 'audit_head')")
      await reload(t)
      // Signet writes again (a new keyset, its key and their events), then the marker goes back.
      await t.h.request('POST', '/v1/admin/keysets', { token: t.h.adminToken, body: { name: 'after-the-wipe' } })
      await t.sql("INSERT INTO meta (name, value) VALUES ('integrity', $1)", [marker!.value])
      await reload(t)
      expect((await t.h.request('GET', '/keysets/after-the-wipe/jwks.json')).statusCode).toBe(404)
      for (const args of [['check'], ['audit', 'verify']]) {
        const result = await check(t, args)
        expect(result.code, args.join(' ')).toBe(1)
        expect(result.stderr, args.join(' ')).toContain('the state manifest (meta state) is missing')
      }
    })

    it('without its state manifest no row is used (any of them could be an earlier copy), and check says so', async () => {
      await setUp()
      await t.sql("DELETE FROM meta WHERE name = 'state'")
      await reload(t)
      expect((await sign(t.h, genuine)).statusCode).toBe(401)
      const result = await check(t)
      expect(result.code).toBe(1)
      expect(result.stderr).toMatch(/meta state: the state manifest \(meta state\) is missing/)
    })

    /** A client revoked, then its earlier row put back with the manifest of that time (no reload yet). */
    const revokedThenPutBackWithManifest = async () => {
      const victim = await t.h.createClient({ name: 'revoked-later' })
      const before = await copyOf('clients', 'id', victim.id)
      const [state] = await t.sql("SELECT value FROM meta WHERE name = 'state'")
      await t.h.request('DELETE', `/v1/admin/clients/${victim.id}`, { token: t.h.adminToken })
      await putBack('clients', 'id', before)
      await t.sql("UPDATE meta SET value = $1 WHERE name = 'state'", [state!.value])
      return victim
    }

    it('cannot put back an earlier manifest with the row it lists: the audit log has gone past it', async () => {
      await setUp()
      const victim = await revokedThenPutBackWithManifest()
      await reload(t)
      expect((await sign(t.h, victim.token)).statusCode).toBe(401)
      const result = await check(t)
      expect(result.code).toBe(1)
      expect(result.stderr).toMatch(/the state manifest is older than the audit log \(it records event \d+, the log goes on to \d+\): an earlier manifest was put back/)
    })

    it('cannot have an earlier manifest put back taken in by Signet\'s next write', async () => {
      await setUp()
      // No reload in between: the next write, not a reload, meets them first.
      const victim = await revokedThenPutBackWithManifest()
      await t.h.createClient({ name: 'written-after' })
      await reload(t)
      expect((await sign(t.h, victim.token)).statusCode).toBe(401)
      const result = await check(t)
      expect(result.code).toBe(1)
      // The write carried nothing forward: the manifest put back is still older than the log.
      expect(result.stderr).toContain(`clients ${victim.id}: the state manifest is older than the audit log`)
    })

    it('cannot turn the manifest off with an earlier integrity marker (version 1) put back', async () => {
      await setUp()
      const keys = new IntegrityKeys(MasterKey.fromBase64(t.h.masterKey))
      const victim = await t.h.createClient({ name: 'revoked-later' })
      const before = await copyOf('clients', 'id', victim.id)
      await t.h.request('DELETE', `/v1/admin/clients/${victim.id}`, { token: t.h.adminToken })
      // A version 1 marker as a backup from before the manifest holds (made here with the key).
      const [marker] = await t.sql("SELECT value FROM meta WHERE name = 'integrity'")
      const earlier = keys.sealMarker({ version: 1, keyedFrom: keys.openMarker(String(marker!.value))!.keyedFrom })
      for (const withoutManifest of [false, true]) {
        await putBack('clients', 'id', before)
        await t.sql("UPDATE meta SET value = $1 WHERE name = 'integrity'", [earlier])
        if (withoutManifest) await t.sql("DELETE FROM meta WHERE name = 'state'")
        await reload(t)
        const label = `running, manifest deleted: ${withoutManifest}`
        expect((await sign(t.h, victim.token)).statusCode, label).toBe(401)
        // The manifest, not the marker, decides: kept, it goes on serving the genuine rows; deleted, no row is used.
        expect((await sign(t.h, genuine)).statusCode, label).toBe(withoutManifest ? 401 : 200)
        const result = await check(t)
        expect(result.code, label).toBe(1)
        expect(result.stderr, label).toContain(withoutManifest ? 'the state manifest (meta state) is missing' : `clients ${victim.id}: not the version the state manifest records`)
      }
    })

    it('cannot forge the manifest: one rewritten to list an earlier copy of a row is not authentic', async () => {
      await setUp()
      const victim = await t.h.createClient({ name: 'revoked-later' })
      const before = await copyOf('clients', 'id', victim.id)
      await t.h.request('DELETE', `/v1/admin/clients/${victim.id}`, { token: t.h.adminToken })
      await putBack('clients', 'id', before)
      const [state] = await t.sql("SELECT value FROM meta WHERE name = 'state'")
      const manifest = JSON.parse(String(state!.value))
      manifest.rows.clients[victim.id] = before.mac
      await t.sql("UPDATE meta SET value = $1 WHERE name = 'state'", [JSON.stringify(manifest)])
      await reload(t)
      expect((await sign(t.h, victim.token)).statusCode).toBe(401)
      expect((await check(t)).stderr).toMatch(/the state manifest \(meta state\) is not authentic/)
    })
  })

  describe('the audit log', () => {
    /** Both commands fail, naming `expected`, and the service goes on signing. */
    const detected = async (expected: RegExp) => {
      for (const args of [['check'], ['audit', 'verify']]) {
        const result = await check(t, args)
        expect(result.code, `${args.join(' ')}: ${result.stdout}`).toBe(1)
        expect(result.stderr, args.join(' ')).toMatch(expected)
      }
      await genuineWorks(t.h, genuine)
    }

    const lastTwo = async () => (await t.sql('SELECT id, hash FROM audit ORDER BY id DESC LIMIT 2')).map((row) => ({ id: Number(row.id), hash: String(row.hash) }))

    it('detects a truncation: the last event deleted and the head moved back', async () => {
      await setUp()
      const [last, previous] = await lastTwo()
      const [head] = await t.sql("SELECT value FROM meta WHERE name = 'audit_head'")
      const mac = String(head!.value).split(':')[2]
      await t.sql('DELETE FROM audit WHERE id = $1', [last!.id])
      await t.sql("UPDATE meta SET value = $1 WHERE name = 'audit_head'", [`${previous!.id}:${previous!.hash}:${mac}`])
      await detected(/audit_head: the head of the audit log is not authentic/)
    })

    it('detects the log cut back to an earlier authentic head, its later events deleted', async () => {
      await setUp()
      const [earlier] = await t.sql("SELECT value FROM meta WHERE name = 'audit_head'")
      const keptUpTo = Number(String(earlier!.value).split(':')[0])
      await t.h.createClient({ name: 'later-1' })
      await t.h.createClient({ name: 'later-2' })
      await t.sql('DELETE FROM audit WHERE id > $1', [keptUpTo])
      await t.sql("UPDATE meta SET value = $1 WHERE name = 'audit_head'", [earlier!.value])
      await detected(/audit_head: the audit head is not the one committed with the rows \(state manifest\): events were removed from the end of the log/)
    })

    it('still detects events cut from the end after Signet writes again: the write does not make the cut look whole', async () => {
      await setUp()
      const [last] = await lastTwo()
      await t.sql('DELETE FROM audit WHERE id = $1', [last!.id])
      // The next write's event takes the deleted event's id, chained onto the shortened log.
      await t.h.createClient({ name: 'written-after-the-cut' })
      await detected(/audit_head: the audit head is not the one committed with the rows \(state manifest\)/)
    })

    it('detects events numbered below the first, which no reader pages to', async () => {
      await setUp()
      const [first] = await t.sql('SELECT * FROM audit WHERE id = 1')
      for (const id of [0, -3]) {
        const row = { ...first!, id, action: 'client.create' }
        const columns = Object.keys(row)
        await t.sql(`INSERT INTO audit (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`, columns.map((name) => row[name as keyof typeof row]))
      }
      await detected(/an event numbered -3, below the first: inserted outside Signet/)
    })

    it('detects the last event deleted with the head left as it was', async () => {
      await setUp()
      const [last] = await lastTwo()
      await t.sql('DELETE FROM audit WHERE id = $1', [last!.id])
      await detected(new RegExp(`event ${last!.id}: the log ends at event ${last!.id - 1}, but event ${last!.id} was written`))
    })

    it('detects the last event and the head both deleted', async () => {
      await setUp()
      const [last] = await lastTwo()
      await t.sql('DELETE FROM audit WHERE id = $1', [last!.id])
      await t.sql("DELETE FROM meta WHERE name = 'audit_head'")
      await detected(/audit_head: the log has events up to \d+ but no head/)
    })

    it('detects every event and the head deleted', async () => {
      await setUp()
      await t.sql('DELETE FROM audit')
      await t.sql("DELETE FROM meta WHERE name = 'audit_head'")
      await detected(/the keyed chain starts at event 1, but the log ends at event 0: events were removed/)
    })

    it('detects an event edited and the whole chain recomputed after it', async () => {
      await setUp()
      const rows = await t.sql('SELECT * FROM audit ORDER BY id')
      let prevHash = GENESIS_HASH
      for (const row of rows) {
        const id = Number(row.id)
        const event = { at: Number(row.at), actor: id === 2 ? 'someone-else' : String(row.actor), action: String(row.action), target: String(row.target), details: JSON.parse(String(row.details)) }
        // Without the master key, the attacker can only recompute plain hashes.
        const hash = auditHash(prevHash, id, event, null)
        await t.sql('UPDATE audit SET actor = $1, prev_hash = $2, hash = $3 WHERE id = $4', [event.actor, prevHash, hash, id])
        prevHash = hash
      }
      const [head] = await t.sql("SELECT value FROM meta WHERE name = 'audit_head'")
      await t.sql("UPDATE meta SET value = $1 WHERE name = 'audit_head'", [`${rows.length}:${prevHash}:${String(head!.value).split(':')[2]}`])
      await detected(/event 1: row 1 was changed after it was written/)
    })
  })
})

/** Turns a database into what the release before authenticated rows wrote: no MACs, no marker, a plain SHA-256 chain and head, the plain check value. */
async function asPreviousRelease(place: Place, masterKey: string): Promise<number> {
  await place.sql("UPDATE meta SET value = $1 WHERE name = 'master_key_check'", [MasterKey.fromBase64(masterKey).checkValue()])
  const rows = await place.sql('SELECT * FROM audit ORDER BY id')
  let prevHash = GENESIS_HASH
  for (const row of rows) {
    const id = Number(row.id)
    const hash = auditHash(prevHash, id, { at: Number(row.at), actor: String(row.actor), action: String(row.action), target: String(row.target), details: JSON.parse(String(row.details)) }, null)
    await place.sql('UPDATE audit SET prev_hash = $1, hash = $2 WHERE id = $3', [prevHash, hash, id])
    prevHash = hash
  }
  await place.sql("UPDATE meta SET value = $1 WHERE name = 'audit_head'", [`${rows.length}:${prevHash}`])
  await place.sql("DELETE FROM meta WHERE name IN ('integrity', 'state')")
  for (const table of ['keysets', 'keys', 'clients', 'issuers']) await place.sql(`ALTER TABLE ${table} DROP COLUMN mac`)
  await place.sql('DELETE FROM schema_migrations WHERE version = 5')
  return rows.length
}

/**
 * Turns a database into what the release before the state manifest wrote: a
 * version 1 marker, no manifest, and no audit event saying it had one (the chain
 * and head re-keyed with the master key, as that release would have written them).
 * Returns where the keyed chain starts.
 */
async function asBeforeTheManifest(place: Place, keys: IntegrityKeys): Promise<number> {
  const [stored] = await place.sql("SELECT value FROM meta WHERE name = 'integrity'")
  const { keyedFrom } = keys.openMarker(String(stored!.value))!
  await place.sql("UPDATE meta SET value = $1 WHERE name = 'integrity'", [keys.sealMarker({ version: 1, keyedFrom })])
  await place.sql("DELETE FROM meta WHERE name = 'state'")
  let prev: { id: number; hash: string } | null = null
  for (const row of await place.sql('SELECT * FROM audit ORDER BY id')) {
    const { [MANIFEST_RECORDED]: _recorded, ...details } = JSON.parse(String(row.details)) as Record<string, unknown>
    const event = chainEvent(prev, { at: Number(row.at), actor: String(row.actor), action: String(row.action), target: String(row.target), details }, keys.audit)
    await place.sql('UPDATE audit SET details = $1, prev_hash = $2, hash = $3 WHERE id = $4', [JSON.stringify(details), event.prevHash, event.hash, event.id])
    prev = event
  }
  await place.sql("UPDATE meta SET value = $1 WHERE name = 'audit_head'", [sealedAuditHead(prev!, keys.audit)])
  return keyedFrom
}

describe.each(PLACES)('a database of the previous release, and a master-key rotation (%s)', (_name, makePlace) => {
  let place: Place | null = null
  afterEach(async () => {
    await place?.remove()
    place = null
  })

  it('cannot be made to trust forged rows on first use again: the marker, the head and every MAC stripped, a forged admin client added', async () => {
    place = await makePlace()
    let h = await place.open()
    const { masterKey, adminToken } = h
    const client = await h.createClient()
    await h.close()
    // What the earlier release's upgrade trusted on first use, replayed on an upgraded database.
    await place.sql("DELETE FROM meta WHERE name IN ('integrity', 'audit_head')")
    for (const table of ['keysets', 'keys', 'clients', 'issuers']) await place.sql(`UPDATE ${table} SET mac = NULL`)
    const forged = generateToken()
    await place.sql(
      'INSERT INTO clients (id, name, keysets, scopes, audiences, max_ttl, token_hash, created_at, revoked_at, mac) VALUES ($1, $2, $3, $4, NULL, NULL, $5, $6, NULL, NULL)',
      ['00000000-0000-4000-8000-000000000000', 'mallory', '"*"', '["admin","sign","verify"]', hashToken(forged), Date.now()],
    )
    h = await place.open({ masterKey, adminToken })
    try {
      expect(h.logs.lines.filter((line) => line.includes('upgraded the database'))).toHaveLength(0)
      expect((await h.request('GET', '/v1/admin/clients', { token: forged })).statusCode).toBe(401)
      expect((await sign(h, forged)).statusCode).toBe(401)
      // The genuine client lost its MAC too: refused, never trusted again on first use.
      expect((await sign(h, client.token)).statusCode).toBe(401)
      // Nothing is published: the keyset row failed its check, so it is unknown.
      expect((await h.request('GET', '/.well-known/jwks.json')).statusCode).toBe(404)
    } finally {
      await h.close()
    }
    const checked = await runCli(['check'], { env: { ...place.env, SIGNET_MASTER_KEY: masterKey } })
    expect(checked.code).toBe(1)
    expect(checked.stderr).toContain('clients 00000000-0000-4000-8000-000000000000:')
  })

  it('is upgraded at the first start with the master key, once: rows authenticated, the audit log keyed from there on', async () => {
    place = await makePlace()
    let h = await place.open()
    const { masterKey, adminToken } = h
    const client = await h.createClient()
    const issued = (await sign(h, client.token)).json().token
    await h.close()
    const legacy = await asPreviousRelease(place, masterKey)
    const env = { ...place.env, SIGNET_MASTER_KEY: masterKey }
    expect((await runCli(['check'], { env })).code).toBe(1) // not upgraded yet

    h = await place.open({ masterKey, adminToken })
    try {
      await genuineWorks(h, client.token)
      expect((await h.request('POST', '/v1/verify', { token: client.token, body: { token: issued } })).json()).toMatchObject({ valid: true })
      const events = await h.signet.storage.listAudit(0, 1000)
      expect(events[legacy]).toMatchObject({ id: legacy + 1, actor: 'system', action: 'integrity.upgrade', details: { keysets: 1, keys: 1, clients: 1 } })
      expect(h.logs.lines.filter((line) => line.includes('upgraded the database'))).toHaveLength(1)
    } finally {
      await h.close()
    }
    const checked = await runCli(['check'], { env })
    expect(checked.code, checked.stderr).toBe(0)
    expect(checked.stdout).toContain(`events 1 to ${legacy} are legacy, not keyed (plain SHA-256 from before the upgrade, sealed by event ${legacy + 1})`)
    // A legacy event edited after the upgrade breaks the keyed event that sealed it.
    await place.sql("UPDATE audit SET actor = 'mallory' WHERE id = 1")
    const tampered = await runCli(['audit', 'verify'], { env })
    expect(tampered.code).toBe(1)
    expect(tampered.stderr).toMatch(/event 1: row 1 was changed after it was written/)
    await place.sql("UPDATE audit SET actor = 'system' WHERE id = 1")

    h = await place.open({ masterKey, adminToken })
    const next = newMasterKey()
    try {
      const events = await h.signet.storage.listAudit(0, 1000)
      expect(events.filter((event) => event.action === 'integrity.upgrade')).toHaveLength(1)
      await genuineWorks(h, client.token)
      // A rewrap re-keys the keyed part and keeps the legacy part as it is.
      await rewrapMasterKey(h.signet.storage, h.config.masterKey!, MasterKey.fromBase64(next), { clock: h.clock, actor: 'test' })
    } finally {
      await h.close()
    }
    const rewrapped = await runCli(['check'], { env: { ...place.env, SIGNET_MASTER_KEY: next } })
    expect(rewrapped.code, rewrapped.stderr).toBe(0)
    expect(rewrapped.stdout).toContain(`events 1 to ${legacy} are legacy, not keyed`)
  })

  it('a database sealed before the state manifest gets one at its first start, once, from its rows as they are', async () => {
    place = await makePlace()
    let h = await place.open()
    const { masterKey, adminToken } = h
    const client = await h.createClient()
    const keys = new IntegrityKeys(MasterKey.fromBase64(masterKey))
    await h.close()
    const keyedFrom = await asBeforeTheManifest(place, keys)
    const env = { ...place.env, SIGNET_MASTER_KEY: masterKey }
    const unstarted = await runCli(['check'], { env })
    expect(unstarted.code).toBe(1) // until its next start gives it a manifest
    expect(unstarted.stderr).toContain('a database sealed before it gets it at its next start with the master key')
    // Nor do the CLI's read commands use its rows meanwhile, and they say why.
    const listed = await runCli(['clients', 'list', '--json'], { env })
    expect(listed.stdout).not.toContain(client.id)
    expect(listed.stderr).toContain('the state manifest (meta state) is missing')

    h = await place.open({ masterKey, adminToken })
    try {
      await genuineWorks(h, client.token)
      expect(h.logs.lines.filter((line) => line.includes('the state manifest now records'))).toHaveLength(1)
    } finally {
      await h.close()
    }
    const [marker] = await place.sql("SELECT value FROM meta WHERE name = 'integrity'")
    expect(keys.openMarker(String(marker!.value))).toEqual({ version: 2, keyedFrom })
    expect((await place.sql("SELECT value FROM meta WHERE name = 'state'")).length).toBe(1)
    const checked = await runCli(['check'], { env })
    expect(checked.code, checked.stderr).toBe(0)
    h = await place.open({ masterKey, adminToken })
    try {
      expect(h.logs.lines.filter((line) => line.includes('the state manifest now records'))).toHaveLength(0)
    } finally {
      await h.close()
    }
  })

  it('is not given a manifest on first use again when an earlier version 1 marker is put back: its log records it had one', async () => {
    place = await makePlace()
    let h = await place.open()
    const { masterKey, adminToken } = h
    const victim = await h.createClient({ name: 'revoked-later' })
    const keys = new IntegrityKeys(MasterKey.fromBase64(masterKey))
    const [before] = await place.sql('SELECT * FROM clients WHERE id = $1', [victim.id])
    await h.request('DELETE', `/v1/admin/clients/${victim.id}`, { token: adminToken })
    await h.close()
    const [marker] = await place.sql("SELECT value FROM meta WHERE name = 'integrity'")
    const { keyedFrom } = keys.openMarker(String(marker!.value))!
    await place.sql("UPDATE meta SET value = $1 WHERE name = 'integrity'", [keys.sealMarker({ version: 1, keyedFrom })])
    await place.sql("DELETE FROM meta WHERE name = 'state'")
    await place.sql('UPDATE clients SET revoked_at = NULL, mac = $1 WHERE id = $2', [before!.mac, victim.id])
    for (const rewrap of [false, true]) {
      if (rewrap) {
        const refused = await runCli(['rewrap'], { env: { ...place.env, SIGNET_MASTER_KEY: masterKey, SIGNET_NEW_MASTER_KEY: newMasterKey() } })
        expect(refused.code).not.toBe(0)
        expect(refused.stderr).toMatch(/the integrity marker is an earlier one \(version 1\) put back: the audit log records that the database had a state manifest/)
      }
      h = await place.open({ masterKey, adminToken })
      try {
        expect(h.logs.lines.some((line) => line.includes('no state manifest is given to this database: the integrity marker is an earlier one (version 1) put back'))).toBe(true)
        expect((await sign(h, victim.token)).statusCode).toBe(401)
      } finally {
        await h.close()
      }
    }
    const checked = await runCli(['check'], { env: { ...place.env, SIGNET_MASTER_KEY: masterKey } })
    expect(checked.code).toBe(1)
    expect(checked.stderr).toContain('the state manifest (meta state) is missing')
  })

  it('rewrap re-authenticates every row and re-keys the audit log under the new master key; a tampered row stays refused', async () => {
    place = await makePlace()
    let h = await place.open()
    const { adminToken } = h
    const client = await h.createClient()
    const forged = generateToken()
    const forgedId = '00000000-0000-4000-8000-000000000001'
    await place.sql(
      'INSERT INTO clients (id, name, keysets, scopes, token_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)',
      [forgedId, 'mallory', '"*"', '["admin"]', hashToken(forged), h.clock.now()],
    )
    const from = h.config.masterKey!
    const toText = newMasterKey()
    const to = MasterKey.fromBase64(toText)

    // A broken audit log stops the rewrap: re-keying it would make the edit genuine.
    const [first] = await place.sql('SELECT actor FROM audit WHERE id = 1')
    await place.sql("UPDATE audit SET actor = 'mallory' WHERE id = 1")
    await expect(rewrapMasterKey(h.signet.storage, from, to, { clock: h.clock, actor: 'test' })).rejects.toThrow(/the audit log does not verify \(audit 1: row 1 was changed/)
    await place.sql('UPDATE audit SET actor = $1 WHERE id = 1', [first!.actor])

    const result = await rewrapMasterKey(h.signet.storage, from, to, { clock: h.clock, actor: 'test' })
    expect(result).toMatchObject({ rewrapped: 1, alreadyDone: false })
    const raw = unsealed(h.signet.storage)
    const under = await checkIntegrity(raw, new IntegrityKeys(to))
    expect(under.failures).toEqual([{ table: 'clients', id: forgedId, reason: expect.stringMatching(/no integrity MAC/) }])
    expect(under.audit.keyedFrom).toBe(1)
    expect((await checkIntegrity(raw, new IntegrityKeys(from))).failures.length).toBeGreaterThan(3)
    await h.close()

    h = await place.open({ masterKey: toText, adminToken })
    try {
      await genuineWorks(h, client.token)
      expect((await h.request('GET', '/v1/admin/clients', { token: forged })).statusCode).toBe(401)
      const events = await h.signet.storage.listAudit(0, 1000)
      expect(verifyChain(events, null, new IntegrityKeys(to).audit)).toEqual({ ok: true, rows: events.length })
    } finally {
      await h.close()
    }
  })
})
