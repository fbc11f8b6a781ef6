import { spawnSync } from 'node:child_process'
import { createHash, createPrivateKey } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ALGORITHMS } from '../../src/crypto/algorithms.js'
import { open as openEnvelope } from '../../src/crypto/envelope.js'
import { DecryptionError } from '../../src/errors.js'
import { createHarness, newMasterKey, type Harness } from '../helpers/harness.js'

const CLI = join(import.meta.dirname, '../../dist/cli/index.js')

/** PKCS#8 PrivateKeyInfo prefixes: version 0 then the algorithm identifier. */
const PKCS8_HEADERS = {
  rsa: Buffer.from('020100300d06092a864886f70d0101010500', 'hex'),
  ec: Buffer.from('020100301306072a8648ce3d0201', 'hex'),
  ed25519: Buffer.from('020100300506032b6570', 'hex'),
}

function filesOf(dir: string): Buffer {
  return Buffer.concat(['signet.db', 'signet.db-wal'].map((name) => join(dir, name)).filter(existsSync).map((path) => readFileSync(path)))
}

/**
 * Acceptance 3 of the core issue: nothing in the database file or its WAL is a
 * private key in the clear; ciphertexts cannot be swapped or altered; a wrong
 * master key stops the start and changes nothing.
 */
describe('private keys at rest', () => {
  let h: Harness

  beforeAll(async () => {
    h = await createHarness({ clock: { now: () => Date.now() } })
    for (const alg of ALGORITHMS) await h.createKeyset({ name: `rest-${alg.toLowerCase()}`, alg })
    await h.admin('POST', '/v1/admin/keysets/rest-es256/rotate', { mode: 'scheduled' })
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  it('the database and its WAL hold no PEM, no PKCS#8 DER, no JWK "d" member and no private key bytes', async () => {
    const bytes = filesOf(h.dir)
    expect(bytes.length).toBeGreaterThan(0)
    expect(bytes.includes('PRIVATE KEY')).toBe(false)
    expect(bytes.includes('"d"')).toBe(false)
    for (const [kind, header] of Object.entries(PKCS8_HEADERS)) expect(bytes.includes(header), kind).toBe(false)
    const snapshot = await h.signet.storage.snapshot()
    expect(snapshot.keys.length).toBe(ALGORITHMS.length + 2)
    for (const key of snapshot.keys) {
      const der = openEnvelope(h.config.masterKey!, key.privateKey!, { kid: key.kid, keyset: key.keyset, alg: key.alg })
      const jwk = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'jwk' }) as { d: string }
      expect(bytes.includes(der.subarray(0, 64)), `PKCS#8 of ${key.kid}`).toBe(false)
      expect(bytes.includes(Buffer.from(jwk.d, 'base64url')), `d of ${key.kid}`).toBe(false)
      expect(bytes.includes(jwk.d), `d (base64url) of ${key.kid}`).toBe(false)
    }
  })

  it('a ciphertext swapped between two keys fails to open with a clear error', async () => {
    const snapshot = await h.signet.storage.snapshot()
    const [a, b] = snapshot.keys.filter((key) => key.keyset === 'rest-es256')
    const backend = h.signet.backends.software
    await expect(backend.load({ ...a!, privateKey: b!.privateKey })).rejects.toThrow(DecryptionError)
    await expect(backend.load({ ...a!, privateKey: b!.privateKey })).rejects.toThrow(/wrong master key or tampered ciphertext/)
  })

  it('one flipped bit in a stored ciphertext makes it fail to open', async () => {
    const key = (await h.signet.storage.snapshot()).keys.find((k) => k.keyset === 'rest-rs256')!
    for (const offset of [0, 5, 30, 60, 75, 90, key.privateKey!.length - 1]) {
      const tampered = Buffer.from(key.privateKey!)
      tampered[offset]! ^= 0x04
      await expect(h.signet.backends.software.load({ ...key, privateKey: tampered }), `offset ${offset}`).rejects.toThrow(DecryptionError)
    }
    await expect(h.signet.backends.software.load(key)).resolves.toHaveProperty('kid', key.kid)
  })
})

