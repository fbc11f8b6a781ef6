import { mkdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { auditHash, verifyChain } from '../../src/audit/chain.js'
import type { AuditEvent } from '../../src/keys/model.js'
import { IntegrityKeys } from '../../src/storage/row-integrity.js'
import { requireBuild, runCli } from '../cli/helpers.js'
import { createHarness, tempDir, type Harness } from '../helpers/harness.js'

/** Some admin actions, each of which writes one audit event. */
async function adminActions(h: Harness): Promise<void> {
  expect((await h.admin('POST', '/v1/admin/keysets', { name: 'orders' })).statusCode).toBe(201)
  expect((await h.admin('POST', '/v1/admin/keysets/orders/rotate', { mode: 'immediate' })).statusCode).toBe(201)
  const client = await h.createClient({ name: 'orders api' })
  expect((await h.admin('DELETE', `/v1/admin/clients/${client.id}`)).statusCode).toBe(200)
  expect((await h.admin('PATCH', '/v1/admin/keysets/orders', { defaultTtl: 120 })).statusCode).toBe(200)
}

describe('SIGNET_AUDIT_FILE', () => {
  it('receives every audit event of an action as one JSON line, identical to the stored row', async () => {
    const dir = tempDir()
    const file = join(dir.path, 'audit.jsonl')
    const h = await createHarness({ dir: dir.path, env: { SIGNET_AUDIT_FILE: file } })
    try {
      await adminActions(h)
      const lines = readFileSync(file, 'utf8').split('\n')
      expect(lines.pop()).toBe('') // every line ends with a newline
      const streamed = lines.map((line) => JSON.parse(line) as AuditEvent)
      const stored = await h.signet.storage.listAudit(0, 1000)
      // Every stored row is streamed, from the first (storage.init, written when the database is made).
      expect(streamed).toEqual(stored)
      expect(streamed[0]!.action).toBe('storage.init')
      expect(streamed.map((e) => e.action)).toEqual(expect.arrayContaining(['keyset.create', 'client.create', 'client.revoke']))
      // A shipper can check the chain from the lines alone.
      expect(verifyChain(streamed, null, new IntegrityKeys(h.config.masterKey!).audit)).toEqual({ ok: true, rows: streamed.length })
      expect(statSync(file).mode & 0o777).toBe(0o600)
      h.watch.assertClean()
    } finally {
      await h.close()
      dir.remove()
    }
  })

  it('that cannot be written leaves the action done and logs why', async () => {
    const dir = tempDir()
    const unwritable = join(dir.path, 'a-directory')
    mkdirSync(unwritable)
    const h = await createHarness({ dir: dir.path, env: { SIGNET_AUDIT_FILE: unwritable } })
    try {
      expect((await h.admin('POST', '/v1/admin/keysets', { name: 'still-made' })).statusCode).toBe(201)
      expect((await h.admin('GET', '/v1/admin/keysets/still-made')).statusCode).toBe(200)
      const events = await h.signet.storage.listAudit(0, 1000)
      expect(events.some((e) => e.action === 'keyset.create' && e.target === 'still-made')).toBe(true)
      const errors = h.logs.lines.map((line) => JSON.parse(line)).filter((line) => line.msg === 'cannot append to SIGNET_AUDIT_FILE')
      expect(errors.length).toBeGreaterThan(0)
      expect(errors[0].level).toBe(50)
    } finally {
      await h.close()
      dir.remove()
    }
  })
})

describe('signet audit verify', () => {
  const dir = tempDir()
  let db: string
  let rows: number
  let masterKey: string

  const verify = () => runCli(['audit', 'verify'], { env: { SIGNET_DB: db, SIGNET_MASTER_KEY: masterKey } })
  const edit = (work: (sqlite: Database.Database) => void) => {
    const sqlite = new Database(db)
    try {
      work(sqlite)
    } finally {
      sqlite.close()
    }
  }

  beforeAll(async () => {
    requireBuild()
    const h = await createHarness({ dir: dir.path })
    masterKey = h.masterKey
    await adminActions(h)
    rows = (await h.signet.storage.listAudit(0, 1000)).length
    await h.close()
    db = join(dir.path, 'signet.db')
  })
  afterAll(() => dir.remove())

  it('passes an intact log', async () => {
    const result = await verify()
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain(`audit log intact: ${rows} events`)
  })

  it('exits non-zero naming the row whose details were edited in the database', async () => {
    expect(rows).toBeGreaterThan(5)
    let original = ''
    edit((sqlite) => {
      original = (sqlite.prepare('SELECT details FROM audit WHERE id = 3').pluck().get() as string)
      const details = JSON.parse(original)
      sqlite.prepare('UPDATE audit SET details = ? WHERE id = 3').run(JSON.stringify({ ...details, note: 'edited' }))
    })
    const result = await verify()
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/\bevent 3\b/)
    expect(result.stderr).toMatch(/row 3 was changed after it was written/)
    edit((sqlite) => sqlite.prepare('UPDATE audit SET details = ? WHERE id = 3').run(original))
    expect((await verify()).code).toBe(0)
  })

  it('names the edited row when its hash is recomputed without the master key to hide the edit', async () => {
    edit((sqlite) => {
      const row = sqlite.prepare('SELECT * FROM audit WHERE id = 4').get() as Record<string, string | number>
      const actor = 'someone-else'
      // The best a writer without the master key can do: the plain SHA-256 of the old chain.
      const hash = auditHash(String(row.prev_hash), 4, { at: Number(row.at), actor, action: String(row.action), target: String(row.target), details: JSON.parse(String(row.details)) }, null)
      sqlite.prepare('UPDATE audit SET actor = ?, hash = ? WHERE id = 4').run(actor, hash)
    })
    const result = await verify()
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/\bevent 4\b.*row 4 was changed after it was written/)
  })

  it('needs the master key', async () => {
    const none = await runCli(['audit', 'verify'], { env: { SIGNET_DB: db, SIGNET_MASTER_KEY: undefined } })
    expect(none.code).not.toBe(0)
    expect(none.stderr).toMatch(/SIGNET_MASTER_KEY .*required by signet audit verify/)
  })
})
