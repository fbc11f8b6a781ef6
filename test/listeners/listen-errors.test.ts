import { createServer, type AddressInfo, type Server } from 'node:net'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { ConfigError } from '../../src/errors.js'
import { startServer } from '../../src/server.js'
import { captureLogs, newMasterKey, tempDir } from '../helpers/harness.js'
import { startLiveSignet } from '../helpers/live-server.js'

/**
 * A listener that cannot start stops the start with a message naming the variable
 * that caused it (docs/configuration.md), not Node's bare error.
 */
describe('listen failures name their variable', () => {
  const dir = tempDir('signet-listen-')
  const masterKey = newMasterKey()
  let taken: Server
  let takenPort: number
  const config = (env: Record<string, string>) => loadConfig({ SIGNET_MASTER_KEY: masterKey, SIGNET_DB: join(dir.path, 'signet.db'), ...env })

  beforeAll(async () => {
    taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    takenPort = (taken.address() as AddressInfo).port
  })
  afterAll(() => {
    taken.close()
    dir.remove()
  })

  it('a port in use names SIGNET_PORT', async () => {
    const start = startServer(config({ SIGNET_PORT: String(takenPort) }), captureLogs().logger)
    await expect(start).rejects.toThrow(ConfigError)
    await expect(start).rejects.toThrow(`SIGNET_PORT=${takenPort}: the port is already in use on 127.0.0.1`)
  })

  it('a public port in use names SIGNET_PUBLIC_PORT, and the internal listener it opened is closed again', async () => {
    const start = startServer(config({ SIGNET_PORT: '0', SIGNET_PUBLIC_PORT: String(takenPort) }), captureLogs().logger)
    await expect(start).rejects.toThrow(`SIGNET_PUBLIC_PORT=${takenPort}: the port is already in use`)
    // The same database opens again at once: nothing was left holding it.
    const server = await startServer(config({ SIGNET_PORT: '0' }), captureLogs().logger)
    await server.close()
  })

  // Where the kernel lets a process bind addresses it does not have, there is no such failure.
  const nonLocalBind = (() => {
    try {
      return readFileSync('/proc/sys/net/ipv4/ip_nonlocal_bind', 'utf8').trim() === '1'
    } catch {
      return false
    }
  })()
  it.skipIf(nonLocalBind)('an address that is not this machine\'s names SIGNET_HOST (skipped where net.ipv4.ip_nonlocal_bind is 1)', async () => {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
    const start = startServer(config({ SIGNET_HOST: '192.0.2.1', SIGNET_PORT: '0' }), captureLogs().logger)
    await expect(start).rejects.toThrow('SIGNET_HOST=192.0.2.1: not an address of this machine')
  })

  it('an IPv6 SIGNET_HOST listens, and discovery names it in brackets', async () => {
    const server = await startLiveSignet({ SIGNET_HOST: '::1' })
    try {
      expect(server.url).toMatch(/^http:\/\/\[::1\]:\d+$/)
      expect((await server.admin('POST', '/v1/admin/keysets', { name: 'with-issuer', issuer: 'https://issuer.example' })).status).toBe(201)
      const discovery = await (await fetch(`${server.url}/keysets/with-issuer/.well-known/openid-configuration`)).json() as { jwks_uri: string }
      expect(discovery.jwks_uri).toBe(`${server.url}/keysets/with-issuer/jwks.json`)
      expect((await fetch(discovery.jwks_uri)).status).toBe(200)
    } finally {
      await server.close()
    }
  })
})
