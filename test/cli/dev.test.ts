import { within } from '../helpers/wait.js'
import { execFile } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { tempDir } from '../helpers/harness.js'
import { cliJson, getJson, postJson, requireBuild, signetStderr, spawnCli, waitReady, type RunningChild } from './helpers.js'

/**
 * `signet dev`: a working service in one command, data and dev secrets under
 * ./data/dev (files 0600), keyset default and a client made, admin token, client
 * token and a curl line printed with a loud warning; re-running reuses it all.
 */

let running: RunningChild | null = null
const dirs: { remove: () => void }[] = []

function workDir(): string {
  const dir = tempDir('signet-dev-')
  dirs.push(dir)
  return dir.path
}

interface DevInfo { url: string; dataDir: string; masterKey: string; adminToken: string; clientToken: string; curl: string }

async function startDev(cwd: string, env: Record<string, string> = {}, args: string[] = ['--json']): Promise<{ dev: RunningChild; info: DevInfo }> {
  const dev = spawnCli(['dev', ...args], { cwd, env: { SIGNET_PORT: '0', ...env } })
  running = dev
  const info = await dev.waitFor((line) => (line.startsWith('{"url"') ? (JSON.parse(line) as DevInfo) : undefined))
  await waitReady(info.url)
  return { dev, info }
}

beforeAll(() => requireBuild())

afterEach(async () => {
  await running?.stop('SIGKILL')
  running = null
  for (const dir of dirs.splice(0)) dir.remove()
})

