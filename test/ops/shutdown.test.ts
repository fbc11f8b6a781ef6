import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose'
import { Agent, Client } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliJson, fileTempDir, getJson, requireBuild, startServe } from '../cli/helpers.js'
import { startLiveSignet } from '../helpers/live-server.js'
import { congested } from '../helpers/congested.js'
import { parseHead } from '../helpers/raw-http.js'
import { whenBusy } from '../helpers/wait.js'

/**
 * Acceptance 5 of issue 3: SIGTERM (and SIGINT) during a load of sign requests.
 * The server stops accepting, finishes the requests in flight, closes storage and
 * exits 0 within 10 s; every request it accepted gets a complete answer.
 *
 * Each request carries its own X-Request-Id, which the server logs with every line
 * about it. A request the client saw fail must have failed at the connection,
 * before any answer, and the server must never have logged it (it was not
 * accepted: a new connection refused after the listener closed, or a request sent
 * on a keep-alive connection the server had just closed as idle). Every request
 * the server logged must have reached the client complete.
 */

const SHUTDOWN_LIMIT_MS = 10_000
const ITEMS = 150 // signatures per batch request: long enough to be caught in flight
const CALLERS = 8

const dir = fileTempDir('signet-shutdown-')
let env: Record<string, string>
let clientToken: string

beforeAll(async () => {
  requireBuild()
  const db = join(dir.path, 'signet.db')
  const init = await cliJson(['init'], { SIGNET_DB: db })
  env = { SIGNET_DB: db, SIGNET_MASTER_KEY: init.masterKey }
  clientToken = (await cliJson(['clients', 'create', 'load', '--scopes', 'sign'], env)).token
})

afterAll(() => dir.remove())

interface Outcome {
  id: string
  sentAt: number
  doneAt: number
  status?: number
  body?: any
  /** The connection failed before any answer (code of the cause). */
  refused?: string
  /** Anything else: an answer that broke off, or an unexpected error. */
  broken?: string
}

const BATCH_BODY = JSON.stringify({ items: Array.from({ length: 1000 }, (_, i) => ({ claims: { sub: `user-${i}`, pad: 'p'.repeat(24) } })) })

/** The raw HTTP/1.1 request of a 1000-item batch. */
const batchRequest = (token: string) => `POST /v1/sign/batch HTTP/1.1\r\nHost: signet\r\nAuthorization: Bearer ${token}\r\n` +
  `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(BATCH_BODY)}\r\n\r\n${BATCH_BODY}`

/** A raw HTTP answer holding the whole 1000-token batch, every token valid. */
async function expectWholeBatch(raw: Buffer, jwks: JSONWebKeySet): Promise<void> {
  const split = raw.indexOf('\r\n\r\n')
  const head = raw.subarray(0, split).toString('latin1')
  expect(head).toMatch(/^HTTP\/1\.1 200 /)
  const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1])
  expect(length).toBeGreaterThan(400_000)
  const answer = raw.subarray(split + 4)
  expect(answer.length, 'the answer was cut').toBe(length)
  const results = (JSON.parse(answer.toString('utf8')) as { results: { token: string }[] }).results
  expect(results).toHaveLength(1000)
  for (const index of [0, 500, 999]) {
    const { payload } = await jwtVerify(results[index]!.token, createLocalJWKSet(jwks))
    expect(payload.sub).toBe(`user-${index}`)
  }
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET'])

