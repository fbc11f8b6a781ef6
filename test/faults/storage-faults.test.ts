import { generateKeyPairSync } from 'node:crypto'
import { join } from 'node:path'
import type { JSONWebKeySet } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { Signet } from '../../src/runtime.js'
import { SqliteStorage } from '../../src/storage/sqlite/index.js'
import { createHarness, newMasterKey, tempDir, type Harness } from '../helpers/harness.js'
import { FaultyStorage, seededRandom } from './faulty-storage.js'
import { checkAuditChain, checkIssuedTokens, checkPrepublish, checkStoredKeys, type IssuedToken } from './guarantees.js'

interface Answer {
  statusCode: number
  body: string
  json: () => any
}

/** What a change is run for: an HTTP answer, or the scheduler's outcome. */
type Outcome = Answer | { tick: 'ok' } | { tick: 'failed'; code: string }

const ROTATING = { name: 'rotating', alg: 'ES256', rotationPeriod: 1200, prepublish: 600, maxTtl: 300, defaultTtl: 300 }
const ED = { name: 'edkeys', alg: 'EdDSA', rotationPeriod: 0, maxTtl: 600, defaultTtl: 300 }
const LONELY = { name: 'lonely', alg: 'ES256', rotationPeriod: 0 }

/**
 * Storage that fails writes: every admin change and the scheduler are run with a
 * failure at each of their writes in turn, at commit and at begin, then under a
 * random 25% write failure rate. Each failed change must answer 503
 * storage_unavailable and leave storage, the audit log and the served JWK Sets
 * exactly as they were; afterwards guarantees 1-7 of docs/guarantees.md must hold.
 */
