import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { SECURITY_HEADERS } from '../plugins/security-headers.js'
import { SignetError } from '../errors.js'
import { PROBLEM_JSON, problemBody } from './problem.js'

/** How long a refused connection may keep sending before it is cut. */
const DRAIN_MS = 2_000

/** The answer for each parser or timeout failure: status, code, detail. */
function classify(code: string | undefined): [number, string, string] {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'headers_too_large', 'the request line and headers are limited to 16 KiB']
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'request_timeout', 'the request was not received in time']
    default:
      return [400, 'invalid_request', 'the request is not valid HTTP']
  }
}

/**
 * Answers what Node's HTTP parser refuses before fastify sees a request (an
 * overlong URL or header block, malformed HTTP, a client too slow to send its
 * headers or body) with a problem+json body and the usual security headers, then
 * closes the connection. The rest of what the client sends is read and dropped for
 * a moment, so it gets the answer instead of a connection reset.
 */
export function clientErrorHandler(this: FastifyInstance, error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const [status, code, detail] = classify(error.code)
  this.log.debug({ code, status }, 'client error')
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const problem = new SignetError(code, status, STATUS_CODES[status] ?? 'Bad Request', detail)
  const body = JSON.stringify(problemBody(problem))
  const headers = Object.entries(SECURITY_HEADERS).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  socket.end(
    `HTTP/1.1 ${status} ${problem.title}\r\n${headers}content-type: ${PROBLEM_JSON}\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  )
  socket.resume()
  setTimeout(() => socket.destroy(), DRAIN_MS).unref()
}
