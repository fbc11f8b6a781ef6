import { join } from 'node:path'
import Database from 'better-sqlite3'
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { open as openEnvelope, wrappedBy } from '../../src/crypto/envelope.js'
import { MasterKey, sealedCheckValue } from '../../src/crypto/master-key.js'
import { ConfigError, DecryptionError } from '../../src/errors.js'
import { MASTER_KEY_CHECK, MasterKeyMismatch } from '../../src/keys/master-key-check.js'
import { rewrapMasterKey } from '../../src/ops/rewrap.js'
import { Signet } from '../../src/runtime.js'
import { checkIntegrity } from '../../src/storage/integrity-check.js'
import { IntegrityKeys } from '../../src/storage/row-integrity.js'
import { unsealed } from '../../src/storage/sealed-storage.js'
import { createHarness, newMasterKey, type Harness } from '../helpers/harness.js'
import { cliJson, getJson, postJson, requireBuild, runCli, startServe, until } from '../cli/helpers.js'
import { tempDir } from '../helpers/harness.js'

/**
 * `signet rewrap`: every private key re-wrapped under SIGNET_NEW_MASTER_KEY in one
 * transaction, with the master-key check value. The crash test is in
 * rewrap-crash.test.ts; here: what it changes, what it refuses, and the playbook.
 */

let harness: Harness | null = null
afterEach(async () => {
  await harness?.close()
  harness = null
})

/** A database with software keys in several keysets and states, one revoked (no material). */
async function populated(): Promise<Harness> {
  const h = await createHarness()
  await h.createKeyset({ name: 'rsa', alg: 'RS256' })
  await h.createKeyset({ name: 'ed', alg: 'EdDSA' })
  await h.admin('POST', '/v1/admin/keysets/default/rotate', { mode: 'immediate' })
  await h.admin('POST', '/v1/admin/keysets/rsa/rotate', { mode: 'scheduled' })
  const keys = (await h.admin('GET', '/v1/admin/keysets/ed/keys')).json().keys
  await h.admin('POST', '/v1/admin/keysets/ed/rotate', { mode: 'scheduled' })
  await h.admin('POST', `/v1/admin/keys/${keys[0].kid}/revoke`, { reason: 'test' })
  return h
}

const binding = (key: { kid: string; keyset: string; alg: string }) => ({ kid: key.kid, keyset: key.keyset, alg: key.alg })
const opens = (masterKey: MasterKey, key: { kid: string; keyset: string; alg: string; privateKey: Buffer | null }) => {
  try {
    openEnvelope(masterKey, key.privateKey!, binding(key))
    return true
  } catch (error) {
    expect(error).toBeInstanceOf(DecryptionError)
    return false
  }
}

