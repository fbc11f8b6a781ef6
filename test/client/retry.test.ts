import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SignetClient, SignetClientError } from '../../src/client/index.js'
import { backoffDelay, isConnectionError, nextDelay, retryAfterMs } from '../../src/client/retry.js'
import { startLiveSignet, type LiveSignet } from '../helpers/live-server.js'

/** Timers on a busy shared machine fire late; a deadline is checked with this much slack. */
const DEADLINE_SLACK_MS = 250

type Handler = (request: IncomingMessage, response: ServerResponse, count: number) => void

/** A scripted HTTP server standing where Signet would be; counts what reaches it. */
async function standIn(handler: Handler, port = 0): Promise<{ url: string; port: number; count: () => number; close: () => Promise<void> }> {
  let count = 0
  const server: Server = createServer((request, response) => {
    count++
    request.resume()
    handler(request, response, count)
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', () => resolve()))
  const bound = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    count: () => count,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

const problem = (response: ServerResponse, status: number, code: string, headers: Record<string, string> = {}) =>
  response.writeHead(status, { 'content-type': 'application/problem+json', ...headers })
    .end(JSON.stringify({ type: `urn:signet:problem:${code}`, title: code, status, detail: `stand-in ${code}`, code }))

const signedAnswer = { token: 'a.b.c', kid: 'k', alg: 'ES256', keyset: 'default', iat: 1, exp: 2, jti: 'j' }

async function refusal(promise: Promise<unknown>): Promise<SignetClientError> {
  const error = await promise.then(() => null, (caught: unknown) => caught)
  expect(error, 'the call succeeded').toBeInstanceOf(SignetClientError)
  return error as SignetClientError
}

describe('SignetClient retries', () => {
  let signet: LiveSignet
  let token: string

  beforeAll(async () => {
    signet = await startLiveSignet()
    token = await signet.createClient()
  })
  afterAll(async () => {
    await signet.close()
    signet.watch.assertClean()
  })

  it('retries a dropped connection, then succeeds (Signet saw both attempts)', async () => {
    const client = new SignetClient({ url: signet.url, token })
    let dropped = 0
    const drop = (request: IncomingMessage) => {
      if (dropped === 0) {
        dropped++
        request.socket.destroy() // the connection dies before any answer
      }
    }
    signet.server.app.server.prependListener('request', drop)
    const before = signet.requests()
    try {
      const signed = await client.sign({ sub: 'user-42' })
      expect(signed.keyset).toBe('default')
    } finally {
      signet.server.app.server.off('request', drop)
      await client.close()
    }
    expect(dropped).toBe(1)
    expect(signet.requests() - before).toBe(2)
  })

  it('retries a 503 from a stopped-and-restarted server, then signs with the restarted Signet', async () => {
    const client = new SignetClient({ url: signet.url, token, retryDelay: 200, timeout: 10_000 })
    try {
      const first = await client.sign({ sub: 'before' })
      await signet.stop()
      // While Signet restarts, what answers on its port says 503 (as a proxy or a
      // server still starting would); after its first answer it makes way for the
      // restarted Signet on the same port and database.
      let restarted: Promise<void> | null = null
      const front = await standIn((_request, response) => {
        response.on('finish', () => { restarted = front.close().then(() => signet.start()) })
        problem(response, 503, 'not_ready', { connection: 'close' })
      }, signet.port)
      const before = signet.requests()
      const after = await client.sign({ sub: 'after' })
      await restarted
      expect(front.count()).toBe(1)
      expect(signet.requests() - before).toBe(1)
      expect(after.kid).toBe(first.kid) // the same key, kept across the restart
    } finally {
      await client.close()
    }
  })

  it('retries while the server is down (connection refused) and succeeds once it is back', async () => {
    const client = new SignetClient({ url: signet.url, token, retryDelay: 200, timeout: 10_000 })
    try {
      await client.sign({})
      await signet.stop()
      const back = new Promise<void>((resolve, reject) => setTimeout(() => signet.start().then(resolve, reject), 150))
      const signed = await client.sign({ sub: 'while restarting' })
      await back
      expect(signed.keyset).toBe('default')
    } finally {
      await client.close()
    }
  })

  it('retries Signet\'s own 503 (overloaded, with Retry-After) and succeeds once the load is gone', async () => {
    // A second Signet that answers at most one request at a time.
    const busy = await startLiveSignet({ SIGNET_MAX_IN_FLIGHT: '1' })
    const busyToken = await busy.createClient()
    const client = new SignetClient({ url: busy.url, token: busyToken, timeout: 5000 })
    const hog = connect(busy.port, '127.0.0.1')
    try {
      // A request whose body never finishes holds the only slot.
      await new Promise<void>((resolve) => hog.once('connect', () => resolve()))
      const base = busy.requests()
      hog.write(`POST /v1/sign HTTP/1.1\r\nHost: signet\r\nAuthorization: Bearer ${busyToken}\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{`)
      while (busy.requests() === base) await sleep(10)
      // What a caller sees while the slot is held: 503 overloaded, with Retry-After.
      const shed = await fetch(`${busy.url}/v1/sign`, { method: 'POST', headers: { authorization: `Bearer ${busyToken}`, 'content-type': 'application/json' }, body: '{"claims":{}}' })
      expect(shed.status).toBe(503)
      expect(shed.headers.get('retry-after')).toBe('1')
      expect((await shed.json()).code).toBe('overloaded')
      const overloaded: number[] = []
      const seen = (request: IncomingMessage, response: ServerResponse) => {
        response.once('finish', () => { if (response.statusCode === 503) overloaded.push(503) })
        // Free the slot once the client has been told to come back later.
        if (request.url === '/v1/sign' && overloaded.length === 0) response.once('finish', () => hog.destroy())
      }
      busy.server.app.server.on('request', seen)
      const signed = await client.sign({ sub: 'patient' })
      busy.server.app.server.off('request', seen)
      expect(signed.keyset).toBe('default')
      expect(overloaded).toEqual([503])
      expect(busy.requests() - base).toBe(4) // the hog, the fetch's 503, the client's 503, its retry
    } finally {
      hog.destroy()
      await client.close()
      await busy.close()
      busy.watch.assertClean()
    }
  })

  it('never retries a 4xx from Signet (counted server-side)', async () => {
    const client = new SignetClient({ url: signet.url, token })
    const wrong = new SignetClient({ url: signet.url, token: `signet_${'0'.repeat(43)}` })
    try {
      for (const [call, code] of [
        [() => client.sign({}, { ttl: 10 ** 6 }), 'ttl_too_long'],
        [() => client.sign({ iat: 1 }), 'reserved_claim'],
        [() => client.sign({}, { keyset: 'missing' }), 'keyset_not_found'],
        [() => client.signBatch([{ claims: {} }, { claims: { exp: 1 } }]), 'reserved_claim'],
        [() => wrong.sign({}), 'unauthorized'],
      ] as const) {
        const before = signet.requests()
        const error = await refusal(call())
        expect(error.code).toBe(code)
        expect(error.attempts).toBe(1)
        expect(signet.requests() - before, code).toBe(1)
      }
    } finally {
      await client.close()
      await wrong.close()
    }
  })

  it('never retries 429, 404 or 500 (only 503 means "try again")', async () => {
    for (const [status, code] of [[429, 'rate_limited'], [404, 'not_found'], [500, 'internal_error']] as const) {
      const server = await standIn((_request, response) => problem(response, status, code, { 'retry-after': '0' }))
      const client = new SignetClient({ url: server.url, token, retryDelay: 1 })
      try {
        expect(await refusal(client.sign({}))).toMatchObject({ status, code, attempts: 1 })
        expect(server.count()).toBe(1)
      } finally {
        await client.close()
        await server.close()
      }
    }
  })

  it('retries a 503 that persists until the deadline, never past it, and ends with the problem\'s code and detail; `retries` lowers the count', async () => {
    const server = await standIn((_request, response) => problem(response, 503, 'sealed'))
    const client = new SignetClient({ url: server.url, token, retryDelay: 5, timeout: 800 })
    const limited = new SignetClient({ url: server.url, token, retryDelay: 5, retries: 2 })
    const none = new SignetClient({ url: server.url, token, retries: 0 })
    try {
      const startedAt = Date.now()
      const error = await refusal(client.sign({}))
      const elapsed = Date.now() - startedAt
      expect(error).toMatchObject({ status: 503, code: 'sealed', detail: 'stand-in sealed' })
      // Bounded by time, not by a count: many more than the old fixed 3 retries.
      expect(error.attempts).toBeGreaterThan(5)
      expect(server.count()).toBe(error.attempts)
      expect(elapsed).toBeLessThan(800 + DEADLINE_SLACK_MS)
      expect(await refusal(limited.sign({}))).toMatchObject({ code: 'sealed', attempts: 3 })
      expect(await refusal(none.sign({}))).toMatchObject({ code: 'sealed', attempts: 1 })
      expect(server.count()).toBe(error.attempts + 4)
    } finally {
      await client.close()
      await limited.close()
      await none.close()
      await server.close()
    }
  })

  it('retries connection errors until the deadline and never past it', async () => {
    const gone = await standIn(() => {})
    await gone.close() // a port nobody listens on
    const client = new SignetClient({ url: gone.url, token, timeout: 1000 })
    try {
      const startedAt = Date.now()
      const error = await refusal(client.sign({}))
      const elapsed = Date.now() - startedAt
      expect(error).toMatchObject({ code: 'connection_error', status: null })
      expect(error.attempts).toBeGreaterThan(4)
      expect(isConnectionError(error.cause)).toBe(true)
      // The last attempt is made shortly before the deadline, not given up early.
      expect(elapsed).toBeGreaterThan(800)
      expect(elapsed).toBeLessThan(1000 + DEADLINE_SLACK_MS)
    } finally {
      await client.close()
    }
  })

  it('never exceeds its deadline, whatever the server does: drops every connection, answers slowly, or never', async () => {
    const behaviours: Handler[] = [
      (request) => request.socket.destroy(),
      (_request, response) => { setTimeout(() => problem(response, 503, 'not_ready'), 300) },
      () => { /* never answers */ },
      (_request, response) => { response.writeHead(200, { 'content-type': 'application/json' }).write('{"token":') }, // a body that never ends
    ]
    for (const behaviour of behaviours) {
      const server = await standIn(behaviour)
      const client = new SignetClient({ url: server.url, token, timeout: 700 })
      try {
        const startedAt = Date.now()
        const error = await refusal(client.sign({}))
        expect(Date.now() - startedAt, error.code).toBeLessThan(700 + DEADLINE_SLACK_MS)
        expect(['connection_error', 'not_ready', 'timeout']).toContain(error.code)
      } finally {
        await client.close()
        await server.close()
      }
    }
  })

  it('does not retry an answer that broke off after its headers came (Signet had handled the request)', async () => {
    const server = await standIn((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': '500' }).write('{"token":"a.b')
      setTimeout(() => response.socket?.destroy(), 20)
    })
    const client = new SignetClient({ url: server.url, token })
    try {
      expect(await refusal(client.sign({}))).toMatchObject({ code: 'connection_error', status: 200, attempts: 1 })
      expect(server.count()).toBe(1)
    } finally {
      await client.close()
      await server.close()
    }
  })

  it('with default options, rides out a real restart of Signet of about 1.5 s while a call is in flight', async () => {
    const client = new SignetClient({ url: signet.url, token })
    try {
      const first = await client.sign({ sub: 'before' })
      await signet.stop()
      const stoppedAt = Date.now()
      let downFor = 0
      const back = sleep(1500).then(() => signet.start()).then(() => { downFor = Date.now() - stoppedAt })
      const startedAt = Date.now()
      const signed = await client.sign({ sub: 'during the restart' })
      const elapsed = Date.now() - startedAt
      await back
      expect(downFor).toBeGreaterThanOrEqual(1500)
      expect(elapsed).toBeGreaterThanOrEqual(1500)
      expect(elapsed).toBeLessThan(5000) // the default deadline
      expect(signed.kid).toBe(first.kid)
    } finally {
      await client.close()
    }
  })

  it('waits for Retry-After when it fits in the deadline, and gives up at once when it does not', async () => {
    const server = await standIn((_request, response, count) => {
      if (count === 1) problem(response, 503, 'not_ready', { 'retry-after': '1' })
      else response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(signedAnswer))
    })
    const patient = new SignetClient({ url: server.url, token, timeout: 5000 })
    try {
      expect((await patient.sign({})).token).toBe('a.b.c')
      expect(server.count()).toBe(2)
      const slow = await standIn((_request, response) => problem(response, 503, 'not_ready', { 'retry-after': '30' }))
      const slowClient = new SignetClient({ url: slow.url, token, timeout: 2000 })
      expect(await refusal(slowClient.sign({}))).toMatchObject({ code: 'not_ready', attempts: 1 })
      expect(slow.count()).toBe(1)
      await slowClient.close()
      await slow.close()
    } finally {
      await patient.close()
      await server.close()
    }
  })

  it('a server that never answers ends in a timeout error, not a hang', async () => {
    const server = await standIn(() => { /* never answers */ })
    const client = new SignetClient({ url: server.url, token, timeout: 300 })
    try {
      expect(await refusal(client.sign({}))).toMatchObject({ code: 'timeout', status: null })
      expect(server.count()).toBe(1)
    } finally {
      await client.close()
      await server.close()
    }
  })

  it('a 200 that is not a signed token is an invalid_response, not retried', async () => {
    const server = await standIn((_request, response) => response.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>'))
    const client = new SignetClient({ url: server.url, token })
    try {
      expect(await refusal(client.sign({}))).toMatchObject({ code: 'invalid_response', status: 200 })
      expect(server.count()).toBe(1)
    } finally {
      await client.close()
      await server.close()
    }
  })

  it('a 502 page from a proxy is an http_error with its status', async () => {
    const server = await standIn((_request, response) => response.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad gateway</h1>'))
    const client = new SignetClient({ url: server.url, token })
    try {
      expect(await refusal(client.sign({}))).toMatchObject({ code: 'http_error', status: 502, attempts: 1 })
    } finally {
      await client.close()
      await server.close()
    }
  })

  it('backoff: exponential from the base, capped, with full jitter', () => {
    expect(backoffDelay(1, 100, 1000, () => 0)).toBe(0)
    expect(backoffDelay(1, 100, 1000, () => 1)).toBe(100)
    expect(backoffDelay(3, 100, 1000, () => 1)).toBe(400)
    expect(backoffDelay(3, 100, 1000, () => 0.5)).toBe(200)
    expect(backoffDelay(8, 100, 1000, () => 1)).toBe(1000)
    expect(backoffDelay(5000, 100, 1000, () => 1)).toBe(1000)
    const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(2, 100, 1000)))
    expect(spread.size).toBeGreaterThan(1)
    for (const delay of spread) expect(delay >= 0 && delay <= 200).toBe(true)
  })

  it('the next delay fits the deadline: a last attempt before it, Retry-After honoured or given up', () => {
    expect(nextDelay(300, null, 5000, 100)).toBe(300)
    expect(nextDelay(900, null, 600, 100)).toBe(500) // shortened: one last attempt 100 ms before the deadline
    expect(nextDelay(50, null, 100, 100)).toBeNull()
    expect(nextDelay(50, 1000, 5000, 100)).toBe(1000) // never sooner than Signet asked
    expect(nextDelay(50, 1000, 1000, 100)).toBeNull() // Retry-After past the deadline: give up now
  })

  it('Retry-After in seconds is read; dates and junk are ignored', () => {
    expect(retryAfterMs('2')).toBe(2000)
    expect(retryAfterMs(['0'])).toBe(0)
    expect(retryAfterMs('Wed, 21 Oct 2015 07:28:00 GMT')).toBeNull()
    expect(retryAfterMs('-1')).toBeNull()
    expect(retryAfterMs(undefined)).toBeNull()
  })
})
