import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { JSONWebKeySet } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MasterKey } from '../../src/crypto/master-key.js'
import { SqliteStorage } from '../../src/storage/sqlite/index.js'
import type { Snapshot } from '../../src/storage/types.js'
import { newAdminToken, newMasterKey, tempDir } from '../helpers/harness.js'
import { requireBuild } from '../cli/helpers.js'
import { LeakWatch, watchPrivateKey } from '../helpers/secrets.js'
import { checkAuditChain, checkIssuedTokens, checkStoredKeys, type IssuedToken } from './guarantees.js'

const FIXTURE = join(import.meta.dirname, 'crash-server.ts')
const ROOT = join(import.meta.dirname, '../..')
/** Kills in all; every fifth lands during start-up (module loading, migration, key loading). */
const KILLS = 30
const SPEED = 20
const KEYSETS = ['default', 'second']

interface Running {
  child: ChildProcess
  exited: Promise<void>
  ready: Promise<string>
}

/**
 * kill -9 at random moments (docs/guarantees.md, guarantee 6). A server process rotates,
 * activates and revokes keys in a loop with a fast clock while this test signs
 * through it; it is killed with SIGKILL 30 times. After each kill the database is
 * read directly: exactly one active key per keyset, no key lost, every published
 * key whole. After each restart, every token issued before, whose key was not
 * revoked, verifies against the new JWK Set until its exp.
 */
