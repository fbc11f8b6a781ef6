import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AUDIT_HEAD, GENESIS_HASH, openAuditHead, verifyChain } from '../../src/audit/chain.js'
import { appendAudit } from '../../src/audit/recorder.js'
import { Conflict, SignetError } from '../../src/errors.js'
import type { Client, Issuer, KeyRecord, KeyState, Keyset } from '../../src/keys/model.js'
import type { StorageConfig } from '../../src/storage/open.js'
import type { Storage, Tx } from '../../src/storage/types.js'
import { increment } from './increment.js'

const run = promisify(execFile)
const WORKER = join(import.meta.dirname, 'increment-worker.ts')

/**
 * The storage contract: what KeyService, ClientService, the keystore and the CLI
 * rely on, checked the same way against every Storage implementation.
 * sqlite.test.ts and postgres.test.ts call `storageContract` with their factory.
 */
export interface ContractFixture {
  /** A storage on an empty database; migrate() has not run. */
  storage: Storage
  /** The configuration that names this database, for child processes (openStorage). */
  config: StorageConfig
  /** Another handle on the same database, as a second process (CLI, replica) opens it. */
  open(): Storage
  /**
   * A handle whose transactions may overlap the first one's inside this process.
   * PostgreSQL: a second storage. SQLite: the same one, because better-sqlite3 is
   * synchronous and a second connection would block this thread waiting for a lock
   * the first holds across an await; real processes are shown with child processes.
   */
  concurrent(): Storage
  /** Names of the tables in the database, to show that a read created nothing. */
  tables(): Promise<string[]>
  destroy(): Promise<void>
}

const T0 = Date.UTC(2030, 0, 1)

export function keysetRecord(name: string, fields: Partial<Keyset> = {}): Keyset {
  return {
    name,
    alg: 'ES256',
    rsaBits: 2048,
    issuer: null,
    defaultTtl: 900,
    maxTtl: 3600,
    rotationPeriod: 2_592_000,
    prepublish: null,
    x5c: false,
    backend: 'software',
    createdAt: T0,
    updatedAt: T0,
    ...fields,
  }
}

let kidCounter = 0
export function keyRecord(keyset: string, state: KeyState, fields: Partial<KeyRecord> = {}): KeyRecord {
  const kid = fields.kid ?? `kid-${process.pid}-${++kidCounter}`
  return {
    kid,
    keyset,
    alg: 'ES256',
    state,
    publicJwk: { kty: 'EC', kid, use: 'sig', alg: 'ES256', crv: 'P-256', x: 'x'.repeat(43), y: 'y'.repeat(43) },
    certificate: null,
    privateKey: Buffer.from([0, 1, 2, 255, 254, kidCounter & 0xff]),
    hsmId: null,
    createdAt: T0 + kidCounter,
    activatesAt: state === 'pending' ? T0 + 3_600_000 : T0,
    activatedAt: state === 'active' ? T0 : null,
    retiredAt: null,
    publishedUntil: null,
    destroyedAt: null,
    revokedAt: null,
    revokeReason: null,
    maxTtlSeen: 3600,
    ...fields,
  }
}

export function clientRecord(id: string, fields: Partial<Client> = {}): Client {
  return {
    id,
    name: `client ${id}`,
    keysets: ['default'],
    scopes: ['sign'],
    audiences: null,
    maxTtl: null,
    tokenHash: `hash-${id}`,
    createdAt: T0,
    revokedAt: null,
    ...fields,
  }
}

const audit = (action: string, target = 't') => ({ at: T0, actor: 'test', action, target, details: { n: 1, nested: { b: [1, 'two'] } } })

