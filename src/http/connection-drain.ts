import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { Server as TlsServer } from 'node:tls'

/**
 * How a listener's connections end when it closes, so that an answer in flight is
 * never cut (README, "Stopping and upgrading"):
 *
 * - every answer not yet begun gets `Connection: close`, so a keep-alive connection
 *   ends right after its current reply (RFC 9112 section 9.6);
 * - a connection whose answer had begun is ended once that answer is flushed;
 * - idle connections are closed at once.
 *
 * Node's own closeIdleConnections(), which server.close() calls, counts a connection
 * as idle as soon as its answer is ended, although a large answer (a 1000-token
 * batch) may still sit in the socket's buffer for a slow reader, and destroys it.
 * So it is replaced on each tracked server by one that counts an answer as in
 * flight until it is flushed ('finish').
 */

const drains = new WeakMap<Server, () => void>()

/**
 * A connection that completes (a TLS handshake in progress) once closing has begun
 * gets this long to send its request before it is closed as idle.
 */
const LATE_CONNECTION_IDLE_MS = 1000

/** Tracks a listener's connections and answers; call before it listens. */
export function trackConnections(server: Server): void {
  // Per connection, the answers not yet flushed (several with HTTP pipelining).
  const connections = new Map<Duplex, number>()
  const unsent = new Set<ServerResponse>()
  let draining = false

  // As Node does after a `Connection: close` answer: end, then destroy once written.
  const closeWhenFlushed = (socket: Duplex) => {
    if (socket.destroyed) return
    if (socket.writableFinished) return void socket.destroy()
    socket.end()
    socket.once('finish', () => socket.destroy())
  }

  server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', (socket: Duplex) => {
    connections.set(socket, 0)
    socket.once('close', () => connections.delete(socket))
    if (draining) {
      setTimeout(() => { if (connections.get(socket) === 0) socket.destroy() }, LATE_CONNECTION_IDLE_MS).unref()
    }
  })

  server.prependListener('request', (request: IncomingMessage, response: ServerResponse) => {
    const socket = request.socket
    connections.set(socket, (connections.get(socket) ?? 0) + 1)
    if (draining) response.setHeader('connection', 'close')
    else unsent.add(response)
    let settled = false
    const settle = () => {
      if (settled) return
      settled = true
      unsent.delete(response)
      const count = connections.get(socket)
      if (count === undefined) return
      connections.set(socket, count - 1)
      if (draining && count === 1) closeWhenFlushed(socket)
    }
    response.once('finish', settle)
    response.once('close', settle)
  })

  server.closeIdleConnections = () => {
    for (const [socket, answers] of connections) if (answers === 0) socket.destroy()
  }

  drains.set(server, () => {
    draining = true
    for (const response of unsent) if (!response.headersSent) response.setHeader('connection', 'close')
    unsent.clear()
    server.closeIdleConnections()
  })
}

/**
 * Starts ending a tracked listener's connections as described above. The caller
 * then closes the server; it closes once the last answer is flushed.
 */
export function drainConnections(server: Server): void {
  drains.get(server)?.()
}
