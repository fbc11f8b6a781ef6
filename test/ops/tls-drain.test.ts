import { writeFileSync } from 'node:fs'
import { request as httpsRequest, Agent } from 'node:https'
import { connect, Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { congested } from '../helpers/congested.js'
import { startLiveSignet, type LiveSignet } from '../helpers/live-server.js'
import { parseHead } from '../helpers/raw-http.js'
import { tempDir } from '../helpers/temp.js'
import { issue, makeCa, type Issued } from '../tls/certs.js'

/**
 * The shutdown of an HTTPS listener (src/http/connection-drain.ts, trackHandshakes):
 * a connection still in its TLS handshake must not hold the shutdown, and one whose
 * handshake completed must never be taken for it.
 */
const dir = tempDir('signet-tls-drain-')
let ca: Issued
let tlsEnv: Record<string, string>

beforeAll(() => {
  ca = makeCa('Signet test CA')
  const server = issue(ca, [{ shortName: 'CN', value: 'localhost' }], 'server')
  const file = (name: string, content: string) => {
    const path = join(dir.path, name)
    writeFileSync(path, content, { mode: 0o600 })
    return path
  }
  tlsEnv = { SIGNET_TLS_CERT_FILE: file('server.crt', server.certPem), SIGNET_TLS_KEY_FILE: file('server.key', server.keyPem) }
})
afterAll(() => dir.remove())

/** Resolves to how long `live.stop()` took, or to a message if it took more than 5 s. */
async function timedStop(live: LiveSignet): Promise<number | string> {
  const started = Date.now()
  const stopped = live.stop().then(() => Date.now() - started)
  return Promise.race([stopped, new Promise<string>((resolve) => setTimeout(() => resolve('still stopping after 5 s'), 5000))])
}

/** A signing client's token, made through the admin API over HTTPS (trusting the test CA). */
function createClient(live: LiveSignet): Promise<string> {
  const body = JSON.stringify({ name: 'held', keysets: '*', scopes: ['sign'] })
  return new Promise((resolve, reject) => {
    const request = httpsRequest(`${live.url}/v1/admin/clients`, {
      method: 'POST',
      ca: ca.certPem,
      servername: 'localhost',
      headers: { authorization: `Bearer ${live.adminToken}`, 'content-type': 'application/json' },
    }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString()).token))
    })
    request.on('error', reject)
    request.end(body)
  })
}

describe('shutdown of an HTTPS listener', () => {
  it('a connection that never starts its TLS handshake does not hold the shutdown', async () => {
    const live = await startLiveSignet(tlsEnv)
    // A client that completed its handshake and a request, and keeps the connection.
    // The drain tells such a connection from one still handshaking by Node's link from
    // the TLS socket to the raw socket it wraps (_parent): this checks the link.
    const raw = new Promise<Socket>((resolve) => live.server.app.server.prependOnceListener('connection', resolve))
    const secured = new Promise<unknown>((resolve) => live.server.app.server.prependOnceListener('secureConnection', (socket: { _parent?: unknown }) => resolve(socket._parent)))
    const agent = new Agent({ keepAlive: true, ca: ca.certPem })
    const status = await new Promise<number>((resolve, reject) => {
      httpsRequest(`${live.url}/healthz`, { agent, servername: 'localhost' }, (response) => {
        response.resume()
        response.on('end', () => resolve(response.statusCode!))
      }).on('error', reject).end()
    })
    expect(status).toBe(200)
    expect(await secured).toBe(await raw)
    const accepted = new Promise<void>((resolve) => live.server.app.server.prependOnceListener('connection', () => resolve()))
    // A TCP health check, say: it connects and sends nothing.
    const probe = connect(live.port, '127.0.0.1')
    try {
      await accepted
      // Before the fix, Node's 120 s handshake timeout held it, past the 10 s grace (exit 1).
      const outcome = await timedStop(live)
      expect(typeof outcome, String(outcome)).toBe('number')
      expect(outcome).toBeGreaterThanOrEqual(900) // it had its second to start a handshake
    } finally {
      agent.destroy()
      probe.destroy()
      await live.close()
    }
  }, 30_000)

  it('an answer held in the process past that second, on a connection whose handshake completed, is delivered whole', async () => {
    const live = await startLiveSignet(tlsEnv)
    const token = await createClient(live)
    // The server's TLS socket holds what it writes (a congested network) until let through.
    let link: ReturnType<typeof congested> | null = null
    live.server.app.server.prependOnceListener('secureConnection', (socket: Socket) => { link = congested(socket) })
    let ended!: () => void
    const answerEnded = new Promise<void>((resolve) => { ended = resolve })
    live.server.app.server.prependListener('request', (_request, response) => response.once('prefinish', () => ended()))
    const client = tlsConnect({ port: live.port, host: '127.0.0.1', servername: 'localhost', ca: ca.certPem })
    try {
      const chunks: Buffer[] = []
      client.on('data', (chunk: Buffer) => chunks.push(chunk))
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
      await new Promise<void>((resolve) => client.once('secureConnect', () => resolve()))
      const body = JSON.stringify({ claims: { sub: 'held' } })
      client.write(`POST /v1/sign HTTP/1.1\r\nHost: signet\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
      await answerEnded
      const stopping = live.stop()
      // Longer than a handshaking connection's second: a completed one must not be cut then.
      await new Promise((later) => setTimeout(later, 1500))
      link!.open()
      await stopping
      await closed
      const raw = Buffer.concat(chunks).toString()
      const head = raw.slice(0, raw.indexOf('\r\n\r\n'))
      expect(parseHead(head).status, raw.slice(0, 200)).toBe(200)
      expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)).token.split('.')).toHaveLength(3)
    } finally {
      client.destroy()
      await live.close()
    }
  }, 30_000)
})
