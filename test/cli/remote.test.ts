import { generateKeyPairSync } from 'node:crypto'
import { existsSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newAdminToken } from '../helpers/temp.js'
import { issuerKey } from '../identity/test-issuer.js'
import { cliJson, fileTempDir, getJson, postJson, requireBuild, runCli, startServe, until, type CliResult, type RunningChild } from './helpers.js'

/**
 * The CLI's remote mode: with SIGNET_URL (or --url) and the admin token, admin
 * commands use the admin API of a running server. Every command here runs in a
 * directory with no database, and with no SIGNET_DB or master key in its
 * environment: a whole rotation and an emergency revocation work without them.
 */

const dir = fileTempDir('signet-remote-')
/** Where the remote commands run: nothing Signet-related is in it. */
const elsewhere = fileTempDir('signet-elsewhere-')
const adminToken = newAdminToken()
let server: RunningChild & { url: string }
let db: string
let remote: Record<string, string>
let clientToken: string

const outputs: CliResult[] = []
async function run(args: string[], env: Record<string, string | undefined> = remote): Promise<CliResult> {
  const result = await runCli(args, { env, cwd: elsewhere.path })
  outputs.push(result)
  return result
}
async function json<T = any>(args: string[], env: Record<string, string | undefined> = remote): Promise<T> {
  const result = await run([...args, '--json'], env)
  expect(result.code, `signet ${args.join(' ')}: ${result.stderr}`).toBe(0)
  return JSON.parse(result.stdout) as T
}
const sign = () => postJson(`${server.url}/v1/sign`, clientToken, { claims: { sub: 'user-1' } })
const jwksKids = async () => ((await getJson(`${server.url}/.well-known/jwks.json`)).body.keys as { kid: string }[]).map((k) => k.kid)

beforeAll(async () => {
  requireBuild()
  db = join(dir.path, 'signet.db')
  const init = await cliJson(['init'], { SIGNET_DB: db, SIGNET_ADMIN_TOKEN: adminToken })
  server = await startServe({ SIGNET_DB: db, SIGNET_MASTER_KEY: init.masterKey, SIGNET_ADMIN_TOKEN: adminToken })
  remote = { SIGNET_URL: server.url, SIGNET_ADMIN_TOKEN: adminToken }
  clientToken = (await json(['clients', 'create', 'remote app', '--keysets', '*', '--scopes', 'sign,verify'])).token
})

afterAll(async () => {
  await server?.stop('SIGTERM')
  dir.remove()
  elsewhere.remove()
})