describe('crashes: SIGKILL at random moments', () => {
  const dir = tempDir('signet-crash-')
  const dbPath = join(dir.path, 'signet.db')
  const watch = new LeakWatch()
  const masterKeyText = watch.secret('the master key', newMasterKey())
  const masterKey = MasterKey.fromBase64(masterKeyText)
  const adminToken = watch.secret('the admin token', newAdminToken())
  const t0 = Date.UTC(2031, 0, 1)
  const real0 = Date.now()
  const virtualNow = () => Math.floor(t0 + (Date.now() - real0) * SPEED)
  let running: Running | null = null

  beforeAll(() => requireBuild()) // the server runs from dist/
  afterAll(async () => {
    if (running) {
      running.child.kill('SIGKILL')
      await running.exited
    }
    dir.remove()
  })

  function start(): Running {
    const child = spawn(process.execPath, [FIXTURE], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        // The test run's compile cache (vitest.config.ts): each of the thirty starts compiles less.
        ...(process.env.NODE_COMPILE_CACHE ? { NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE } : {}),
        SIGNET_MASTER_KEY: masterKeyText,
        SIGNET_ADMIN_TOKEN: adminToken,
        SIGNET_DB: dbPath,
        SIGNET_PORT: '0',
        CRASH_SPEED: String(SPEED),
        CRASH_T0: String(t0),
        CRASH_REAL0: String(real0),
      },
    })
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    const ready = new Promise<string>((resolve, reject) => {
      child.once('exit', (code, signal) => reject(new Error(`the server exited before it was ready (${code ?? signal})`)))
      createInterface({ input: child.stdout! }).on('line', (line) => {
        watch.record(line)
        if (line.startsWith('{"ready":')) resolve(JSON.parse(line).ready)
      })
    })
    ready.catch(() => {})
    createInterface({ input: child.stderr! }).on('line', (line) => watch.record(line))
    return { child, exited, ready }
  }

  async function kill(server: Running): Promise<void> {
    server.child.kill('SIGKILL')
    await server.exited
    running = null
  }

  /** Reads the database as it was left, with no server running. */
  async function readDatabase(): Promise<{ snapshot: Snapshot; audit: Awaited<ReturnType<SqliteStorage['listAudit']>> }> {
    const storage = new SqliteStorage(dbPath)
    try {
      return { snapshot: await storage.snapshot(), audit: await storage.listAudit(0, 10_000_000) }
    } finally {
      await storage.close()
    }
  }

  async function call(url: string, path: string, init: { method?: string; token?: string; body?: unknown } = {}): Promise<{ status: number; json: () => Promise<any>; text: () => Promise<string> }> {
    const response = await fetch(`${url}${path}`, {
      method: init.method ?? 'GET',
      headers: { ...(init.token ? { authorization: `Bearer ${init.token}` } : {}), ...(init.body ? { 'content-type': 'application/json' } : {}) },
      ...(init.body ? { body: JSON.stringify(init.body) } : {}),
    })
    return response
  }

  it(`survives ${KILLS} kills with nothing lost`, { timeout: 300_000 }, async () => {
    const tokens: IssuedToken[] = []
    const knownKids = new Set<string>()
    let clientToken: string | null = null
    let startupKills = 0
    let verifiedAfterRestart = 0
    let revokedRefused = 0

    for (let cycle = 0; cycle < KILLS; cycle++) {
      const server = start()
      running = server

      if (cycle > 0 && cycle % 5 === 0) {
        // Killed while starting: anywhere from module loading to the first requests.
        await new Promise((resolve) => setTimeout(resolve, 150 + Math.random() * 1000))
        await kill(server)
        startupKills++
      } else {
        const url = await server.ready
        if (clientToken === null) {
          const created = await call(url, '/v1/admin/clients', { method: 'POST', token: adminToken, body: { name: 'crash signer', keysets: '*', scopes: ['sign'] } })
          expect(created.status).toBe(201)
          clientToken = watch.secret('the client token', (await created.json()).token)
        }

        // After the restart, before any new change: one active key per keyset, and
        // every earlier token verifies against the JWK Set served now, unless revoked.
        const jwks: Record<string, JSONWebKeySet> = {}
        const revoked = new Set<string>()
        for (const keyset of KEYSETS) {
          const keys = (await (await call(url, `/v1/admin/keysets/${keyset}/keys`, { token: adminToken })).json()).keys as { kid: string; state: string }[]
          expect(keys.filter((key) => key.state === 'active'), `active keys of ${keyset} after restart ${cycle}`).toHaveLength(1)
          for (const key of keys) if (key.state === 'revoked') revoked.add(key.kid)
          const served = await call(url, `/keysets/${keyset}/jwks.json`)
          expect(served.status).toBe(200)
          const body = await served.text()
          watch.record(body)
          jwks[keyset] = JSON.parse(body)
        }
        const counts = await checkIssuedTokens(tokens, jwks, revoked, virtualNow())
        verifiedAfterRestart += counts.verified
        revokedRefused += counts.revoked

        // Let the chaos begin, sign until the kill, which comes at a random moment.
        server.child.stdin!.write('go\n')
        const killAt = Date.now() + 100 + Math.random() * 600
        while (Date.now() < killAt) {
          const keyset = KEYSETS[tokens.length % 2]!
          const response = await call(url, '/v1/sign', { method: 'POST', token: clientToken, body: { keyset, claims: { sub: 'crash' }, ttl: 300 } }).catch(() => null)
          if (!response) break
          const text = await response.text()
          watch.record(text)
          expect(response.status, text).toBe(200)
          const { token, kid, alg, exp } = JSON.parse(text)
          tokens.push({ token, kid, keyset, alg, exp })
          knownKids.add(kid)
          // A steady client, not a flood: the machine is shared with other tests.
          await new Promise((resolve) => setTimeout(resolve, 5))
        }
        await kill(server)
      }

      // Straight after the kill, storage as it was left: one active key per keyset,
      // every published key whole, no key that was ever seen gone, the audit chain intact.
      const { snapshot, audit } = await readDatabase()
      if (snapshot.keysets.length === 0) continue // killed before the first keyset was made
      await checkStoredKeys(snapshot, masterKey)
      checkAuditChain(audit, masterKey)
      const stored = new Set(snapshot.keys.map((key) => key.kid))
      for (const kid of knownKids) expect(stored.has(kid), `key ${kid} was lost at kill ${cycle}`).toBe(true)
      for (const kid of stored) knownKids.add(kid)
    }

    expect(startupKills).toBeGreaterThanOrEqual(5)
    expect(tokens.length).toBeGreaterThan(100)
    expect(verifiedAfterRestart).toBeGreaterThan(100)
    expect(knownKids.size).toBeGreaterThan(20)
    // Some kills came with revocations: their tokens were refused, as they should be.
    expect(revokedRefused).toBeGreaterThan(0)

    // No log line or answer of any run held a private key, the master key or a token.
    const { snapshot } = await readDatabase()
    for (const key of snapshot.keys) if (key.privateKey) watchPrivateKey(watch, masterKey, { ...key, privateKey: key.privateKey })
    expect(watch.texts.length).toBeGreaterThan(100)
    watch.assertClean()
  })
})
