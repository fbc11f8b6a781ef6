import { join } from 'node:path'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliJson, fileTempDir, getJson, postJson, requireBuild, startServe, until, type RunningChild } from './helpers.js'

/**
 * Acceptance 2 of issue 3: the CLI works on the database of a running server, and
 * the server picks each change up within 2 s (its loop polls the storage
 * generation every 500 ms). The server and every command are separate processes.
 */

/** README, Command line: a running server picks the change up within 2 s. */
const PICKUP_MS = 2000

const dir = fileTempDir('signet-live-')
let env: Record<string, string>
let server: RunningChild & { url: string }
let clientToken: string

const sign = async (token = clientToken, keyset?: string) => postJson(`${server.url}/v1/sign`, token, { claims: { sub: 'user-1' }, ...(keyset ? { keyset } : {}) })
const jwksKids = async (path = '/.well-known/jwks.json') => ((await getJson(`${server.url}${path}`)).body.keys as { kid: string }[]).map((k) => k.kid)

beforeAll(async () => {
  requireBuild()
  const db = join(dir.path, 'signet.db')
  const init = await cliJson(['init'], { SIGNET_DB: db })
  env = { SIGNET_DB: db, SIGNET_MASTER_KEY: init.masterKey, SIGNET_ADMIN_TOKEN: init.adminToken }
  server = await startServe(env)
  clientToken = (await cliJson(['clients', 'create', 'live test', '--keysets', '*', '--scopes', 'sign,verify'], env)).token
  // The client was made by another process: the server sees it after a poll.
  await until(async () => ((await sign()).status === 200 ? true : undefined))
})

afterAll(async () => {
  await server?.stop('SIGTERM')
  dir.remove()
})

describe('a running server picks CLI changes up within 2 s', () => {
  it('keys rotate --immediate: /v1/sign uses the new kid, and its tokens verify against the served JWKS', async () => {
    const before = await sign()
    expect(before.status).toBe(200)
    const rotated = await cliJson(['keys', 'rotate', '--immediate'], env)
    expect(rotated.kid).not.toBe(before.body.kid)

    const { value: answer, elapsedMs } = await until(async () => {
      const signed = await sign()
      return signed.body.kid === rotated.kid ? signed : undefined
    })
    expect(elapsedMs).toBeLessThan(PICKUP_MS)
    const jwks = (await getJson(`${server.url}/.well-known/jwks.json`)).body
    const { protectedHeader } = await jwtVerify(answer.body.token, createLocalJWKSet(jwks))
    expect(protectedHeader.kid).toBe(rotated.kid)
    // The old key is retired, still published: its tokens keep verifying.
    await jwtVerify(before.body.token, createLocalJWKSet(jwks))
  })

  it('keys revoke: the key leaves the served JWKS, and signing goes on with a replacement', async () => {
    const signedBefore = await sign()
    const active = signedBefore.body.kid as string
    expect(await jwksKids()).toContain(active)
    const revoked = await cliJson(['keys', 'revoke', active, '--reason', 'compromised in test'], env)
    expect(revoked.state).toBe('revoked')

    const { elapsedMs } = await until(async () => ((await jwksKids()).includes(active) ? undefined : true))
    expect(elapsedMs).toBeLessThan(PICKUP_MS)
    const after = await sign()
    expect(after.status).toBe(200)
    expect(after.body.kid).not.toBe(active)
    expect(await jwksKids()).toContain(after.body.kid)
    // A token of the revoked key no longer verifies on the server; a new one does.
    const stale = await postJson(`${server.url}/v1/verify`, clientToken, { token: signedBefore.body.token })
    expect(stale.body.valid).toBe(false)
    const fresh = await postJson(`${server.url}/v1/verify`, clientToken, { token: after.body.token })
    expect(fresh.body.valid).toBe(true)
  })

  it('keys revoke of a retired key removes it from the JWKS too', async () => {
    const keys = await cliJson<{ keys: { kid: string; state: string }[] }>(['keys', 'list'], env)
    const retired = keys.keys.find((k) => k.state === 'retired')!
    expect(await jwksKids()).toContain(retired.kid)
    await cliJson(['keys', 'revoke', retired.kid], env)
    const { elapsedMs } = await until(async () => ((await jwksKids()).includes(retired.kid) ? undefined : true))
    expect(elapsedMs).toBeLessThan(PICKUP_MS)
  })

  it('keysets create: the server serves the new keyset and signs with it', async () => {
    const created = await cliJson(['keysets', 'create', 'partners', '--alg', 'EdDSA'], env)
    const { elapsedMs } = await until(async () => ((await sign(clientToken, 'partners')).status === 200 ? true : undefined))
    expect(elapsedMs).toBeLessThan(PICKUP_MS)
    expect(await jwksKids('/keysets/partners/jwks.json')).toEqual([created.activeKid])
  })

  it('clients revoke: the token stops working', async () => {
    const other = await cliJson(['clients', 'create', 'short lived', '--scopes', 'sign'], env)
    await until(async () => ((await sign(other.token)).status === 200 ? true : undefined))
    await cliJson(['clients', 'revoke', other.id], env)
    const { elapsedMs } = await until(async () => ((await sign(other.token)).status === 401 ? true : undefined))
    expect(elapsedMs).toBeLessThan(PICKUP_MS)
  })

  it('the server log names no secret, and the audit log records the CLI as actor', async () => {
    const audit = (await getJson(`${server.url}/v1/admin/audit?limit=1000`, { headers: { authorization: `Bearer ${env.SIGNET_ADMIN_TOKEN}` } })).body
    const actors = new Set((audit.events as { actor: string }[]).map((e) => e.actor))
    expect([...actors].some((actor) => actor.startsWith('cli'))).toBe(true)
    const logs = server.lines.join('\n')
    for (const secret of [env.SIGNET_MASTER_KEY!, env.SIGNET_ADMIN_TOKEN!, clientToken]) expect(logs.includes(secret)).toBe(false)
  })
})
