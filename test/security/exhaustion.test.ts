import { Agent, request as httpRequest } from 'node:http'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { MasterKey } from '../../src/crypto/master-key.js'
import { SoftwareBackend, type KeyBackend } from '../../src/keys/backend.js'
import { buildApp } from '../../src/app.js'
import { createHarness, newMasterKey, type Harness } from '../helpers/harness.js'
import { listenOnLoopback } from '../helpers/live-server.js'
import { issue, makeCa } from '../tls/certs.js'
import { within } from '../helpers/wait.js'
import { expectProblem } from './helpers.js'

interface Answer {
  statusCode: number
  headers: Record<string, unknown>
  body: string
}

/** One HTTP request on its own connection (no keep-alive): a new client each time. */
function send(url: string, path: string, init: { method?: string; token?: string; body?: unknown; agent?: Agent } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = init.body === undefined ? undefined : JSON.stringify(init.body)
    const req = httpRequest(`${url}${path}`, {
      method: init.method ?? 'GET',
      agent: init.agent ?? false,
      headers: {
        ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
        ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
      },
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk) => chunks.push(chunk))
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** The software backend, with every signature taking `delayMs` like a slow HSM. */
function slowBackend(masterKeyBase64: string, delayMs: number): KeyBackend {
  const inner = new SoftwareBackend(MasterKey.fromBase64(masterKeyBase64))
  return {
    name: 'software',
    generate: (keyset) => inner.generate(keyset),
    destroy: (key) => inner.destroy(key),
    load: async (key) => {
      const signer = await inner.load(key)
      return { kid: signer.kid, alg: signer.alg, sign: async (input) => (await new Promise((resolve) => setTimeout(resolve, delayMs)), signer.sign(input)) }
    },
  }
}

/** Keeps the event loop busy for `ms` in chunks of `chunkMs`, as sustained overload does. */
async function busyFor(ms: number, chunkMs = 100): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    const stop = Math.min(end, Date.now() + chunkMs)
    while (Date.now() < stop) {
      // spin
    }
    await new Promise((resolve) => setImmediate(resolve))
  }
}