describe('storage faults during rotations, revocations and client changes', () => {
  const dir = tempDir('signet-faults-')
  const faulty = new FaultyStorage(new SqliteStorage(join(dir.path, 'signet.db')))
  let h: Harness
  let signer: string
  const tokens: IssuedToken[] = []
  const firstSeen = new Map<string, number>()
  let failures = 0

  beforeAll(async () => {
    h = await createHarness({ storage: faulty, dir: dir.path })
    for (const keyset of [ROTATING, ED, LONELY]) await h.createKeyset(keyset)
    signer = (await h.createClient({ scopes: ['sign'] })).token
    await observe()
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
    dir.remove()
  })

  const keysetNames = async () => (await h.signet.storage.snapshot()).keysets.map((keyset) => keyset.name)

  /** Fetches every JWK Set, noting when each kid was first published. */
  async function observe(): Promise<Record<string, JSONWebKeySet>> {
    const sets: Record<string, JSONWebKeySet> = {}
    for (const name of await keysetNames()) {
      sets[name] = (await h.request('GET', `/keysets/${name}/jwks.json`)).json()
      for (const key of sets[name]!.keys) if (!firstSeen.has(key.kid!)) firstSeen.set(key.kid!, h.clock.now())
    }
    return sets
  }

  /** Signs one token per keyset, noting the active key the service reported. */
  async function signEach(): Promise<void> {
    for (const name of await keysetNames()) {
      const activeKid = h.signet.keystore.keyset(name)?.activeKid ?? null
      const response = await h.request('POST', '/v1/sign', { token: signer, body: { keyset: name, claims: { sub: 'faults' } } })
      expect(response.statusCode, response.body).toBe(200)
      const { token, kid, alg, exp } = response.json()
      tokens.push({ token, kid, keyset: name, alg, exp, activeKid })
    }
  }

  /** Everything a failed change must leave alone. */
  async function state(): Promise<string> {
    const snapshot = await h.signet.storage.snapshot()
    const audit = await h.signet.storage.listAudit(0, 1_000_000)
    const jwks: string[] = []
    for (const name of snapshot.keysets.map((keyset) => keyset.name)) jwks.push((await h.request('GET', `/keysets/${name}/jwks.json`)).body)
    return JSON.stringify({ snapshot, audit: audit.length, last: audit.at(-1)?.hash, jwks, generation: h.signet.keystore.generation })
  }

  const tick = (): Promise<Outcome> => h.signet.tick().then(
    () => ({ tick: 'ok' as const }),
    (error: { code?: string }) => ({ tick: 'failed' as const, code: error.code ?? String(error) }),
  )

  const describeOutcome = (outcome: Outcome) => ('tick' in outcome ? JSON.stringify(outcome) : `${outcome.statusCode} ${outcome.body.slice(0, 300)}`)

  /** Compares two states without printing them (they hold ciphertexts and are long). */
  function expectSameState(after: string, before: string, message: string): void {
    if (after === before) return
    const at = [...after].findIndex((char, index) => char !== before[index])
    expect.fail(`${message}; first difference at ${at}: ...${after.slice(Math.max(0, at - 80), at + 80)}...`)
  }

  function succeeded(outcome: Outcome): boolean {
    if ('tick' in outcome) return outcome.tick === 'ok'
    return outcome.statusCode >= 200 && outcome.statusCode < 300
  }

  function expectCleanFailure(outcome: Outcome, label: string): void {
    if ('tick' in outcome) {
      expect(outcome, label).toEqual({ tick: 'failed', code: 'storage_unavailable' })
      return
    }
    expect(outcome.statusCode, `${label}: ${outcome.body}`).toBe(503)
    expect(outcome.json()).toMatchObject({ code: 'storage_unavailable', status: 503 })
    expect(outcome.body).not.toMatch(/injected|SQLITE|sqlite|stack|\bat /)
  }

  /**
   * Runs `change` with the storage failing at begin, at commit, then at each write in
   * turn until it gets through. Every failure must be clean; the last run succeeds.
   */
  async function failEverywhere(label: string, change: () => Promise<Outcome>): Promise<{ writes: number; outcome: Outcome }> {
    for (const plan of [{ kind: 'begin' as const }, { kind: 'commit' as const }]) {
      const before = await state()
      faulty.arm(plan)
      const outcome = await change()
      const injected = faulty.injected
      faulty.disarm()
      expect(injected, `${label}: a fault at ${plan.kind} was injected`).toBe(1)
      expectCleanFailure(outcome, `${label} at ${plan.kind}`)
      expectSameState(await state(), before, `${label}: a fault at ${plan.kind} left a change behind`)
      failures++
    }
    for (let at = 1; at < 100; at++) {
      const before = await state()
      faulty.arm({ kind: 'write', at })
      const outcome = await change()
      const injected = faulty.injected
      faulty.disarm()
      if (injected === 0) {
        expect(succeeded(outcome), `${label}: ${describeOutcome(outcome)}`).toBe(true)
        expect(await state(), `${label} changed something`).not.toBe(before)
        await observe()
        await signEach()
        return { writes: at - 1, outcome }
      }
      expectCleanFailure(outcome, `${label} at write ${at}`)
      expectSameState(await state(), before, `${label}: a fault at write ${at} left a change behind`)
      failures++
    }
    throw new Error(`${label} never succeeded`)
  }

  const admin = (method: string, url: string, body?: unknown) => h.request(method, url, { token: h.adminToken, ...(body !== undefined ? { body } : {}) }, (text) => text.replace(/signet_[A-Za-z0-9_-]+/g, '<token>'))
  const keysOf = async (keyset: string) => (await admin('GET', `/v1/admin/keysets/${keyset}/keys`)).json().keys as { kid: string; state: string }[]

  it('creating a keyset', async () => {
    const { writes } = await failEverywhere('create keyset', () => admin('POST', '/v1/admin/keysets', { name: 'made', alg: 'ES384' }))
    expect(writes).toBeGreaterThanOrEqual(3) // keyset, key, activation, audit rows
  })

  it('changing a keyset policy (and the active key with it)', async () => {
    const { writes } = await failEverywhere('patch keyset', () => admin('PATCH', '/v1/admin/keysets/rotating', { maxTtl: 400 }))
    expect(writes).toBeGreaterThanOrEqual(3)
  })

  it('a scheduled rotation', async () => {
    await failEverywhere('scheduled rotation', () => admin('POST', '/v1/admin/keysets/edkeys/rotate', { mode: 'scheduled' }))
  })

  it('an immediate rotation', async () => {
    const { writes } = await failEverywhere('immediate rotation', () => admin('POST', '/v1/admin/keysets/edkeys/rotate', { mode: 'immediate' }))
    expect(writes).toBeGreaterThanOrEqual(4)
  })

  it('importing a key, activated at once', async () => {
    const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
    await failEverywhere('import', () => admin('POST', '/v1/admin/keysets/edkeys/import', { pem, activate: 'immediate' }))
  })

  it('revoking a pending key', async () => {
    const pending = (await admin('POST', '/v1/admin/keysets/rotating/rotate', { mode: 'scheduled' })).json().kid
    await observe()
    await failEverywhere('revoke pending', () => admin('POST', `/v1/admin/keys/${pending}/revoke`, { reason: 'faults' }))
  })

  it('revoking a retired key', async () => {
    const retired = (await keysOf('edkeys')).find((key) => key.state === 'retired')!.kid
    await failEverywhere('revoke retired', () => admin('POST', `/v1/admin/keys/${retired}/revoke`, { reason: 'faults' }))
  })

  it('revoking the active key, promoting the pending one', async () => {
    await admin('POST', '/v1/admin/keysets/rotating/rotate', { mode: 'scheduled' })
    await observe()
    const active = (await keysOf('rotating')).find((key) => key.state === 'active')!.kid
    const { outcome } = await failEverywhere('revoke active with a successor', () => admin('POST', `/v1/admin/keys/${active}/revoke`, { reason: 'compromise drill' }))
    expect((outcome as Answer).json().state).toBe('revoked')
  })

  it('revoking the only key, making a replacement at once', async () => {
    const active = (await keysOf('lonely')).find((key) => key.state === 'active')!.kid
    await failEverywhere('revoke active without a successor', () => admin('POST', `/v1/admin/keys/${active}/revoke`, { reason: 'compromise drill' }))
    expect((await keysOf('lonely')).filter((key) => key.state === 'active')).toHaveLength(1)
  })

  it('creating, changing and revoking a client', async () => {
    const { outcome } = await failEverywhere('create client', () => admin('POST', '/v1/admin/clients', { name: 'fault client', keysets: '*', scopes: ['sign'] }))
    const { id } = (outcome as Answer).json()
    await failEverywhere('change client', () => admin('PATCH', `/v1/admin/clients/${id}`, { audiences: ['api'], subjects: ['user-*'] }))
    await failEverywhere('revoke client', () => admin('DELETE', `/v1/admin/clients/${id}`))
  })

  it('the scheduler activating a pending key', async () => {
    await admin('POST', '/v1/admin/keysets/rotating/rotate', { mode: 'scheduled' })
    await observe()
    h.clock.advanceSeconds(ROTATING.prepublish + 1)
    await failEverywhere('scheduled activation', tick)
  })

  it('the scheduler destroying retired keys and preparing the next automatic rotation', async () => {
    // The scheduler works keyset by keyset, each in its own transaction: first let the
    // other keysets' due work (edkeys' retired keys) pass, so only 'rotating' is due below.
    h.clock.advanceSeconds(100)
    await h.signet.tick()
    // Past the retired key's publishedUntil, and within prepublish of the rotation due.
    h.clock.advanceSeconds(ROTATING.rotationPeriod - ROTATING.prepublish - 100)
    const { writes } = await failEverywhere('scheduled destruction and rotation', tick)
    expect(writes).toBeGreaterThanOrEqual(3)
    const states = (await keysOf('rotating')).map((key) => key.state)
    expect(states).toContain('destroyed')
    expect(states).toContain('pending')
  })

  it('a random 25% of writes failing through 150 mixed changes', async () => {
    const random = seededRandom(20261127)
    const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!
    let applied = 0
    for (let step = 0; step < 150; step++) {
      const before = await state()
      const published = (await h.signet.storage.snapshot()).keys.filter((key) => ['pending', 'active', 'retired'].includes(key.state) && key.keyset !== 'made')
      const clients = (await h.signet.storage.snapshot()).clients.filter((client) => client.revokedAt === null && client.name === 'random')
      const changes: [string, () => Promise<Outcome>][] = [
        ['rotate scheduled', () => admin('POST', `/v1/admin/keysets/${pick(['rotating', 'edkeys', 'lonely'])}/rotate`, { mode: 'scheduled' })],
        ['rotate immediate', () => admin('POST', `/v1/admin/keysets/${pick(['rotating', 'edkeys', 'lonely'])}/rotate`, { mode: 'immediate' })],
        ['revoke', () => admin('POST', `/v1/admin/keys/${pick(published).kid}/revoke`, { reason: 'random' })],
        ['create client', () => admin('POST', '/v1/admin/clients', { name: 'random', keysets: '*', scopes: ['sign'] })],
        ['revoke client', () => (clients.length > 0 ? admin('DELETE', `/v1/admin/clients/${pick(clients).id}`) : tick())],
        ['patch', () => admin('PATCH', `/v1/admin/keysets/${pick(['rotating', 'edkeys'])}`, { defaultTtl: 100 + Math.floor(random() * 200) })],
        ['tick', () => (h.clock.advanceSeconds(Math.floor(random() * 400)), tick())],
      ]
      const [label, change] = pick(changes)
      faulty.arm({ kind: 'fraction', fraction: 0.25, random })
      const outcome = await change()
      const injected = faulty.injected
      faulty.disarm()
      if (succeeded(outcome)) {
        applied++
      } else if (injected > 0) {
        expectCleanFailure(outcome, `step ${step}: ${label}`)
        // The scheduler works keyset by keyset: a failed tick may have finished earlier keysets.
        if (!('tick' in outcome)) expectSameState(await state(), before, `step ${step}: ${label} left a change behind`)
        failures++
      } else {
        // Refused on its merits (a key revoked twice): a 4xx, and nothing changed.
        expect((outcome as Answer).statusCode, `step ${step}: ${label}: ${describeOutcome(outcome)}`).toBeLessThan(500)
        expectSameState(await state(), before, `step ${step}: ${label} was refused but changed something`)
      }
      await observe()
      await signEach()
    }
    expect(applied).toBeGreaterThan(30)
    expect(failures).toBeGreaterThan(60)
  })

  it('afterwards, guarantees 1 to 7 of docs/guarantees.md hold', async () => {
    faulty.disarm()
    await h.signet.tick()
    const snapshot = await h.signet.storage.snapshot()
    const audit = await h.signet.storage.listAudit(0, 1_000_000)
    const jwks = await observe()

    // 2 and 6: one active key per keyset, every published key encrypted, whole and bound to its row.
    await checkStoredKeys(snapshot, h.config.masterKey!)
    checkAuditChain(audit, h.config.masterKey!)
    // 4 and 7: every token still valid verifies against today's JWK Sets unless its key was revoked.
    const revoked = new Set(snapshot.keys.filter((key) => key.state === 'revoked').map((key) => key.kid))
    const counts = await checkIssuedTokens(tokens, jwks, revoked, h.clock.now())
    expect(counts.verified).toBeGreaterThan(10)
    expect(counts.revoked).toBeGreaterThan(0)
    // 5: scheduled activations came at least prepublish after the key was first published.
    const prepublish = Object.fromEntries(snapshot.keysets.map((keyset) => [keyset.name, h.signet.keys.prepublishOf(keyset)]))
    expect(checkPrepublish(snapshot, audit, firstSeen, (name) => prepublish[name]!)).toBeGreaterThan(0)
    // 3: a wrong master key is refused and changes nothing.
    const wrong = Signet.open({ config: loadConfig({ SIGNET_MASTER_KEY: newMasterKey(), SIGNET_DB: join(dir.path, 'signet.db') }), logger: h.logs.logger })
    await expect(wrong).rejects.toThrow(/not the master key/)
    expect(JSON.stringify(await h.signet.storage.snapshot())).toBe(JSON.stringify(snapshot))
    // 8: the service is up and signs.
    expect((await h.request('GET', '/readyz')).statusCode).toBe(200)
    await signEach()
    expect(failures).toBeGreaterThan(100)
    // 1: no answer or log line holds a private key, the master key or a token (afterAll).
  })
})
