import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startLiveSignet, type LiveSignet } from '../helpers/live-server.js'
import { parseHead } from '../helpers/raw-http.js'
import { within } from '../helpers/wait.js'

/**
 * While the service shuts down, an answer in flight carries `Connection: close`
 * and its connection ends after it, so a keep-alive client sends nothing more on it.
 *
 * Made deterministic with a raw socket: the first request's body is held back
 * until the listener has stopped listening, then sent together with a second,
 * pipelined request.
 */

interface RawAnswer {
  status: number
  headers: Record<string, string>
  body: any
}

/** Splits what a socket received into HTTP/1.1 answers (each with a Content-Length). */
function parseAnswers(raw: Buffer): RawAnswer[] {
  const answers: RawAnswer[] = []
  let rest = raw
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n')
    if (end < 0) throw new Error(`an incomplete answer: ${rest.toString()}`)
    const { status, headers } = parseHead(rest.subarray(0, end).toString('latin1'))
    const length = Number(headers['content-length'])
    const body = rest.subarray(end + 4, end + 4 + length).toString('utf8')
    answers.push({ status, headers, body: JSON.parse(body) })
    rest = rest.subarray(end + 4 + length)
  }
  return answers
}

function signRequest(token: string, body: string): string {
  return [
    'POST /v1/sign HTTP/1.1',
    'Host: signet',
    `Authorization: Bearer ${token}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    '',
  ].join('\r\n')
}

describe('requests that arrive while the service shuts down', () => {
  let live: LiveSignet
  let token: string

  beforeAll(async () => {
    live = await startLiveSignet()
    token = await live.createClient()
  })

  afterAll(async () => {
    await live.close()
    live.watch.assertClean()
  })

  it('an answer in flight gets its token with Connection: close, and the connection ends after it (a request pipelined after it is not answered)', async () => {
    const body = JSON.stringify({ claims: { sub: 'user-42' } })
    const socket: Socket = connect(live.port, '127.0.0.1')
    const received: Buffer[] = []
    socket.on('data', (chunk: Buffer) => received.push(chunk))
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))

    // The first request: headers and half of the body, so it stays in flight.
    const seen = live.requests()
    socket.write(signRequest(token, body) + body.slice(0, 10))
    await within(5000, () => live.requests() === seen + 1)

    // Shut down; once the listener no longer listens, fastify is closing.
    const running = live.server
    const stopping = live.stop()
    await within(5000, () => !running.app.server.listening)

    // The rest of the first body and, on the same connection, a second request.
    socket.write(body.slice(10) + signRequest(token, body) + body)
    await closed
    await stopping

    const [first, ...more] = parseAnswers(Buffer.concat(received))
    expect(first!.status).toBe(200)
    expect(first!.headers.connection).toBe('close')
    expect(first!.body.token.split('.')).toHaveLength(3)
    // The client was told the connection ends; what it pipelined after is not answered
    // (RFC 9112 section 9.3.2: a client retries unanswered pipelined requests; SignetClient does).
    expect(more).toEqual([])
    await live.start()
  })
})