describe('rewrapMasterKey', () => {
  it('re-wraps every stored private key and the check value in one transaction; only the data key changes', async () => {
    harness = await populated()
    const from = harness.config.masterKey!
    const to = MasterKey.fromBase64(newMasterKey())
    const before = await harness.signet.storage.snapshot()
    const stored = before.keys.filter((key) => key.privateKey !== null)
    expect(stored.length).toBeGreaterThanOrEqual(5)
    expect(before.keys.some((key) => key.privateKey === null)).toBe(true)

    const result = await rewrapMasterKey(harness.signet.storage, from, to, { clock: harness.clock, actor: 'cli:test' })
    expect(result).toEqual({ rewrapped: stored.length, alreadyDone: false, masterKeyId: to.idHex })

    const after = await harness.signet.storage.snapshot()
    expect(after.generation).toBe(before.generation + 1) // one transaction
    expect(after.meta[MASTER_KEY_CHECK]).toBe(sealedCheckValue(to)) // the sealed form: the rows are authenticated
    for (const key of after.keys) {
      const old = before.keys.find((k) => k.kid === key.kid)!
      if (old.privateKey === null) {
        expect(key.privateKey).toBeNull()
        continue
      }
      expect(opens(to, key)).toBe(true)
      expect(opens(from, key)).toBe(false)
      expect(wrappedBy(key.privateKey!)!.equals(to.id)).toBe(true)
      // Same plaintext; the encrypted private key itself (after the 69-byte wrap header) is untouched.
      expect(openEnvelope(to, key.privateKey!, binding(key)).equals(openEnvelope(from, old.privateKey, binding(old)))).toBe(true)
      expect(key.privateKey!.subarray(69).equals(old.privateKey.subarray(69))).toBe(true)
      expect({ ...key, privateKey: null }).toEqual({ ...old, privateKey: null })
    }
    const events = await harness.signet.storage.listAudit(0, 1000)
    const event = events[events.length - 1]!
    expect(event).toMatchObject({ actor: 'cli:test', action: 'master_key.rewrap', target: 'master_key', details: { from: from.idHex, to: to.idHex, keys: stored.length } })
  })

  it('is idempotent: a second run finds the new key in place and changes nothing', async () => {
    harness = await populated()
    const from = harness.config.masterKey!
    const to = MasterKey.fromBase64(newMasterKey())
    await rewrapMasterKey(harness.signet.storage, from, to, { clock: harness.clock, actor: 'test' })
    const generation = await harness.signet.storage.generation()
    expect(await rewrapMasterKey(harness.signet.storage, from, to, { clock: harness.clock, actor: 'test' })).toEqual({ rewrapped: 0, alreadyDone: true, masterKeyId: to.idHex })
    expect(await harness.signet.storage.generation()).toBe(generation)
  })

  it('refuses a wrong current key, or the same key twice, and changes nothing', async () => {
    harness = await populated()
    const before = await harness.signet.storage.snapshot()
    const stranger = MasterKey.fromBase64(newMasterKey())
    const to = MasterKey.fromBase64(newMasterKey())
    await expect(rewrapMasterKey(harness.signet.storage, stranger, to, { clock: harness.clock, actor: 'test' })).rejects.toThrow(ConfigError)
    const same = harness.config.masterKey!
    await expect(rewrapMasterKey(harness.signet.storage, same, MasterKey.fromBytes(same.bytes), { clock: harness.clock, actor: 'test' })).rejects.toThrow(/same as SIGNET_MASTER_KEY/)
    expect(await harness.signet.storage.snapshot()).toEqual(before)
  })

  it('rolls everything back when one stored key cannot be opened (a tampered row), naming it', async () => {
    harness = await populated()
    const from = harness.config.masterKey!
    const db = (harness.signet.storage as unknown as { database: Database.Database }).database
    const victim = db.prepare("SELECT kid, private_key FROM keys WHERE keyset = 'rsa' AND private_key IS NOT NULL LIMIT 1").get() as { kid: string; private_key: Buffer }
    const tampered = Buffer.from(victim.private_key)
    tampered[30]! ^= 0x01 // inside the wrapped data key
    db.prepare('UPDATE keys SET private_key = ? WHERE kid = ?').run(tampered, victim.kid)
    const before = await harness.signet.storage.snapshot()

    await expect(rewrapMasterKey(harness.signet.storage, from, MasterKey.fromBase64(newMasterKey()), { clock: harness.clock, actor: 'test' }))
      .rejects.toThrow(`cannot decrypt private key ${victim.kid}`)
    expect(await harness.signet.storage.snapshot()).toEqual(before)
  })

  it('leaves a server running with the old key sealed (it signs nothing and writes nothing); restarted with the new key it signs, and old tokens verify', async () => {
    harness = await populated()
    const client = await harness.createClient()
    const oldToken = (await harness.request('POST', '/v1/sign', { token: client.token, body: { claims: { sub: 'a' } } })).json().token
    const to = newMasterKey()
    await rewrapMasterKey(harness.signet.storage, harness.config.masterKey!, MasterKey.fromBase64(to), { clock: harness.clock, actor: 'test' })

    await harness.signet.keystore.poll()
    const ready = await harness.request('GET', '/readyz')
    expect(ready.statusCode).toBe(503)
    expect(ready.json().code).toBe('sealed')
    expect((await harness.request('POST', '/v1/sign', { token: client.token, body: { claims: {} } })).json().code).toBe('sealed')
    // Nor does it write: a client made now would be sealed under the old key in a database under the new one.
    const created = await harness.request('POST', '/v1/admin/clients', { token: harness.adminToken, body: { name: 'after the rewrap', keysets: '*', scopes: ['sign'] } })
    expect(created.statusCode).toBe(503)
    expect(created.json().code).toBe('sealed')
    const dbPath = harness.config.dbPath
    await harness.app.close()
    await harness.signet.close()

    const logger = pino({ level: 'silent' })
    await expect(Signet.open({ config: loadConfig({ SIGNET_DB: dbPath, SIGNET_MASTER_KEY: harness.masterKey }), logger })).rejects.toThrow(MasterKeyMismatch)
    const restarted = await Signet.open({ config: loadConfig({ SIGNET_DB: dbPath, SIGNET_MASTER_KEY: to }), logger })
    const app = await buildApp(restarted)
    try {
      expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200)
      expect((await checkIntegrity(unsealed(restarted.storage), new IntegrityKeys(MasterKey.fromBase64(to)))).failures).toEqual([])
      const signed = await app.inject({ method: 'POST', url: '/v1/sign', headers: { authorization: `Bearer ${client.token}` }, payload: { claims: { sub: 'b' } } })
      expect(signed.statusCode).toBe(200)
      for (const token of [oldToken, signed.json().token]) {
        const verified = await app.inject({ method: 'POST', url: '/v1/verify', headers: { authorization: `Bearer ${client.token}` }, payload: { token } })
        expect(verified.json().valid).toBe(true)
      }
    } finally {
      await app.close()
      await restarted.close()
    }
  })
})