describe('signet dev', () => {
  it('starts a ready service with keyset default and a client, keeps its secrets in ./data/dev (0600), and warns loudly', async () => {
    const cwd = workDir()
    const { dev, info } = await startDev(cwd)
    const dataDir = join(cwd, 'data', 'dev')
    expect(info.dataDir).toBe(dataDir)
    expect(info.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(dev.stderr()).toContain('NOT FOR PRODUCTION')

    expect(statSync(dataDir).mode & 0o777).toBe(0o700)
    for (const file of ['master.key', 'admin.token', 'client.token']) expect(statSync(join(dataDir, file)).mode & 0o777, file).toBe(0o600)
    expect(readFileSync(join(dataDir, 'admin.token'), 'utf8').trim()).toBe(info.adminToken)
    expect(readFileSync(join(dataDir, 'master.key'), 'utf8').trim()).toBe(info.masterKey)
    expect(readFileSync(join(dataDir, 'client.token'), 'utf8').trim()).toBe(info.clientToken)

    const keysets = await getJson(`${info.url}/v1/admin/keysets`, { headers: { authorization: `Bearer ${info.adminToken}` } })
    expect(keysets.body.keysets.map((k: { name: string }) => k.name)).toEqual(['default'])
    const signed = await postJson(`${info.url}/v1/sign`, info.clientToken, { claims: { sub: 'dev-user' } })
    expect(signed.status).toBe(200)
    const jwks = (await getJson(`${info.url}/.well-known/jwks.json`)).body
    expect((await jwtVerify(signed.body.token, createLocalJWKSet(jwks))).payload.sub).toBe('dev-user')

    const exit = await dev.stop('SIGTERM')
    expect(exit.code).toBe(0)
  })

  it('re-running reuses the dev master key, database, admin token and client token', async () => {
    const cwd = workDir()
    const first = await startDev(cwd)
    const firstJwks = (await getJson(`${first.info.url}/.well-known/jwks.json`)).body
    const masterKey = readFileSync(join(cwd, 'data/dev/master.key'), 'utf8')
    expect((await first.dev.stop('SIGTERM')).code).toBe(0)

    const second = await startDev(cwd)
    expect(second.info.adminToken).toBe(first.info.adminToken)
    expect(second.info.clientToken).toBe(first.info.clientToken)
    expect(readFileSync(join(cwd, 'data/dev/master.key'), 'utf8')).toBe(masterKey)
    expect((await getJson(`${second.info.url}/.well-known/jwks.json`)).body).toEqual(firstJwks)
    expect((await postJson(`${second.info.url}/v1/sign`, second.info.clientToken, { claims: {} })).status).toBe(200)
    const clients = await getJson(`${second.info.url}/v1/admin/clients`, { headers: { authorization: `Bearer ${second.info.adminToken}` } })
    expect(clients.body.clients).toHaveLength(1)
    expect((await second.dev.stop('SIGINT')).code).toBe(0)
  })

  it('prints the tokens and a curl line that signs, and ignores configured secrets with a notice', async () => {
    const cwd = workDir()
    const dev = spawnCli(['dev'], { cwd, env: { SIGNET_PORT: '0', SIGNET_MASTER_KEY: 'ignored-by-dev-mode', SIGNET_DB: '/nonexistent/x.db' } })
    running = dev
    const curl = await dev.waitFor((line) => (line.trim().startsWith('curl -s -X POST') ? line.trim() : undefined))
    await waitReady(new URL(/http:\/\/[^\s/]+/.exec(curl)![0]).origin)
    const text = dev.lines.join('\n')
    expect(text).toContain('NOT FOR PRODUCTION')
    expect(text).toMatch(/Admin token: +signet_/)
    expect(text).toMatch(/Client token: +signet_/)
    expect(dev.stderr()).toContain('ignoring SIGNET_DB, SIGNET_MASTER_KEY')

    const hasCurl = await promisify(execFile)('sh', ['-c', 'command -v curl']).then(() => true, () => false)
    if (!hasCurl) {
      console.warn('curl is not installed: the printed curl line is checked by shape only')
      expect(curl).toMatch(/^curl -s -X POST http:\/\/127\.0\.0\.1:\d+\/v1\/sign -H 'Authorization: Bearer signet_[\w-]+' /)
      return
    }
    const { stdout } = await promisify(execFile)('sh', ['-c', curl])
    const answer = JSON.parse(stdout)
    expect(answer).toMatchObject({ alg: 'ES256', keyset: 'default' })
    expect(answer.token.split('.')).toHaveLength(3)
  })

  it('prints its JSON line first, with the variables that point other commands at its server or its database', async () => {
    const cwd = workDir()
    const { dev, info } = await startDev(cwd, { SIGNET_LOG_LEVEL: 'info' })
    expect(dev.lines[0]).toBe(JSON.stringify(info)) // before any log line
    // The held log lines follow the JSON line; they may still be on their way.
    await within(5000, () => dev.lines.slice(1).some((line) => line.includes('signet listening')))
    const { cliEnv } = info as DevInfo & { cliEnv: { api: Record<string, string>; database: Record<string, string> } }
    expect(cliEnv.api).toEqual({ SIGNET_URL: info.url, SIGNET_ADMIN_TOKEN_FILE: join(cwd, 'data/dev/admin.token') })
    expect(cliEnv.database).toEqual({ SIGNET_DB: join(cwd, 'data/dev/signet.db'), SIGNET_MASTER_KEY_FILE: join(cwd, 'data/dev/master.key') })
    // Both sets work as printed, from another directory, while the dev server runs.
    const elsewhere = workDir()
    const remote = await cliJson<{ keys: { kid: string }[] }>(['keys', 'list'], cliEnv.api, elsewhere)
    const local = await cliJson<{ keys: { kid: string }[] }>(['keys', 'list'], cliEnv.database, elsewhere)
    expect(remote.keys.map((k) => k.kid)).toEqual(local.keys.map((k) => k.kid))
    expect((await cliJson(['keys', 'rotate'], cliEnv.database, elsewhere)).state).toBe('pending')
    await dev.stop('SIGTERM')

    // Without --json, the same variables as export lines.
    const text = spawnCli(['dev'], { cwd, env: { SIGNET_PORT: '0' } })
    running = text
    const line = await text.waitFor((l) => (l.includes('export SIGNET_URL=') ? l.trim() : undefined))
    expect(line).toMatch(new RegExp(`^export SIGNET_URL=http://127\\.0\\.0\\.1:\\d+ SIGNET_ADMIN_TOKEN_FILE=${join(cwd, 'data/dev/admin.token')}$`))
    await text.waitFor((l) => (l.trim() === `export SIGNET_DB=${join(cwd, 'data/dev/signet.db')} SIGNET_MASTER_KEY_FILE=${join(cwd, 'data/dev/master.key')}` ? true : undefined))
  })

  it('binds where SIGNET_HOST and SIGNET_PORT say, and fails with one line when it cannot', async () => {
    const cwd = workDir()
    const { dev, info } = await startDev(cwd, { SIGNET_HOST: '127.0.0.1' })
    const port = new URL(info.url).port
    // A second dev server on the same port fails with one line naming the address.
    const clash = spawnCli(['dev', '--data-dir', join(cwd, 'other')], { cwd, env: { SIGNET_PORT: port } })
    const exit = await clash.exited
    expect(exit.code).toBe(1)
    const lines = signetStderr(clash.stderr())
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^signet: SIGNET_PORT=\d+: the port is already in use on 127\.0\.0\.1 \(EADDRINUSE\)$/)
    await dev.stop('SIGTERM')
  })
})