describe('signet --url: admin commands through the admin API, with no database or master key', () => {
  it('does a whole rotation: a scheduled key shows as pending in status, a second rotate warns, an immediate one signs', async () => {
    const before = (await json<{ keysets: any[] }>(['status'])).keysets[0]
    expect(before.name).toBe('default')
    expect(before.active.kid).toMatch(/\S/)
    expect(before.nextRotation.inSeconds).toBeGreaterThan(29 * 86_400) // the default 30-day period

    const pending = await json(['keys', 'rotate'])
    expect(pending.state).toBe('pending')
    const status = (await json<{ keysets: any[] }>(['status'])).keysets[0]
    expect(status.pending).toEqual([expect.objectContaining({ kid: pending.kid, activatesAt: pending.activatesAt })])
    // The next rotation is the pending key's activation: max(3600, 2 x 300) s away.
    expect(status.nextRotation.at).toBe(pending.activatesAt)
    expect(status.nextRotation.inSeconds).toBeGreaterThan(3500)
    expect(await jwksKids()).toContain(pending.kid) // published before it signs

    const second = await run(['keys', 'rotate'])
    expect(second.code).toBe(0)
    expect(second.stderr).toContain('warning: keyset default already had a pending key')
    expect(second.stderr).toContain(pending.kid)

    const human = await run(['status'])
    expect(human.stdout).toMatch(/keyset default \(ES256\)/)
    expect(human.stdout).toMatch(new RegExp(`pending\\s+${pending.kid} \\(ES256\\), activates \\S+ \\(in (59m|1h)`))
    expect(human.stdout).toMatch(/next rotation\s+\S+ \(in (59m|1h)[^)]*\), when the pending key activates/)

    const rotated = await json(['keys', 'rotate', '--immediate'])
    expect(rotated.state).toBe('active')
    const { value: signed } = await until(async () => {
      const answer = await sign()
      return answer.body.kid === rotated.kid ? answer : undefined
    })
    await jwtVerify(signed.body.token, createLocalJWKSet((await getJson(`${server.url}/.well-known/jwks.json`)).body))
    const after = (await json<{ keysets: any[] }>(['status'])).keysets[0]
    expect(after.active.kid).toBe(rotated.kid)
    expect(after.retired).toEqual([expect.objectContaining({ kid: before.active.kid })])
    // A retired key leaves the JWKS after the longest token (maxTtl 3600) plus 60 s of skew.
    expect(after.retired[0].inSeconds).toBeGreaterThan(3600)
    expect(after.retired[0].inSeconds).toBeLessThanOrEqual(3660)
    expect((await run(['status'])).stdout).toMatch(new RegExp(`retired\\s+${before.active.kid}, leaves the JWKS \\S+ \\(in 1h`))
    expect(existsSync(join(elsewhere.path, 'data'))).toBe(false) // no database was made here
  })

  it('does an emergency revocation with --url: the key leaves the JWKS, and the replacement and the JWKS max-age are printed', async () => {
    const active = (await sign()).body.kid as string
    const result = await runCli(['--url', server.url, 'keys', 'revoke', active, '--reason', 'key compromised'], { env: { SIGNET_ADMIN_TOKEN: adminToken }, cwd: elsewhere.path })
    expect(result.code, result.stderr).toBe(0)
    const replacement = /now signs with (\S+)\./.exec(result.stdout)?.[1]
    expect(replacement).toBeDefined()
    expect(replacement).not.toBe(active)
    expect(result.stdout).toContain(`Verifiers may hold the old JWK Set, with ${active} in it, for up to 5m`)
    await until(async () => ((await jwksKids()).includes(active) ? undefined : true))
    expect((await sign()).body.kid).toBe(replacement)
    const keys = await json<{ keys: any[] }>(['keys', 'list'])
    expect(keys.keys.find((k) => k.kid === active)).toMatchObject({ state: 'revoked', revokeReason: 'key compromised' })
    // --json says the same for scripts.
    const next = (await sign()).body.kid as string
    const revoked = await json(['keys', 'revoke', next, '--reason', 'drill'])
    expect(revoked).toMatchObject({ kid: next, state: 'revoked', jwksMaxAge: 300 })
    expect(revoked.replacementKid).toMatch(/\S/)
    expect(revoked.replacementKid).not.toBe(next)
  })

  it('refuses a wrong admin token with one clear line, exit 1, never showing a token', async () => {
    const wrong = newAdminToken()
    const result = await run(['keys', 'list'], { SIGNET_URL: server.url, SIGNET_ADMIN_TOKEN: wrong })
    expect(result.code).toBe(1)
    expect(result.stdout).toBe('')
    const lines = result.stderr.trimEnd().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^signet: .*admin token was refused.*\(unauthorized\)$/)
    expect(result.stderr).not.toContain(wrong)
    expect(result.stderr).not.toContain(adminToken)
    // No token at all: said before any request.
    const none = await run(['keys', 'list'], { SIGNET_URL: server.url })
    expect(none.code).toBe(1)
    expect(none.stderr).toContain('SIGNET_ADMIN_TOKEN (or SIGNET_ADMIN_TOKEN_FILE) is required')
    // Nothing listening there (a port just freed).
    const probe = createServer()
    await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done))
    const port = (probe.address() as AddressInfo).port
    await new Promise((done) => probe.close(done))
    const away = await run(['keys', 'list'], { SIGNET_URL: `http://127.0.0.1:${port}`, SIGNET_ADMIN_TOKEN: adminToken })
    expect(away.code).toBe(1)
    expect(away.stderr).toBe(`signet: cannot reach Signet at http://127.0.0.1:${port} (ECONNREFUSED)\n`)
  })

  it('creates and changes keysets, words refusals in flags, and says when a new alg takes effect', async () => {
    const created = await json(['keysets', 'create', 'sessions', '--alg', 'es384', '--max-ttl', '1h', '--default-ttl', '10m', '--rotation-period', '7d'])
    expect(created).toMatchObject({ name: 'sessions', alg: 'ES384', maxTtl: 3600, defaultTtl: 600, rotationPeriod: 604_800 })
    const refused = await run(['keysets', 'update', 'sessions', '--default-ttl', '2h'])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toBe('signet: --default-ttl must not exceed --max-ttl (invalid_request)\n')

    const updated = await run(['keysets', 'update', 'sessions', '--alg', 'ps256'])
    expect(updated.code, updated.stderr).toBe(0)
    // Seven days from the key's activation, less the moments since: rounded to the second, 7d when that was under half a second.
    expect(updated.stdout).toMatch(/The new algorithm takes effect at the next rotation: \S+ \(in (6d 23h|7d)\), automatic, every 7d\./)
    expect((await json(['keysets', 'list'])).keysets.find((k: any) => k.name === 'sessions').alg).toBe('PS256')
    const jwks = await json(['jwks', 'sessions'])
    expect(jwks.keys[0].alg).toBe('ES384') // the active key keeps its algorithm until the rotation
  })

  it('manages clients, revoking one by its unique name and refusing an ambiguous name with the ids', async () => {
    const one = await json(['clients', 'create', 'batch job'])
    const twin1 = await json(['clients', 'create', 'worker', '--max-ttl', '15m'])
    const twin2 = await json(['clients', 'create', 'worker'])
    expect(twin1.maxTtl).toBe(900)
    const ambiguous = await run(['clients', 'revoke', 'worker'])
    expect(ambiguous.code).toBe(2)
    expect(ambiguous.stderr).toContain(twin1.id)
    expect(ambiguous.stderr).toContain(twin2.id)
    const revoked = await json(['clients', 'revoke', 'batch job'])
    expect(revoked).toMatchObject({ id: one.id, name: 'batch job' })
    expect(revoked.revokedAt).not.toBeNull()
    expect((await postJson(`${server.url}/v1/sign`, one.token, { claims: {} })).status).toBe(401)
    // By id as before; a name no live client has is not found.
    expect((await json(['clients', 'revoke', twin2.id])).id).toBe(twin2.id)
    expect((await json(['clients', 'revoke', 'worker'])).id).toBe(twin1.id) // the only live one left
    const missing = await run(['clients', 'revoke', 'batch job'])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('client_not_found')
    expect((await json(['clients', 'list'])).clients.map((c: any) => c.name)).toContain('worker')
  })

  it('pages through the audit log with --after and --limit', async () => {
    const first = await json<{ events: any[]; next: number | null }>(['audit', 'list', '--limit', '2'])
    expect(first.events).toHaveLength(2)
    expect(first.next).toBe(first.events[1].id)
    const second = await json<{ events: any[] }>(['audit', 'list', '--after', String(first.next), '--limit', '2'])
    expect(second.events[0].id).toBe(first.next! + 1)
    const table = await run(['audit', 'list', '--limit', '3'])
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+AT\s+ACTOR\s+ACTION\s+TARGET/)
    expect(table.stdout).toContain('More: signet audit list --after 3 --limit 3')
    expect((await run(['audit', 'list', '--limit', '5000'])).stderr).toContain('--limit must be a whole number from 1 to 1000')
    // Changes made through the API are audited under the admin's name.
    const all = await json<{ events: any[] }>(['audit', 'list', '--limit', '1000'])
    expect(all.events.some((e) => e.action === 'key.revoke' && e.actor === 'admin')).toBe(true)
  })

  it('imports a key from a file through the API', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const file = join(elsewhere.path, 'imported.pem')
    writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
    const imported = await json(['keys', 'import', file, '--immediate'])
    expect(imported).toMatchObject({ keyset: 'default', state: 'active', alg: 'ES256' })
    await until(async () => ((await sign()).body.kid === imported.kid ? true : undefined))
  })

  it('adds, lists and removes a workload-token issuer with a static JWK Set through the API', async () => {
    const key = await issuerKey('cluster-key-1', 'RS256')
    const file = join(elsewhere.path, 'cluster-jwks.json')
    writeFileSync(file, JSON.stringify({ keys: [key.publicJwk] }))
    const added = await json(['issuers', 'add', 'prod-cluster', '--issuer', 'https://kubernetes.default.svc', '--jwks-file', file, '--audiences', 'signet,vault'])
    expect(added).toMatchObject({ name: 'prod-cluster', issuer: 'https://kubernetes.default.svc', jwksUri: null, audiences: ['signet', 'vault'], jwks: { keys: [{ kid: 'cluster-key-1', kty: 'RSA' }] } })
    // The server has it: the admin API lists it, and so does the command, as a table too.
    const listed = await getJson(`${server.url}/v1/admin/issuers`, { headers: { authorization: `Bearer ${adminToken}` } })
    expect(listed.body.issuers.map((i: { name: string }) => i.name)).toEqual(['prod-cluster'])
    expect((await json(['issuers', 'list'])).issuers).toEqual([added])
    expect((await run(['issuers', 'list'])).stdout).toMatch(/prod-cluster\s+https:\/\/kubernetes\.default\.svc\s+static: 1 key\(s\)/)
    // A refusal is the server's problem: the iss is taken.
    const taken = await run(['issuers', 'add', 'other', '--issuer', 'https://kubernetes.default.svc', '--jwks-file', file])
    expect(taken.code).toBe(1)
    expect(taken.stderr).toMatch(/^signet: .*\(conflict\)\n$/)
    // Audited under the admin's name.
    const events = (await json<{ events: any[] }>(['audit', 'list', '--limit', '1000'])).events
    expect(events.find((e) => e.action === 'issuer.create' && e.target === 'prod-cluster')).toMatchObject({ actor: 'admin' })

    const removed = await run(['issuers', 'remove', 'prod-cluster'])
    expect(removed.code, removed.stderr).toBe(0)
    expect(removed.stdout).toBe('Removed issuer prod-cluster (https://kubernetes.default.svc).\n')
    expect((await json(['issuers', 'list'])).issuers).toEqual([])
    const again = await run(['issuers', 'remove', 'prod-cluster'])
    expect(again.code).toBe(1)
    expect(again.stderr).toContain('issuer_not_found')
  })

  it('verifies the audit log through the server: intact, then the edited event named with exit 1', async () => {
    const intact = await run(['audit', 'verify'])
    expect(intact.code, intact.stderr).toBe(0)
    expect(intact.stdout).toMatch(/^audit log intact: \d+ events\n$/)
    const answer = await json(['audit', 'verify'])
    expect(answer).toMatchObject({ intact: true, problems: [] })
    expect(answer.events).toBeGreaterThan(5)

    // Someone with write access to the server's database edits an event.
    const sqlite = new Database(db)
    sqlite.prepare("UPDATE audit SET actor = 'mallory' WHERE id = 4").run()
    sqlite.close()
    const broken = await runCli(['--url', server.url, 'audit', 'verify'], { env: { SIGNET_ADMIN_TOKEN: adminToken }, cwd: elsewhere.path })
    outputs.push(broken)
    expect(broken.code).toBe(1)
    expect(broken.stdout).toBe('')
    expect(broken.stderr).toBe('signet: audit log broken at event 4: row 4 was changed after it was written\n')
    const brokenJson = await run(['audit', 'verify', '--json'])
    expect(brokenJson.code).toBe(1)
    expect(JSON.parse(brokenJson.stdout)).toMatchObject({ intact: false, problems: [{ id: 4, reason: 'row 4 was changed after it was written' }] })
  })

  it('fails audit verify when a server says the log is broken but names no event', async () => {
    // Not Signet's own answer (it always names a problem), but a proxy or another
    // version might send it: a tamper check must not pass on it.
    const stub = createHttpServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ intact: false, events: 9, problems: [] }))
    })
    await new Promise<void>((listening) => stub.listen(0, '127.0.0.1', listening))
    try {
      const url = `http://127.0.0.1:${(stub.address() as AddressInfo).port}`
      for (const args of [['audit', 'verify'], ['audit', 'verify', '--json']]) {
        const result = await runCli(['--url', url, ...args], { env: { SIGNET_ADMIN_TOKEN: adminToken }, cwd: elsewhere.path })
        outputs.push(result)
        expect(result.code, args.join(' ')).toBe(1)
        expect(result.stderr).toBe('signet: audit log broken: the server says the log is not intact and names no event\n')
        expect(result.stdout).not.toContain('intact: 9')
      }
    } finally {
      await new Promise((closed) => stub.close(closed))
    }
  })

  it('refuses --url on the commands that need the database, naming it', async () => {
    for (const command of [['rewrap'], ['backup', 'x.db'], ['check'], ['init'], ['serve'], ['dev']]) {
      const result = await run(['--url', server.url, ...command])
      expect(result.code, command.join(' ')).toBe(2)
      expect(result.stderr).toMatch(new RegExp(`^signet: ${command[0]}.* needs the database \\(SIGNET_DB or SIGNET_DATABASE_URL\\) on this machine`))
    }
  })

  it('never printed the admin token, in any output above', () => {
    expect(outputs.length).toBeGreaterThan(20)
    for (const output of outputs) {
      expect(output.stdout).not.toContain(adminToken)
      expect(output.stderr).not.toContain(adminToken)
    }
  })
})