describe('a ciphertext swapped in the database file', () => {
  it('makes the keyset unable to sign after a restart, with a clear log line, while other keysets sign', async () => {
    const first = await createHarness()
    await first.createKeyset({ name: 'victim' })
    await first.admin('POST', '/v1/admin/keysets/victim/rotate', {})
    const { dir, masterKey, adminToken } = first
    await first.app.close()
    await first.signet.close()

    // The swap an attacker with write access to the file would make.
    const db = new Database(join(dir, 'signet.db'))
    const [a, b] = db.prepare("SELECT kid, private_key FROM keys WHERE keyset = 'victim'").all() as { kid: string; private_key: Buffer }[]
    db.prepare('UPDATE keys SET private_key = ? WHERE kid = ?').run(b!.private_key, a!.kid)
    db.prepare('UPDATE keys SET private_key = ? WHERE kid = ?').run(a!.private_key, b!.kid)
    db.close()

    const h = await createHarness({ dir, masterKey, adminToken })
    try {
      const signer = (await h.createClient()).token
      const response = await h.request('POST', '/v1/sign', { token: signer, body: { keyset: 'victim', claims: {} } })
      expect(response.statusCode).toBe(503)
      expect(response.json().code).toBe('sealed')
      const ready = await h.request('GET', '/readyz')
      expect(ready.statusCode).toBe(503)
      expect(ready.json().detail).toMatch(/victim/)
      // The swapped rows no longer match their integrity MACs, which cover the
      // ciphertext: they are refused before decryption is tried (and the AAD binding
      // would refuse them there too: test/crypto/envelope.test.ts).
      expect(h.logs.lines.join('')).toMatch(/integrity check failed: keys row .* is ignored: integrity MAC does not match/)
      expect((await h.request('POST', '/v1/sign', { token: signer, body: { claims: {} } })).statusCode).toBe(200)
      h.watch.assertClean()
    } finally {
      await h.close()
    }
  })
})

describe('starting with the wrong master key', () => {
  it.skipIf(!existsSync(CLI))('exits non-zero with a clear message and leaves the database byte for byte unchanged', async () => {
    const h = await createHarness()
    const dir = h.dir
    await h.app.close()
    await h.signet.close()
    const before = createHash('sha256').update(readFileSync(join(dir, 'signet.db'))).digest('hex')
    const walBefore = existsSync(join(dir, 'signet.db-wal')) ? readFileSync(join(dir, 'signet.db-wal')) : null
    const wrongKey = newMasterKey()
    const run = spawnSync(process.execPath, [CLI, 'serve'], {
      env: { PATH: process.env.PATH, SIGNET_MASTER_KEY: wrongKey, SIGNET_DB: join(dir, 'signet.db'), SIGNET_PORT: '0' },
      encoding: 'utf8',
      timeout: 20_000,
    })
    expect(run.status).not.toBe(0)
    expect(run.status).not.toBeNull()
    expect(run.stderr).toMatch(/SIGNET_MASTER_KEY is not the master key of this database/)
    expect(run.stderr + run.stdout).not.toContain(wrongKey)
    expect(createHash('sha256').update(readFileSync(join(dir, 'signet.db'))).digest('hex')).toBe(before)
    const walAfter = existsSync(join(dir, 'signet.db-wal')) ? readFileSync(join(dir, 'signet.db-wal')) : null
    expect(walAfter === null || walAfter.length === 0 || (walBefore !== null && walAfter.equals(walBefore))).toBe(true)

    // A missing master key is refused the same way.
    const missing = spawnSync(process.execPath, [CLI, 'serve'], { env: { PATH: process.env.PATH, SIGNET_DB: join(dir, 'signet.db'), SIGNET_PORT: '0' }, encoding: 'utf8', timeout: 20_000 })
    expect(missing.status).not.toBe(0)
    expect(missing.stderr).toMatch(/SIGNET_MASTER_KEY/)
    expect(createHash('sha256').update(readFileSync(join(dir, 'signet.db'))).digest('hex')).toBe(before)
    h.dir && (await import('node:fs')).rmSync(dir, { recursive: true, force: true })
  })
})