/** Registers the contract tests for one storage kind. */
export function storageContract(kind: string, setup: () => Promise<ContractFixture>): void {
  describe(`storage contract: ${kind}`, () => {
    let fixture: ContractFixture
    let storage: Storage
    const extra: Storage[] = []
    /** A second handle on the same database, closed after the test. */
    const second = (): Storage => {
      const other = fixture.open()
      extra.push(other)
      return other
    }

    beforeEach(async () => {
      fixture = await setup()
      storage = fixture.storage
    })
    afterEach(async () => {
      for (const other of extra.splice(0)) await other.close()
      await fixture.destroy()
    })

    describe('before and during migration', () => {
      it('reads meta of an empty database as null and creates nothing', async () => {
        expect(await storage.getMeta('master_key_check')).toBeNull()
        expect(await fixture.tables()).toEqual([])
      })

      it('migrates to an empty store at generation 0, and a second migrate changes nothing', async () => {
        await storage.migrate()
        expect(await storage.generation()).toBe(0)
        await storage.migrate()
        await second().migrate()
        expect(await storage.generation()).toBe(0)
        const snapshot = await storage.snapshot()
        expect(snapshot).toMatchObject({ generation: 0, keysets: [], keys: [], clients: [], issuers: [] })
        expect(await storage.listAudit(0, 10)).toEqual([])
        expect(await fixture.tables()).toEqual(expect.arrayContaining(['meta', 'keysets', 'keys', 'clients', 'audit']))
      })

      it('migrates once when several processes start together', async () => {
        const others = [second(), second(), second()]
        await Promise.all([storage.migrate(), ...others.map((s) => s.migrate())])
        expect(await storage.generation()).toBe(0)
        expect(await others[0]!.generation()).toBe(0)
      })
    })

    describe('once migrated', () => {
      beforeEach(async () => {
        await storage.migrate()
      })

      it('answers ping', async () => {
        await expect(storage.ping()).resolves.toBeUndefined()
      })

      it('sets, replaces and reads meta values, inside and outside a transaction', async () => {
        await storage.transaction(async (tx) => {
          expect(await tx.getMeta('k')).toBeNull()
          await tx.setMeta('k', 'one')
          expect(await tx.getMeta('k')).toBe('one')
          await tx.setMeta('k', 'two')
        })
        expect(await storage.getMeta('k')).toBe('two')
        expect(await second().getMeta('k')).toBe('two')
        expect((await storage.snapshot()).meta.k).toBe('two')
      })

      it('stores keysets field for field, lists them in creation order, and updates them', async () => {
        const b = keysetRecord('b-set', { createdAt: T0 + 2 })
        const a = keysetRecord('a-set', {
          alg: 'RS384', rsaBits: 3072, issuer: 'https://issuer.example', defaultTtl: 60, maxTtl: 315_360_000,
          rotationPeriod: 0, prepublish: 5, x5c: true, createdAt: T0 + 1, updatedAt: T0 + 9,
        })
        await storage.transaction(async (tx) => {
          await tx.keysets.insert(b)
          await tx.keysets.insert(a)
        })
        await storage.transaction(async (tx) => {
          expect(await tx.keysets.get('a-set')).toEqual(a)
          expect(await tx.keysets.get('b-set')).toEqual(b)
          expect(await tx.keysets.get('missing')).toBeNull()
          expect((await tx.keysets.list()).map((k) => k.name)).toEqual(['a-set', 'b-set'])
        })
        const changed = { ...a, issuer: null, prepublish: null, x5c: false, updatedAt: T0 + 99 }
        await storage.transaction((tx) => tx.keysets.update(changed))
        expect(await second().transaction((tx) => tx.keysets.get('a-set'))).toEqual(changed)
      })

      it('refuses a second keyset with the same name, keeping the first', async () => {
        await storage.transaction((tx) => tx.keysets.insert(keysetRecord('dup')))
        await expect(storage.transaction((tx) => tx.keysets.insert(keysetRecord('dup', { alg: 'EdDSA' })))).rejects.toBeInstanceOf(SignetError)
        expect((await storage.transaction((tx) => tx.keysets.get('dup')))?.alg).toBe('ES256')
      })

      it('stores keys with binary and null fields intact, by keyset and across keysets', async () => {
        await storage.transaction(async (tx) => {
          await tx.keysets.insert(keysetRecord('one'))
          await tx.keysets.insert(keysetRecord('two'))
        })
        const active = keyRecord('one', 'active', { certificate: Buffer.from('30820101ff00', 'hex'), createdAt: T0 + 1 })
        const pending = keyRecord('one', 'pending', { createdAt: T0 + 2, activatesAt: 8_000_000_000_000 })
        const hsm = keyRecord('two', 'active', { privateKey: null, hsmId: 'a1b2c3', alg: 'PS512', createdAt: T0 + 3 })
        await storage.transaction(async (tx) => {
          await tx.keys.insert(pending)
          await tx.keys.insert(active)
          await tx.keys.insert(hsm)
        })
        await storage.transaction(async (tx) => {
          const read = await tx.keys.get(active.kid)
          expect(read).toEqual(active)
          expect(Buffer.isBuffer(read!.privateKey)).toBe(true)
          expect(await tx.keys.get(pending.kid)).toEqual(pending)
          expect(await tx.keys.get(hsm.kid)).toEqual(hsm)
          expect(await tx.keys.get('missing')).toBeNull()
          expect((await tx.keys.list('one')).map((k) => k.kid)).toEqual([active.kid, pending.kid])
          expect((await tx.keys.list('two')).map((k) => k.kid)).toEqual([hsm.kid])
          expect((await tx.keys.list()).map((k) => k.kid)).toEqual([active.kid, pending.kid, hsm.kid])
          expect(await tx.keys.list('none')).toEqual([])
        })
        const retired = { ...active, state: 'retired' as const, retiredAt: T0 + 5, publishedUntil: T0 + 3_660_000, privateKey: null }
        await storage.transaction((tx) => tx.keys.update(retired))
        expect(await second().transaction((tx) => tx.keys.get(active.kid))).toEqual(retired)
      })

      it('keeps at most one active key per keyset, whatever the writer does', async () => {
        await storage.transaction(async (tx) => {
          await tx.keysets.insert(keysetRecord('solo'))
          await tx.keysets.insert(keysetRecord('other'))
        })
        const first = keyRecord('solo', 'active')
        await storage.transaction((tx) => tx.keys.insert(first))
        // Another active key in the same keyset: refused, by insert or by update.
        await expect(storage.transaction((tx) => tx.keys.insert(keyRecord('solo', 'active')))).rejects.toBeInstanceOf(SignetError)
        const pending = keyRecord('solo', 'pending')
        await storage.transaction((tx) => tx.keys.insert(pending))
        await expect(storage.transaction((tx) => tx.keys.update({ ...pending, state: 'active' }))).rejects.toBeInstanceOf(SignetError)
        // Another keyset has its own active key.
        await storage.transaction((tx) => tx.keys.insert(keyRecord('other', 'active')))
        // Retire first, then activate, in one transaction: accepted (KeyService's write order).
        await storage.transaction(async (tx) => {
          await tx.keys.update({ ...first, state: 'retired', retiredAt: T0 + 1 })
          await tx.keys.update({ ...pending, state: 'active', activatedAt: T0 + 1 })
        })
        const keys = (await storage.snapshot()).keys.filter((k) => k.keyset === 'solo')
        expect(keys.filter((k) => k.state === 'active').map((k) => k.kid)).toEqual([pending.kid])
        expect(keys).toHaveLength(2)
      })

      it('refuses a duplicate kid', async () => {
        await storage.transaction((tx) => tx.keysets.insert(keysetRecord('ks')))
        const key = keyRecord('ks', 'pending')
        await storage.transaction((tx) => tx.keys.insert(key))
        await expect(storage.transaction((tx) => tx.keys.insert({ ...key, state: 'retired' }))).rejects.toBeInstanceOf(SignetError)
        expect((await storage.transaction((tx) => tx.keys.get(key.kid)))?.state).toBe('pending')
      })

      it('stores clients with list, star and null fields, and updates them', async () => {
        const star = clientRecord('c-1', { keysets: '*', scopes: ['sign', 'verify', 'admin'], audiences: ['api', 'web'], maxTtl: 120, subjects: ['user-*', 'a.b(c)'], requiredClaims: ['tenant'], createdAt: T0 + 1 })
        const plain = clientRecord('c-2', { createdAt: T0 + 2 })
        await storage.transaction(async (tx) => {
          await tx.clients.insert(plain)
          await tx.clients.insert(star)
        })
        await storage.transaction(async (tx) => {
          expect(await tx.clients.get('c-1')).toEqual(star)
          expect(await tx.clients.get('c-2')).toEqual(plain)
          expect(await tx.clients.get('nobody')).toBeNull()
          expect((await tx.clients.list()).map((c) => c.id)).toEqual(['c-1', 'c-2'])
        })
        await storage.transaction((tx) => tx.clients.update({ ...star, revokedAt: T0 + 50 }))
        expect((await second().transaction((tx) => tx.clients.get('c-1')))?.revokedAt).toBe(T0 + 50)
        // The claim policy (migration 3) is changed and cleared like the other fields.
        await storage.transaction((tx) => tx.clients.update({ ...plain, subjects: ['svc-*'], requiredClaims: ['a', 'b'] }))
        expect(await second().transaction((tx) => tx.clients.get('c-2'))).toEqual({ ...plain, subjects: ['svc-*'], requiredClaims: ['a', 'b'] })
        await storage.transaction((tx) => tx.clients.update({ ...plain, subjects: null, requiredClaims: null }))
        expect(await second().transaction((tx) => tx.clients.get('c-2'))).toEqual(plain)
        expect((await storage.snapshot()).clients.find((c) => c.id === 'c-1')).toMatchObject({ subjects: ['user-*', 'a.b(c)'], requiredClaims: ['tenant'] })
      })

      it('stores issuers field for field (a static set, a URL with its CA), updates, lists and deletes them', async () => {
        const byUri: Issuer = {
          name: 'cluster', issuer: 'https://kubernetes.default.svc', jwksUri: 'https://k8s.example/jwks', jwks: null, audiences: ['signet', 'api'],
          algorithms: ['RS256', 'ES256'], maxTokenLifetime: 3600, caCertificate: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', createdAt: T0, updatedAt: T0,
        }
        const fixed: Issuer = { ...byUri, name: 'another', issuer: 'https://other', jwksUri: null, jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'k' }] }, caCertificate: null }
        const bound = clientRecord('bound', { identity: { issuer: 'cluster', subject: 'system:serviceaccount:billing:*' } })
        await storage.transaction(async (tx) => {
          await tx.issuers.insert(byUri)
          await tx.issuers.insert(fixed)
          await tx.clients.insert(bound)
        })
        await storage.transaction(async (tx) => {
          expect(await tx.issuers.get('cluster')).toEqual(byUri)
          expect(await tx.issuers.get('another')).toEqual(fixed)
          expect(await tx.issuers.get('nobody')).toBeNull()
          expect(await tx.clients.get('bound')).toEqual(bound)
        })
        await storage.transaction((tx) => tx.issuers.update({ ...byUri, audiences: ['signet'], updatedAt: T0 + 5 }))
        const snapshot = await second().snapshot()
        expect(snapshot.issuers.map((i) => [i.name, i.audiences])).toEqual([['another', ['signet', 'api']], ['cluster', ['signet']]])
        await expect(storage.transaction((tx) => tx.issuers.insert({ ...fixed, name: 'third' }))).rejects.toBeInstanceOf(SignetError) // iss is unique
        await storage.transaction((tx) => tx.issuers.delete('another'))
        expect((await storage.transaction((tx) => tx.issuers.list())).map((i) => i.name)).toEqual(['cluster'])
      })

      it('refuses a second client with the same token hash', async () => {
        await storage.transaction((tx) => tx.clients.insert(clientRecord('first', { tokenHash: 'same' })))
        await expect(storage.transaction((tx) => tx.clients.insert(clientRecord('second', { tokenHash: 'same' })))).rejects.toBeInstanceOf(SignetError)
        expect(await storage.transaction((tx) => tx.clients.get('second'))).toBeNull()
      })

      it('chains audit events and pages through them oldest first', async () => {
        const events = await storage.transaction(async (tx) => [await appendAudit(tx, audit('a')), await appendAudit(tx, audit('b'))])
        expect(events[0]).toMatchObject({ id: 1, prevHash: GENESIS_HASH, action: 'a' })
        expect(events[1]).toMatchObject({ id: 2, prevHash: events[0]!.hash, action: 'b' })
        // Another process extends the same chain.
        const third = await second().transaction((tx) => appendAudit(tx, audit('c')))
        expect(third).toMatchObject({ id: 3, prevHash: events[1]!.hash })
        const all = await storage.listAudit(0, 100)
        expect(all).toEqual([...events, third])
        expect(verifyChain(all, null, null)).toEqual({ ok: true, rows: 3 })
        expect((await storage.listAudit(1, 1)).map((e) => e.id)).toEqual([2])
        expect(await storage.listAudit(3, 10)).toEqual([])
        expect(all[0]!.details).toEqual({ n: 1, nested: { b: [1, 'two'] } })
      })

      it('chains keyed events with an HMAC and moves the authenticated head with each, in the same transaction', async () => {
        const key = randomBytes(32)
        await storage.transaction((tx) => appendAudit(tx, audit('plain')))
        expect(await storage.getMeta(AUDIT_HEAD)).toBeNull() // an unkeyed append has no head to authenticate
        const [, keyed] = await storage.transaction(async (tx) => [await appendAudit(tx, audit('k1'), key), await appendAudit(tx, audit('k2'), key)])
        expect(openAuditHead((await storage.getMeta(AUDIT_HEAD))!, key)).toEqual({ id: keyed!.id, hash: keyed!.hash })
        const chain = await storage.listAudit(0, 10)
        expect(verifyChain(chain, null, key, 2)).toEqual({ ok: true, rows: 3 })
        expect(verifyChain(chain, null, null).ok).toBe(false)
        // A failed transaction takes its event and the head's move with it.
        await expect(second().transaction(async (tx) => {
          await appendAudit(tx, audit('lost'), key)
          throw new Conflict('no')
        })).rejects.toBeInstanceOf(Conflict)
        expect(openAuditHead((await storage.getMeta(AUDIT_HEAD))!, key)).toEqual({ id: 3, hash: keyed!.hash })
      })

      it('rolls back everything a failed transaction wrote, audit included, and passes its error on', async () => {
        await storage.transaction(async (tx) => {
          await tx.keysets.insert(keysetRecord('kept'))
          await appendAudit(tx, audit('kept'))
        })
        const before = await storage.generation()
        const failure = new Conflict('changed my mind')
        await expect(storage.transaction(async (tx: Tx) => {
          await tx.keysets.insert(keysetRecord('lost'))
          await tx.keys.insert(keyRecord('lost', 'active'))
          await tx.clients.insert(clientRecord('lost'))
          await tx.setMeta('lost', 'yes')
          await tx.keysets.update({ ...keysetRecord('kept'), issuer: 'changed' })
          await appendAudit(tx, audit('lost'))
          throw failure
        })).rejects.toBe(failure)
        const snapshot = await storage.snapshot()
        expect(snapshot.keysets.map((k) => [k.name, k.issuer])).toEqual([['kept', null]])
        expect(snapshot.keys).toEqual([])
        expect(snapshot.clients).toEqual([])
        expect(snapshot.meta.lost).toBeUndefined()
        expect(await storage.generation()).toBe(before)
        // The chain goes on from the last committed event, with no gap.
        await storage.transaction((tx) => appendAudit(tx, audit('next')))
        const chain = await storage.listAudit(0, 10)
        expect(chain.map((e) => e.action)).toEqual(['kept', 'next'])
        expect(verifyChain(chain, null, null).ok).toBe(true)
      })

      it('passes an error of the work itself through unchanged, and keeps nothing it wrote', async () => {
        const bug = new TypeError('a bug in the caller')
        const error = await storage.transaction(async (tx) => {
          await tx.keysets.insert(keysetRecord('half'))
          throw bug
        }).catch((e: unknown) => e)
        // Not relabelled as storage_unavailable: storage is fine, the caller is not (the app answers 500).
        expect(error).toBe(bug)
        expect(await storage.transaction((tx) => tx.keysets.get('half'))).toBeNull()
      })

      it('answers a broken constraint inside a transaction with 409 conflict, and keeps nothing', async () => {
        await storage.transaction((tx) => tx.keysets.insert(keysetRecord('twice')))
        const error = await storage.transaction(async (tx) => {
          await tx.setMeta('before-conflict', 'x')
          await tx.keysets.insert(keysetRecord('twice'))
        }).catch((e: unknown) => e)
        expect(error).toBeInstanceOf(SignetError)
        expect(error).toMatchObject({ code: 'conflict', status: 409 })
        expect((error as Error).message).not.toMatch(/UNIQUE|duplicate|keysets/i)
        expect(await storage.getMeta('before-conflict')).toBeNull()
      })

      it('bumps the generation by one per committed change, not for reads or failures', async () => {
        const other = second()
        expect(await storage.generation()).toBe(0)
        await storage.transaction(async (tx) => {
          await tx.keysets.list()
          await tx.getMeta('x')
        })
        expect(await storage.generation()).toBe(0)
        await storage.transaction(async (tx) => {
          await tx.keysets.insert(keysetRecord('g1'))
          await tx.keys.insert(keyRecord('g1', 'active'))
          await appendAudit(tx, audit('g'))
        })
        expect(await storage.generation()).toBe(1)
        await other.transaction((tx) => tx.setMeta('m', 'v'))
        expect(await storage.generation()).toBe(2)
        expect(await other.generation()).toBe(2)
        await expect(storage.transaction(async (tx) => {
          await tx.setMeta('m', 'w')
          throw new Conflict('no')
        })).rejects.toBeInstanceOf(Conflict)
        expect(await storage.generation()).toBe(2)
        expect((await other.snapshot()).generation).toBe(2)
      })

      it('gives a snapshot of everything, in creation order', async () => {
        await storage.transaction(async (tx) => {
          await tx.keysets.insert(keysetRecord('z', { createdAt: T0 }))
          await tx.keysets.insert(keysetRecord('y', { createdAt: T0 + 1 }))
          await tx.keys.insert(keyRecord('z', 'active', { createdAt: T0 + 5 }))
          await tx.keys.insert(keyRecord('y', 'active', { createdAt: T0 + 4 }))
          await tx.clients.insert(clientRecord('c', { revokedAt: T0 + 1 }))
          await tx.setMeta('master_key_check', 'check')
        })
        const snapshot = await second().snapshot()
        expect(snapshot.generation).toBe(1)
        expect(snapshot.keysets.map((k) => k.name)).toEqual(['z', 'y'])
        expect(snapshot.keys.map((k) => k.keyset)).toEqual(['y', 'z'])
        expect(snapshot.clients.map((c) => c.id)).toEqual(['c'])
        expect(snapshot.meta).toMatchObject({ generation: '1', master_key_check: 'check' })
      })

      it('serialises concurrent read-modify-write transactions in one process and across processes: no update is lost', async () => {
        const other = fixture.concurrent()
        if (other !== storage) extra.push(other)
        const mine = 10
        const perWorker = 8
        const workers = [1, 2].map(() => run(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify(fixture.config), String(perWorker)], { timeout: 50_000 }))
        await Promise.all([...Array.from({ length: mine }, (_, i) => increment(i % 2 === 0 ? storage : other)), ...workers])
        const total = mine + 2 * perWorker
        expect(await storage.getMeta('counter')).toBe(String(total))
        expect(await storage.generation()).toBe(total)
        const chain = await storage.listAudit(0, 100)
        expect(chain).toHaveLength(total)
        expect(verifyChain(chain, null, null).ok).toBe(true)
        // Each increment saw the one before it: targets 0..total-1, each once.
        expect(chain.map((e) => Number(e.target)).sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i))
        expect(new Set(chain.map((e) => e.actor)).size).toBe(3)
      }, 60_000)

      it('never lets two concurrent writers both activate a key in the same keyset', async () => {
        const other = fixture.concurrent()
        if (other !== storage) extra.push(other)
        await storage.transaction((tx) => tx.keysets.insert(keysetRecord('race')))
        // Each writer checks for an active key and, seeing none, activates its own: a
        // check-then-act race. Serialised transactions make exactly one of them win.
        const activateIfNone = (s: Storage) => s.transaction(async (tx) => {
          const keys = await tx.keys.list('race')
          if (keys.some((k) => k.state === 'active')) return false
          await tx.keys.insert(keyRecord('race', 'active'))
          return true
        })
        const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => activateIfNone(i % 2 ? storage : other)))
        expect(results.filter((r) => r.status === 'fulfilled' && r.value === true)).toHaveLength(1)
        const keys = (await storage.snapshot()).keys.filter((k) => k.keyset === 'race')
        expect(keys.filter((k) => k.state === 'active')).toHaveLength(1)
      })
    })
  })
}
