import { writeFileSync } from 'node:fs'
import { request as httpsRequest, Agent } from 'node:https'
import { connect, Socket } from 'node:net'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { startLiveSignet } from '../helpers/live-server.js'
import { tempDir } from '../helpers/temp.js'
import { issue, makeCa } from '../tls/certs.js'

const dir = tempDir('signet-tls-drain-')
afterAll(() => dir.remove())

describe('shutdown of an HTTPS listener', () => {
  it('a connection that never starts its TLS handshake does not hold the shutdown', async () => {
    const ca = makeCa('Signet test CA')
    const server = issue(ca, [{ shortName: 'CN', value: 'localhost' }], 'server')
    const file = (name: string, content: string) => {
      const path = join(dir.path, name)
      writeFileSync(path, content, { mode: 0o600 })
      return path
    }
    const live = await startLiveSignet({ SIGNET_TLS_CERT_FILE: file('server.crt', server.certPem), SIGNET_TLS_KEY_FILE: file('server.key', server.keyPem) }, { dir: dir.path })
    // A client that completed its handshake and a request, and keeps the connection.
    // The drain tells such a connection from one still handshaking by Node's link from
    // the TLS socket to its raw socket (_parent): if Node dropped it, the drain would
    // fall back to waiting, and this checks the link is there.
    const secured = new Promise<unknown>((resolve) => live.server.app.server.prependOnceListener('secureConnection', (socket: { _parent?: unknown }) => resolve(socket._parent)))
    const agent = new Agent({ keepAlive: true, ca: ca.certPem })
    const status = await new Promise<number>((resolve, reject) => {
      httpsRequest(`${live.url}/healthz`, { agent, servername: 'localhost' }, (response) => {
        response.resume()
        response.on('end', () => resolve(response.statusCode!))
      }).on('error', reject).end()
    })
    expect(status).toBe(200)
    expect(await secured).toBeInstanceOf(Socket)
    const accepted = new Promise<void>((resolve) => live.server.app.server.prependOnceListener('connection', () => resolve()))
    // A TCP health check, say: it connects and sends nothing.
    const probe = connect(live.port, '127.0.0.1')
    try {
      await accepted
      const started = Date.now()
      const stopped = live.stop().then(() => Date.now() - started)
      // Before the fix, Node's 120 s handshake timeout held it, past the 10 s grace (exit 1).
      const outcome = await Promise.race([stopped, new Promise<string>((resolve) => setTimeout(() => resolve('still stopping after 5 s'), 5000))])
      expect(typeof outcome, String(outcome)).toBe('number')
      expect(outcome).toBeGreaterThanOrEqual(900) // it had its second to start a handshake
    } finally {
      agent.destroy()
      probe.destroy()
      await live.close()
    }
  }, 30_000)
})
