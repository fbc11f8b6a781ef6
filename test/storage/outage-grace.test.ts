import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/clock.js'
import { StorageUnavailable } from '../../src/errors.js'
import { SqliteStorage } from '../../src/storage/sqlite/index.js'
import type { Storage } from '../../src/storage/types.js'
import { createHarness, tempDir, type Harness } from '../helpers/harness.js'

/**
 * A storage whose every call fails while `down` is set, as a database out of reach
 * does (driver errors become StorageUnavailable). Wraps SQLite, so the outage
 * behaviour of the keystore and the routes is shown without PostgreSQL.
 */
function faultyStorage(inner: Storage): Storage & { down: boolean } {
  const state = { down: false }
  const guard = <T>(work: () => Promise<T>): Promise<T> =>
    state.down ? Promise.reject(new StorageUnavailable('storage did not complete the operation')) : work()
  return Object.assign(state, {
    kind: inner.kind,
    migrate: () => guard(() => inner.migrate()),
    getMeta: (name: string) => guard(() => inner.getMeta(name)),
    generation: () => guard(() => inner.generation()),
    snapshot: () => guard(() => inner.snapshot()),
    transaction: <T>(work: Parameters<Storage['transaction']>[0]) => guard(() => inner.transaction(work)) as Promise<T>,
    listAudit: (after: number, limit: number) => guard(() => inner.listAudit(after, limit)),
    ping: () => guard(() => inner.ping()),
    close: () => inner.close(),
  })
}

describe('storage outage grace (SIGNET_STORAGE_OUTAGE_GRACE)', () => {
  let h: Harness | null = null
  let dir: ReturnType<typeof tempDir> | null = null
  afterEach(async () => {
    await h?.close()
    dir?.remove()
    h = null
  })

  async function start(grace: string) {
    dir = tempDir('signet-grace-')
    const storage = faultyStorage(new SqliteStorage(join(dir.path, 'signet.db')))
    const clock = new ManualClock()
    h = await createHarness({ storage, clock, env: { SIGNET_STORAGE_OUTAGE_GRACE: grace } })
    const { token } = await h.createClient({ scopes: ['sign'] })
    const sign = () => h!.request('POST', '/v1/sign', { token, body: { claims: { sub: 'u' } } })
    return { h, storage, clock, sign }
  }

  it('signs from memory until the grace ends, then refuses with 503 storage_unavailable, and resumes when storage answers', async () => {
    const { h, storage, clock, sign } = await start('120')
    storage.down = true
    clock.advanceSeconds(30)
    await h.signet.keystore.poll()
    const ready = await h.request('GET', '/readyz')
    expect(ready.statusCode).toBe(503)
    // The grace counts from the last answer (the harness loaded keys at the start), not from the failure.
    expect(ready.json()).toMatchObject({ code: 'storage_unavailable', detail: expect.stringContaining(`signing continues from memory until ${new Date(clock.now() + 90_000).toISOString()}`) })
    expect((await sign()).statusCode).toBe(200)
    expect((await h.admin('POST', '/v1/admin/keysets/default/rotate', {})).json()).toMatchObject({ status: 503, code: 'storage_unavailable' })
    expect((await h.admin('GET', '/v1/admin/keysets')).statusCode).toBe(503)

    clock.advanceSeconds(89)
    expect((await sign()).statusCode).toBe(200)
    clock.advanceSeconds(1)
    const refused = await sign()
    expect(refused.statusCode).toBe(503)
    expect(refused.json()).toMatchObject({ code: 'storage_unavailable' })
    expect((await h.request('GET', '/readyz')).json().detail).toMatch(/signing stopped/)
    // Public keys stay served: verifiers keep working.
    expect((await h.request('GET', '/.well-known/jwks.json')).statusCode).toBe(200)

    storage.down = false
    await h.signet.keystore.poll()
    expect((await h.request('GET', '/readyz')).statusCode).toBe(200)
    expect((await sign()).statusCode).toBe(200)
  })

  it('with a grace of 0 stops signing as soon as storage is seen to be down', async () => {
    const { h, storage, sign } = await start('0')
    expect((await sign()).statusCode).toBe(200)
    storage.down = true
    await h.signet.keystore.poll()
    expect((await sign()).statusCode).toBe(503)
    storage.down = false
    await h.signet.keystore.poll()
    expect((await sign()).statusCode).toBe(200)
  })

  it('answers a committed change as a success even if reloading the keys after it fails', async () => {
    const { h, storage } = await start('300')
    const inner = storage.snapshot
    // The commit goes through; the snapshot read right after it fails once.
    let failNext = false
    let failures = 0
    storage.snapshot = () => (failNext ? ((failNext = false), failures++, Promise.reject(new StorageUnavailable('gone'))) : inner())
    const transaction = storage.transaction
    storage.transaction = (work) => transaction(work).finally(() => {
      failNext = true
    })
    const rotated = await h.admin('POST', '/v1/admin/keysets/default/rotate', { mode: 'immediate' })
    expect(rotated.statusCode).toBe(201)
    storage.transaction = transaction
    expect(failures).toBe(1)
    expect(h.signet.keystore.storageOutage()).not.toBeNull()
    // The view is stale, and storage marked unavailable, until the next poll reloads it.
    await h.signet.keystore.poll()
    expect(h.signet.keystore.keyset('default')?.activeKid).toBe(rotated.json().kid)
  })
})