describe('resource exhaustion', () => {
  let h: Harness | null = null
  afterEach(async () => {
    if (!h) return
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
    h = null
  })

  it('1,000 concurrent connections: the excess is shed with 503, /healthz answers throughout, and the service recovers', async () => {
    const masterKey = newMasterKey()
    h = await createHarness({ masterKey, env: { SIGNET_MAX_IN_FLIGHT: '50' }, backends: { software: slowBackend(masterKey, 150) } })
    const token = (await h.createClient({ scopes: ['sign'] })).token
    const url = await h.listen()

    let burstDone = false
    const health: number[] = []
    const healthProbe = (async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 })
      while (!burstDone) {
        health.push((await send(url, '/healthz', { agent })).statusCode)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      agent.destroy()
    })()

    const burst = await Promise.allSettled(Array.from({ length: 1000 }, () => send(url, '/v1/sign', { method: 'POST', token, body: { claims: {} } })))
    burstDone = true
    await healthProbe

    const answers = burst.filter((r): r is PromiseFulfilledResult<Answer> => r.status === 'fulfilled').map((r) => r.value)
    expect(answers.length, 'every connection got an answer').toBe(1000)
    const ok = answers.filter((a) => a.statusCode === 200)
    const shed = answers.filter((a) => a.statusCode === 503)
    expect(ok.length + shed.length).toBe(1000)
    expect(shed.length).toBeGreaterThan(0)
    expect(ok.length).toBeGreaterThanOrEqual(50)
    for (const answer of shed) {
      expectProblem(answer, 503, 'overloaded')
      expect(Number(answer.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    }
    expect(health.length).toBeGreaterThan(0)
    expect(health.every((status) => status === 200), `healthz: ${health.join(',')}`).toBe(true)

    // Once the burst is over, every request is served again.
    for (let i = 0; i < 10; i++) expect((await send(url, '/v1/sign', { method: 'POST', token, body: { claims: {} } })).statusCode).toBe(200)
    expect((await send(url, '/readyz')).statusCode).toBe(200)
  })

  it('a busy event loop is shed by @fastify/under-pressure with 503, /healthz still answers, and service resumes', async () => {
    h = await createHarness({ env: { SIGNET_MAX_EVENT_LOOP_DELAY_MS: '40', SIGNET_MAX_IN_FLIGHT: '0' } })
    const harness = h
    const token = (await harness.createClient({ scopes: ['sign'] })).token
    const sign = () => harness.request('POST', '/v1/sign', { token, body: { claims: {} } })
    expect((await sign()).statusCode).toBe(200)

    const statuses: number[] = []
    const health: number[] = []
    let busy = true
    const load = busyFor(2500).finally(() => (busy = false))
    // A macrotask pause each round, so the load's chunks and the samplers get their turns.
    for (let round = 0; busy && round < 500; round++) {
      await new Promise((resolve) => setTimeout(resolve, 5))
      const response = await sign()
      statuses.push(response.statusCode)
      if (response.statusCode === 503) {
        expectProblem(response, 503, 'overloaded')
        expect(response.headers['retry-after']).toBe('1')
      }
      health.push((await harness.request('GET', '/healthz')).statusCode)
    }
    await load
    expect(statuses).toContain(503)
    expect(statuses.every((status) => status === 200 || status === 503)).toBe(true)
    expect(health.every((status) => status === 200), `healthz: ${health.join(',')}`).toBe(true)
    // The next samples show an idle loop: signing resumes without any restart.
    await within(10_000, async () => (await sign()).statusCode === 200, 100)
  })

  it('slow-loris clients are cut off with 408 while /healthz and signing go on', async () => {
    h = await createHarness({ env: { SIGNET_HEADERS_TIMEOUT_MS: '1000', SIGNET_REQUEST_TIMEOUT_MS: '2000' } })
    const harness = h
    const token = (await harness.createClient({ scopes: ['sign'] })).token
    const url = await harness.listen()
    const { port } = new URL(url)

    interface Slow { socket: Socket; received: string; closed: boolean; timer: NodeJS.Timeout | null }
    const open = (first: string, drip: () => string): Promise<Slow> =>
      new Promise((resolve, reject) => {
        const slow: Slow = { socket: connect(Number(port), '127.0.0.1'), received: '', closed: false, timer: null }
        slow.socket.on('data', (chunk) => (slow.received += chunk.toString()))
        slow.socket.on('error', () => {})
        slow.socket.on('close', () => {
          slow.closed = true
          if (slow.timer) clearInterval(slow.timer)
        })
        slow.socket.once('connect', () => {
          slow.socket.write(first)
          // One byte-sized step at a time, never finishing.
          slow.timer = setInterval(() => slow.socket.writable && slow.socket.write(drip()), 250)
          resolve(slow)
        })
        slow.socket.once('error', reject)
      })

    // 200 clients that never finish their headers, 50 that never finish their body.
    const slowHeaders = await Promise.all(Array.from({ length: 200 }, () => open('POST /v1/sign HTTP/1.1\r\nHost: signet\r\n', () => 'X-Slow: 1\r\n')))
    const slowBodies = await Promise.all(Array.from({ length: 50 }, () =>
      open(`POST /v1/sign HTTP/1.1\r\nHost: signet\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{"claims":{"pad":"`, () => 'x')))
    const all = [...slowHeaders, ...slowBodies]

    const health: number[] = []
    const signs: number[] = []
    await within(15_000, async () => {
      health.push((await send(url, '/healthz')).statusCode)
      signs.push((await send(url, '/v1/sign', { method: 'POST', token, body: { claims: {} } })).statusCode)
      return all.every((slow) => slow.closed)
    }, 100)

    for (const slow of all) {
      expect(slow.received.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout')
      expect(slow.received).toContain('"code":"request_timeout"')
      expect(slow.received).toContain('content-security-policy:')
    }
    expect(health.every((status) => status === 200)).toBe(true)
    expect(signs.every((status) => status === 200)).toBe(true)
    expect((await send(url, '/readyz')).statusCode).toBe(200)
  })

  it('over TLS too, a client that never finishes its headers is cut off with 408', async () => {
    h = await createHarness({ env: { SIGNET_HEADERS_TIMEOUT_MS: '1000', SIGNET_REQUEST_TIMEOUT_MS: '2000' } })
    const ca = makeCa('slow-loris test CA')
    const server = issue(ca, [{ shortName: 'CN', value: '127.0.0.1' }], 'server')
    const app = await buildApp(h.signet, { https: { key: server.keyPem, cert: server.certPem } })
    try {
      const port = Number(new URL(await listenOnLoopback(app, 'https')).port)
      const slow = await Promise.all(Array.from({ length: 20 }, () => new Promise<{ received: string; closed: boolean }>((resolve, reject) => {
        const state = { received: '', closed: false }
        const socket = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'localhost' }, () => {
          socket.write('GET /healthz HTTP/1.1\r\nHost: signet\r\n')
          const drip = setInterval(() => socket.writable && socket.write('X-Slow: 1\r\n'), 250)
          socket.on('close', () => clearInterval(drip))
          resolve(state)
        })
        socket.on('data', (chunk) => (state.received += chunk.toString()))
        socket.on('close', () => (state.closed = true))
        socket.on('error', reject)
      })))
      await within(15_000, () => slow.every((state) => state.closed), 100)
      for (const state of slow) expect(state.received.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout')
    } finally {
      await app.close()
    }
  })

  it('the limits are configurable, with safe defaults, and a bad value stops the start naming the variable', () => {
    const defaults = loadConfig({})
    expect(defaults).toMatchObject({ maxInFlight: 512, maxEventLoopDelayMs: 0, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 })
    expect(loadConfig({ SIGNET_MAX_IN_FLIGHT: '0', SIGNET_MAX_EVENT_LOOP_DELAY_MS: '250' })).toMatchObject({ maxInFlight: 0, maxEventLoopDelayMs: 250 })
    for (const [name, value] of [
      ['SIGNET_MAX_IN_FLIGHT', '-1'],
      ['SIGNET_MAX_IN_FLIGHT', 'many'],
      ['SIGNET_MAX_EVENT_LOOP_DELAY_MS', '1.5'],
      ['SIGNET_HEADERS_TIMEOUT_MS', '10'],
      ['SIGNET_REQUEST_TIMEOUT_MS', 'forever'],
    ]) {
      expect(() => loadConfig({ [name!]: value! }), `${name}=${value}`).toThrow(new RegExp(name!))
    }
    expect(() => loadConfig({ SIGNET_HEADERS_TIMEOUT_MS: '20000', SIGNET_REQUEST_TIMEOUT_MS: '10000' })).toThrow(/SIGNET_HEADERS_TIMEOUT_MS/)
  })
})