async function shutdownUnderLoad(signal: NodeJS.Signals) {
  const server = await startServe({ ...env, SIGNET_LOG_LEVEL: 'info' })
  const jwks = (await getJson(`${server.url}/.well-known/jwks.json`)).body as JSONWebKeySet
  const dispatcher = new Agent({ connections: CALLERS, pipelining: 1 })
  const outcomes: Outcome[] = []
  let next = 0
  let stopSending = false

  async function call(): Promise<Outcome> {
    const id = `${signal}-${next++}`
    const outcome: Outcome = { id, sentAt: Date.now(), doneAt: 0 }
    let response: Response
    try {
      response = await fetch(`${server.url}/v1/sign/batch`, {
        method: 'POST',
        headers: { authorization: `Bearer ${clientToken}`, 'content-type': 'application/json', 'x-request-id': id },
        body: JSON.stringify({ items: Array.from({ length: ITEMS }, (_, i) => ({ claims: { sub: `u${i}` } })) }),
        dispatcher,
      } as RequestInit)
    } catch (error) {
      const code = (error as { cause?: { code?: string } }).cause?.code ?? 'unknown'
      outcome.doneAt = Date.now()
      if (CONNECTION_CODES.has(code)) outcome.refused = code
      else outcome.broken = `request failed: ${code} ${(error as Error).message}`
      return outcome
    }
    outcome.status = response.status
    try {
      outcome.body = JSON.parse(await response.text())
    } catch (error) {
      outcome.broken = `the answer broke off: ${(error as Error).message}`
    }
    outcome.doneAt = Date.now()
    return outcome
  }

  const callers = Array.from({ length: CALLERS }, async () => {
    while (!stopSending) {
      const outcome = await call()
      outcomes.push(outcome)
      if (outcome.refused === 'ECONNREFUSED') break // the listener is closed
    }
  })

  while (outcomes.filter((o) => o.status === 200).length < 2 * CALLERS) await new Promise((later) => setTimeout(later, 5))
  const signalledAt = Date.now()
  server.child.kill(signal)
  const exit = await Promise.race([
    server.exited,
    new Promise<null>((later) => setTimeout(() => later(null), SHUTDOWN_LIMIT_MS + 2000)),
  ])
  const exitedAfterMs = Date.now() - signalledAt
  stopSending = true
  if (exit === null) await server.stop('SIGKILL')
  await Promise.all(callers)
  await dispatcher.close()
  return { server, jwks, outcomes, exit, exitedAfterMs, signalledAt }
}

async function checkShutdown(signal: NodeJS.Signals) {
  // A run in which no request happened to be in flight at the signal proves nothing about
  // finishing them: run again (rare; with 8 callers of long batches there nearly always is one).
  for (let attempt = 1; ; attempt++) {
    const { server, jwks, outcomes, exit, exitedAfterMs, signalledAt } = await shutdownUnderLoad(signal)
    expect(exit, `the server did not exit within ${SHUTDOWN_LIMIT_MS} ms`).not.toBeNull()
    expect(exit).toEqual({ code: 0, signal: null })
    expect(exitedAfterMs).toBeLessThan(SHUTDOWN_LIMIT_MS)

    const messages = server.logs.map((line) => line.msg)
    expect(messages).toContain('stopped')
    const stopping = server.logs.find((line) => String(line.msg).startsWith('stopping'))
    expect(stopping?.signal).toBe(signal)

    // Every request the server logged (it accepted it) reached the client complete.
    const seenByServer = new Set(server.logs.map((line) => line.reqId).filter((id): id is string => typeof id === 'string'))
    const broken = outcomes.filter((o) => o.broken)
    expect(broken.map((o) => `${o.id}: ${o.broken}`)).toEqual([])
    for (const outcome of outcomes) {
      if (outcome.refused) {
        expect(seenByServer.has(outcome.id), `${outcome.id} failed at the client (${outcome.refused}) but the server had accepted it`).toBe(false)
        continue
      }
      expect([200, 503]).toContain(outcome.status)
      expect(outcome.body).toBeTypeOf('object')
    }
    // Every 200 holds all its tokens, each verifying against the JWKS.
    const answered = outcomes.filter((o) => o.status === 200)
    for (const outcome of answered) expect(outcome.body.results).toHaveLength(ITEMS)
    const sample = answered.slice(-3).flatMap((o) => o.body.results.slice(0, 2).map((r: { token: string }) => r.token))
    for (const token of sample) await jwtVerify(token, createLocalJWKSet(jwks))

    const inFlight = answered.filter((o) => o.sentAt < signalledAt && o.doneAt > signalledAt)
    console.info(`${signal}: ${outcomes.length} requests, ${answered.length} answered 200 (${inFlight.length} in flight at the signal), ` +
      `${outcomes.filter((o) => o.status === 503).length} answered 503 while closing, ${outcomes.filter((o) => o.refused).length} not accepted; exit after ${exitedAfterMs} ms`)
    if (inFlight.length > 0 || attempt === 3) {
      expect(inFlight.length, 'a request was in flight at the signal and finished').toBeGreaterThan(0)
      return
    }
  }
}

