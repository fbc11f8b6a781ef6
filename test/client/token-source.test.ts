import { mkdirSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SignetClient, SignetClientError } from '../../src/client/index.js'
import { fileToken, TOKEN_FILE_CHECK_MS } from '../../src/client/token-source.js'
import { tempDir } from '../helpers/temp.js'

const signedAnswer = { token: 'a.b.c', kid: 'k', alg: 'ES256', keyset: 'default', iat: 1, exp: 2, jti: 'j' }

/** A stand-in Signet that answers every sign request and records the bearer token it was sent. */
async function recordingServer(): Promise<{ url: string; seen: string[]; close: () => Promise<void> }> {
  const seen: string[] = []
  const server: Server = createServer((request, response) => {
    request.resume()
    seen.push(String(request.headers.authorization ?? '').replace(/^Bearer /, ''))
    const answer = request.url?.endsWith('/batch') ? { results: [signedAnswer] } : signedAnswer
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

async function refusal(promise: Promise<unknown>): Promise<SignetClientError> {
  const error = await promise.then(() => null, (caught: unknown) => caught)
  expect(error, 'the call succeeded').toBeInstanceOf(SignetClientError)
  return error as SignetClientError
}

/** Writes `content` to `path` with an mtime `seconds` from now, as a rotating writer would. */
function writeToken(path: string, content: string, seconds = 0): void {
  writeFileSync(path, content)
  const when = new Date(Date.now() + seconds * 1000)
  utimesSync(path, when, when)
}

describe('SignetClient token sources', () => {
  const dir = tempDir('signet-token-')
  let server: Awaited<ReturnType<typeof recordingServer>>

  beforeAll(async () => { server = await recordingServer() })
  afterAll(async () => {
    await server.close()
    dir.remove()
  })

  it('tokenFile: a rotated file is picked up by the next call once a second has passed', async () => {
    const path = join(dir.path, 'token')
    writeToken(path, 'signet_first\n')
    const client = new SignetClient({ url: server.url, tokenFile: path })
    try {
      await client.sign({})
      writeToken(path, 'signet_second\n', 10)
      await client.sign({}) // within the second: the file is not looked at again
      await sleep(TOKEN_FILE_CHECK_MS + 100)
      await client.sign({})
      expect(server.seen.slice(-3)).toEqual(['signet_first', 'signet_first', 'signet_second'])
    } finally {
      await client.close()
    }
  })

  it('tokenFile: a Kubernetes-style symlink swap is a change even with the same mtime; the file is checked at most once per second', async () => {
    // kubelet's atomic writer: token -> ..data/token, ..data -> a timestamped directory, swapped by rename.
    const root = join(dir.path, 'projected')
    mkdirSync(join(root, 'v1'), { recursive: true })
    mkdirSync(join(root, 'v2'))
    writeFileSync(join(root, 'v1', 'token'), 'signet_one')
    writeFileSync(join(root, 'v2', 'token'), 'signet_two')
    const same = new Date(Date.now() - 60_000)
    for (const version of ['v1', 'v2']) utimesSync(join(root, version, 'token'), same, same)
    symlinkSync('v1', join(root, '..data'))
    symlinkSync('..data/token', join(root, 'token'))
    let now = 0
    const source = fileToken(join(root, 'token'), () => now)
    expect(await source('r')).toBe('signet_one')
    symlinkSync('v2', join(root, '..data_tmp'))
    renameSync(join(root, '..data_tmp'), join(root, '..data'))
    now = TOKEN_FILE_CHECK_MS - 1
    expect(await source('r')).toBe('signet_one')
    now = TOKEN_FILE_CHECK_MS
    expect(await source('r')).toBe('signet_two')
  })

  it('tokenFile: a file briefly missing or empty while it is replaced keeps the last token', async () => {
    const path = join(dir.path, 'flaky')
    writeToken(path, 'signet_kept')
    let now = 0
    const source = fileToken(path, () => now)
    expect(await source('r')).toBe('signet_kept')
    writeToken(path, '', 5)
    now += TOKEN_FILE_CHECK_MS
    expect(await source('r')).toBe('signet_kept')
    rmSync(path)
    now += TOKEN_FILE_CHECK_MS
    expect(await source('r')).toBe('signet_kept')
    writeToken(path, 'signet_next', 10)
    now += TOKEN_FILE_CHECK_MS
    expect(await source('r')).toBe('signet_next')
  })

  it('tokenFile: a missing, empty or malformed file is a clear token_unavailable error that never holds the token; nothing is sent', async () => {
    const before = server.seen.length
    const malformed = join(dir.path, 'malformed')
    writeToken(malformed, 'signet_secret part two')
    const empty = join(dir.path, 'empty')
    writeToken(empty, '\n')
    for (const [path, detail] of [
      [join(dir.path, 'missing'), /cannot read the tokenFile .*missing \(ENOENT\)/],
      [empty, /the tokenFile .*empty is empty/],
      [malformed, /holds no usable token/],
    ] as const) {
      const client = new SignetClient({ url: server.url, tokenFile: path })
      try {
        const error = await refusal(client.sign({}))
        expect(error).toMatchObject({ code: 'token_unavailable', status: null, attempts: 0 })
        expect(error.detail).toMatch(detail)
        expect(JSON.stringify({ message: error.message, detail: error.detail, stack: error.stack })).not.toContain('secret')
      } finally {
        await client.close()
      }
    }
    expect(server.seen.length).toBe(before)
  })

  it('token as a function (sync or async) is asked once per call', async () => {
    let calls = 0
    const sync = new SignetClient({ url: server.url, token: () => `signet_sync${++calls}` })
    const asyncClient = new SignetClient({ url: server.url, token: async () => 'signet_async' })
    try {
      await sync.sign({})
      await sync.signBatch([{ claims: {} }])
      await asyncClient.sign({})
      expect(server.seen.slice(-3)).toEqual(['signet_sync1', 'signet_sync2', 'signet_async'])
    } finally {
      await sync.close()
      await asyncClient.close()
    }
  })

  it('a token function that never answers ends the call at its deadline with a timeout', async () => {
    const client = new SignetClient({ url: server.url, token: () => new Promise<string>(() => {}), timeout: 300 })
    try {
      const startedAt = Date.now()
      expect(await refusal(client.sign({}))).toMatchObject({ code: 'timeout', attempts: 0 })
      expect(Date.now() - startedAt).toBeLessThan(300 + 250)
    } finally {
      await client.close()
    }
  })

  it('token function that throws or returns no token: token_unavailable, never echoing what it returned', async () => {
    const before = server.seen.length
    for (const token of [() => { throw new Error('vault down') }, () => 'signet_secret with space', async () => '', () => 42 as unknown as string]) {
      const client = new SignetClient({ url: server.url, token })
      try {
        const error = await refusal(client.sign({}))
        expect(error.code).toBe('token_unavailable')
        expect(`${error.message} ${error.detail}`).not.toContain('secret')
      } finally {
        await client.close()
      }
    }
    expect(server.seen.length).toBe(before)
  })

  it('SIGNET_URL and SIGNET_CLIENT_TOKEN (or SIGNET_CLIENT_TOKEN_FILE) are the defaults of url and token', async () => {
    const saved = { url: process.env.SIGNET_URL, token: process.env.SIGNET_CLIENT_TOKEN, tokenFile: process.env.SIGNET_CLIENT_TOKEN_FILE }
    process.env.SIGNET_URL = server.url
    process.env.SIGNET_CLIENT_TOKEN = 'signet_from_env'
    try {
      const client = new SignetClient()
      await client.sign({})
      await client.close()
      expect(server.seen.at(-1)).toBe('signet_from_env')
      // An explicit option wins; tokenFile with the variable set is no conflict.
      const path = join(dir.path, 'explicit')
      writeToken(path, 'signet_file')
      const explicit = new SignetClient({ tokenFile: path })
      await explicit.sign({})
      await explicit.close()
      expect(server.seen.at(-1)).toBe('signet_file')
      delete process.env.SIGNET_CLIENT_TOKEN
      // Without SIGNET_CLIENT_TOKEN, SIGNET_CLIENT_TOKEN_FILE is read like tokenFile.
      const fromEnvFile = join(dir.path, 'from-env-file')
      writeToken(fromEnvFile, 'signet_env_file')
      process.env.SIGNET_CLIENT_TOKEN_FILE = fromEnvFile
      const fileClient = new SignetClient()
      await fileClient.sign({})
      expect(server.seen.at(-1)).toBe('signet_env_file')
      await fileClient.close()
      delete process.env.SIGNET_CLIENT_TOKEN_FILE
      expect(() => new SignetClient()).toThrow(/token or tokenFile is required \(or set SIGNET_CLIENT_TOKEN or SIGNET_CLIENT_TOKEN_FILE\)/)
      delete process.env.SIGNET_URL
      expect(() => new SignetClient({ token: 'signet_x' })).toThrow(/url is required \(or set SIGNET_URL\)/)
    } finally {
      for (const [name, value] of [['SIGNET_URL', saved.url], ['SIGNET_CLIENT_TOKEN', saved.token], ['SIGNET_CLIENT_TOKEN_FILE', saved.tokenFile]] as const) {
        if (value === undefined) delete process.env[name]
        else process.env[name] = value
      }
    }
  })

  it('refuses token and tokenFile together, naming neither value', () => {
    expect(() => new SignetClient({ url: server.url, token: 'signet_secret', tokenFile: '/x' })).toThrow(TypeError)
    expect(() => new SignetClient({ url: server.url, token: 'signet_secret', tokenFile: '/x' })).toThrow(/give token or tokenFile, not both/)
    const misuse = (() => { try { new SignetClient({ url: server.url, token: 'signet_secret bad' }) } catch (error) { return error as Error } return null })()
    expect(misuse).toBeInstanceOf(TypeError)
    expect(misuse?.message).not.toContain('secret')
  })
})