describe('signet rewrap (the command)', () => {
  it('follows the playbook: stop, rewrap, start with the new key', async () => {
    requireBuild()
    const dir = tempDir('signet-rewrap-cli-')
    try {
      const db = join(dir.path, 'signet.db')
      const init = await cliJson(['init'], { SIGNET_DB: db })
      const env = { SIGNET_DB: db, SIGNET_MASTER_KEY: init.masterKey, SIGNET_ADMIN_TOKEN: init.adminToken }
      await cliJson(['keysets', 'create', 'ps', '--alg', 'PS256'], env)
      const client = await cliJson(['clients', 'create', 'app', '--keysets', '*', '--scopes', 'sign,verify'], env)
      const first = await startServe(env)
      const oldToken = (await postJson(`${first.url}/v1/sign`, client.token, { claims: { sub: 'x' } })).body.token
      expect((await first.stop('SIGTERM')).code).toBe(0)

      const newKey = newMasterKey()
      const result = await runCli(['rewrap'], { env: { ...env, SIGNET_NEW_MASTER_KEY: newKey } })
      expect(result.code).toBe(0)
      expect(result.stdout).toContain('Re-encrypted 2 private keys')
      expect(result.stdout).not.toContain(newKey)
      expect(result.stdout).not.toContain(init.masterKey)

      // The old key no longer opens the database: refused at start, with one line.
      const refused = await runCli(['keys', 'rotate'], { env })
      expect(refused.code).toBe(1)
      expect(refused.stderr).toMatch(/^signet: SIGNET_MASTER_KEY is not the master key of this database/)
      const again = await cliJson(['rewrap'], { ...env, SIGNET_NEW_MASTER_KEY: newKey })
      expect(again.alreadyDone).toBe(true)

      const second = await startServe({ ...env, SIGNET_MASTER_KEY: newKey })
      try {
        const signed = await postJson(`${second.url}/v1/sign`, client.token, { claims: { sub: 'y' } })
        expect(signed.status).toBe(200)
        for (const token of [oldToken, signed.body.token]) {
          expect((await postJson(`${second.url}/v1/verify`, client.token, { token })).body.valid).toBe(true)
        }
      } finally {
        await second.stop('SIGTERM')
      }
    } finally {
      dir.remove()
    }
  })

  it('seals a server still running with the old key when forced (its readiness says why)', async () => {
    requireBuild()
    const dir = tempDir('signet-rewrap-live-')
    const db = join(dir.path, 'signet.db')
    const init = await cliJson(['init'], { SIGNET_DB: db })
    const env = { SIGNET_DB: db, SIGNET_MASTER_KEY: init.masterKey }
    const server = await startServe(env)
    try {
      // Without --force, rewrap refuses beside a running server (test/cli/friction.test.ts).
      await cliJson(['rewrap', '--force'], { ...env, SIGNET_NEW_MASTER_KEY: newMasterKey() })
      const { value } = await until(async () => {
        const ready = await getJson(`${server.url}/readyz`)
        return ready.status === 503 ? ready.body : undefined
      })
      expect(value.code).toBe('sealed')
      expect(value.detail).toContain('rewrapped')
    } finally {
      await server.stop('SIGTERM')
      dir.remove()
    }
  })

  it('refuses missing, malformed, wrong or identical keys with one line, and changes nothing', async () => {
    requireBuild()
    const dir = tempDir('signet-rewrap-bad-')
    try {
      const db = join(dir.path, 'signet.db')
      const init = await cliJson(['init'], { SIGNET_DB: db })
      const env = { SIGNET_DB: db, SIGNET_MASTER_KEY: init.masterKey }
      const before = (await cliJson(['audit', 'verify'], env)).events
      const cases: [Record<string, string | undefined>, string][] = [
        [{}, 'SIGNET_NEW_MASTER_KEY'],
        [{ SIGNET_NEW_MASTER_KEY: 'short' }, 'SIGNET_NEW_MASTER_KEY must be 32 random bytes'],
        [{ SIGNET_NEW_MASTER_KEY: newMasterKey(), SIGNET_MASTER_KEY: undefined }, 'SIGNET_MASTER_KEY'],
        [{ SIGNET_NEW_MASTER_KEY: newMasterKey(), SIGNET_MASTER_KEY: newMasterKey() }, 'neither SIGNET_MASTER_KEY nor SIGNET_NEW_MASTER_KEY'],
        [{ SIGNET_NEW_MASTER_KEY: init.masterKey }, 'same as SIGNET_MASTER_KEY'],
        [{ SIGNET_NEW_MASTER_KEY: newMasterKey(), SIGNET_NEW_MASTER_KEY_FILE: '/nonexistent' }, 'SIGNET_NEW_MASTER_KEY'],
      ]
      for (const [extra, message] of cases) {
        const result = await runCli(['rewrap'], { env: { ...env, ...extra } })
        expect(result.code, message).toBe(1)
        expect(result.stderr.trimEnd().split('\n'), message).toHaveLength(1)
        expect(result.stderr).toContain(message)
      }
      expect((await cliJson(['audit', 'verify'], env)).events).toBe(before)
      await cliJson(['keys', 'rotate'], env) // still under the old key
    } finally {
      dir.remove()
    }
  })
})