describe('graceful shutdown of signet serve', () => {
  it('SIGTERM under a sign load: requests in flight finish, every accepted request gets a complete answer, exit 0 within 10 s', async () => {
    await checkShutdown('SIGTERM')
  })

  it('SIGINT does the same', async () => {
    await checkShutdown('SIGINT')
  })

  it('a fault signal is a crash, not a stop: SIGSEGV ends the process by that signal at once, SIGABRT too', async () => {
    for (const signal of ['SIGSEGV', 'SIGABRT'] as const) {
      const server = await startServe(env)
      try {
        server.child.kill(signal)
        expect(await server.exited).toEqual({ code: null, signal })
        expect(server.logs.some((line) => line.msg === 'stopping: no new connections, finishing the requests in flight')).toBe(false)
      } finally {
        await server.stop('SIGKILL')
      }
    }
  })

  it('a keep-alive connection whose request finishes during the shutdown does not hold it open', async () => {
    // Before the fix, such a connection stayed open (a client pool keeps it) and the
    // process was killed by the grace timeout with exit 1.
    const server = await startServe(env)
    const client = new Client(server.url, { pipelining: 1, keepAliveTimeout: 60_000 })
    try {
      const pending = client.request({
        method: 'POST',
        path: '/v1/sign/batch',
        headers: { authorization: `Bearer ${clientToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ items: Array.from({ length: 1000 }, (_, i) => ({ claims: { sub: `u${i}` } })) }),
      })
      await whenBusy([server.child.pid!]) // the server is parsing and signing the batch: it is in flight
      server.child.kill('SIGTERM')
      const answer = await pending
      expect(answer.statusCode).toBe(200)
      expect(((await answer.body.json()) as { results: unknown[] }).results).toHaveLength(1000)
      expect(await server.exited).toEqual({ code: 0, signal: null })
    } finally {
      await client.destroy()
      await server.stop('SIGKILL')
    }
  })

  it('a slow reader receiving a large batch answer when SIGTERM arrives gets the whole, valid body; then the connection is closed', async () => {
    // On loopback the kernel's socket buffers take a few MB, so here the answer has left
    // the process before the signal; the next test holds it in the process as a slow
    // network does.
    const server = await startServe(env)
    const jwks = (await getJson(`${server.url}/.well-known/jwks.json`)).body as JSONWebKeySet
    const { port } = new URL(server.url)
    const socket = connect(Number(port), '127.0.0.1')
    try {
      const chunks: Buffer[] = []
      const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()))
      const firstChunk = new Promise<void>((resolve) => socket.once('data', () => resolve()))
      socket.on('data', (chunk: Buffer) => chunks.push(chunk))
      socket.write(batchRequest(clientToken))
      // The answer has begun: Signet has written all of it to the socket. The reader stops taking it.
      await firstChunk
      socket.pause()
      server.child.kill('SIGTERM')
      await new Promise((later) => setTimeout(later, 600))
      // Then reads the rest, slowly.
      const slowly = setInterval(() => { socket.resume(); setTimeout(() => socket.pause(), 5) }, 20)
      await ended
      clearInterval(slowly)
      await expectWholeBatch(Buffer.concat(chunks), jwks)
      expect(await server.exited).toEqual({ code: 0, signal: null })
    } finally {
      socket.destroy()
      await server.stop('SIGKILL')
    }
  })

  it('a new connection whose request is read only after the shutdown began gets an answer, not a reset (in process)', async () => {
    // Before the fix, a connection with no answer yet counted as idle when the
    // shutdown began and was closed at once, although its client had connected and
    // was sending: under load, a request sent just before SIGTERM and not yet read got
    // no answer (ECONNRESET in CI). Now such a connection has a second to send its
    // request, which is refused cleanly: nothing of it ran, so it may be sent again.
    const live = await startLiveSignet()
    const token = await live.createClient({ scopes: ['sign'] })
    const accepted = new Promise<void>((resolve) => live.server.app.server.prependOnceListener('connection', () => resolve()))
    const client = connect(live.port, '127.0.0.1')
    try {
      const chunks: Buffer[] = []
      client.on('data', (chunk: Buffer) => chunks.push(chunk))
      const closed = new Promise<string | null>((resolve) => {
        client.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'))
        client.once('close', () => resolve(null))
      })
      await accepted
      const stopping = live.stop()
      await new Promise((later) => setImmediate(later)) // the shutdown has begun
      const body = JSON.stringify({ claims: { sub: 'late' } })
      client.write(`POST /v1/sign HTTP/1.1\r\nHost: signet\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
      expect(await closed).toBeNull()
      await stopping
      const raw = Buffer.concat(chunks).toString()
      expect(raw, 'an answer, not a closed connection').toMatch(/^HTTP\/1\.1 503 /)
      const { status, headers } = parseHead(raw.slice(0, raw.indexOf('\r\n\r\n')))
      expect(status).toBe(503)
      expect(headers.connection).toBe('close')
      expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)).code).toBe('shutting_down')
    } finally {
      client.destroy()
      await live.close()
    }
  })

  it('a new connection that sends nothing is closed a second into the shutdown, which then ends (in process)', async () => {
    const live = await startLiveSignet()
    const accepted = new Promise<void>((resolve) => live.server.app.server.prependOnceListener('connection', () => resolve()))
    const client = connect(live.port, '127.0.0.1')
    try {
      const chunks: Buffer[] = []
      client.on('data', (chunk: Buffer) => chunks.push(chunk))
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
      await accepted
      const started = Date.now()
      const stopped = live.stop().then(() => Date.now() - started)
      // It waits for the connection's request, then gives up on it: the shutdown does not hang.
      const outcome = await Promise.race([stopped, new Promise<string>((resolve) => setTimeout(() => resolve('still stopping after 5 s'), 5000))])
      expect(typeof outcome, String(outcome)).toBe('number')
      expect(outcome).toBeGreaterThanOrEqual(900)
      await closed
      expect(Buffer.concat(chunks).length, 'nothing is answered to a connection that asked nothing').toBe(0)
    } finally {
      client.destroy()
      await live.close()
    }
  })

  it('an answer still held in the process for a slow network when the shutdown starts is delivered whole (in process)', async () => {
    // Before the fix, closeIdleConnections() (when closing starts, and every 50 ms
    // after) counted a connection whose answer was ended as idle although the answer
    // still sat in the socket's buffer, and destroyed it. On loopback the kernel takes
    // a few MB at once, so the slow network is made here: the server's socket holds
    // what it writes until the test lets it through.
    const live = await startLiveSignet()
    const token = await live.createClient({ scopes: ['sign'] })
    const jwks = (await getJson(`${live.url}/.well-known/jwks.json`)).body as JSONWebKeySet
    let link: ReturnType<typeof congested> | null = null
    live.server.app.server.prependOnceListener('connection', (socket: Socket) => { link = congested(socket) })
    let ended!: () => void
    const answerEnded = new Promise<void>((resolve) => { ended = resolve })
    live.server.app.server.prependListener('request', (_request, response) => response.once('prefinish', () => ended()))
    const client = connect(live.port, '127.0.0.1')
    try {
      const chunks: Buffer[] = []
      client.on('data', (chunk: Buffer) => chunks.push(chunk))
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
      client.write(batchRequest(token))
      await answerEnded
      expect(link!.socket.writableLength).toBeGreaterThan(400_000) // all of it still in the process
      const stopping = live.stop()
      await new Promise((later) => setTimeout(later, 300))
      link!.open()
      await stopping
      await closed // the server ends the connection after its answer
      await expectWholeBatch(Buffer.concat(chunks), jwks)
    } finally {
      client.destroy()
      await live.close()
    }
  })
})
