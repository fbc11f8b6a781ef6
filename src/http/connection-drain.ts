import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { Socket } from 'node:net'
import { Server as TlsServer } from 'node:tls'

/**
 * How a listener's connections end when it closes, so that an answer in flight is
 * never cut (README, "Stopping and upgrading"):
 *
 * - every answer not yet begun gets `Connection: close`, so a keep-alive connection
 *   ends right after its current reply (RFC 9112 section 9.6);
 * - a connection whose answer had begun is ended once that answer is flushed;
 * - a connection that has not been answered yet (new, its first request perhaps
 *   still on its way or not yet read) gets LATE_CONNECTION_IDLE_MS to send one,
 *   which is answered with `Connection: close`;
 * - on HTTPS, a connection whose TLS handshake has not completed gets as long to
 *   complete it (trackHandshakes), and then as long to send its request;
 * - other idle connections (keep-alive, between requests) are closed at once.
 *
 * Node's own closeIdleConnections(), which server.close() calls, counts a connection
 * as idle as soon as its answer is ended, although a large answer (a 1000-token
 * batch) may still sit in the socket's buffer for a slow reader, and destroys it.
 * So it is replaced on each tracked server by one that also waits for the socket's
 * buffer to be written.
 *
 * Nothing is added per request while the listener serves: only a set of open
 * connections is kept (per-request listeners made the heap of a busy server grow
 * by tens of MB, npm run bench). The answer a connection is writing is Node's own
 * `socket._httpMessage`, the field its closeIdleConnections() reads too.
 */

const drains = new WeakMap<Server, () => void>()

/**
 * How long a connection that has not been answered yet when closing begins, or that
 * comes once it has begun (a TLS handshake that completes, a connection a cluster
 * primary hands over), has to send its request before it is closed as idle.
 */
const LATE_CONNECTION_IDLE_MS = 1000

/** The answer Node is writing on a connection, if any. */
const currentAnswer = (socket: Socket): ServerResponse | null =>
  (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? null

/** As Node does after a `Connection: close` answer: end, then destroy once written. */
function closeWhenFlushed(socket: Socket): void {
  if (socket.destroyed) return
  if (socket.writableLength === 0) return void socket.destroy()
  socket.end()
  socket.once('finish', () => socket.destroy())
}

/** Ends a connection once its current answer (if any) and its buffer are written. */
function closeAfterAnswer(socket: Socket): void {
  const answer = currentAnswer(socket)
  if (answer === null || answer.writableFinished) return closeWhenFlushed(socket)
  if (!answer.headersSent) answer.setHeader('connection', 'close') // Node closes it after this answer
  else answer.once('finish', () => closeWhenFlushed(socket))
}

/** Tracks a listener's connections; call before it listens. */
export function trackConnections(server: Server): void {
  const connections = new Set<Socket>()
  /** Connections given LATE_CONNECTION_IDLE_MS to send their request: not idle until then. */
  const awaitingRequest = new Set<Socket>()
  let draining = false

  /** Closes `socket` unless a request has come by the end of its time. */
  const awaitRequest = (socket: Socket): void => {
    awaitingRequest.add(socket)
    setTimeout(() => {
      awaitingRequest.delete(socket)
      if (currentAnswer(socket) === null) closeWhenFlushed(socket)
    }, LATE_CONNECTION_IDLE_MS).unref()
  }

  server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', (socket: Socket) => {
    connections.add(socket)
    socket.once('close', () => {
      connections.delete(socket)
      awaitingRequest.delete(socket)
    })
    if (draining) awaitRequest(socket)
  })

  // A request that arrives while closing (pipelined, or on a connection that was
  // between requests) is answered, then its connection ends.
  server.prependListener('request', (_request: IncomingMessage, response: ServerResponse) => {
    if (draining) response.setHeader('connection', 'close')
  })

  server.closeIdleConnections = () => {
    for (const socket of connections) if (currentAnswer(socket) === null && !awaitingRequest.has(socket)) closeWhenFlushed(socket)
  }

  const endHandshakes = server instanceof TlsServer ? trackHandshakes(server) : () => {}

  drains.set(server, () => {
    draining = true
    endHandshakes()
    for (const socket of connections) {
      // Nothing written yet: a new connection, whose request may not have been read.
      if (currentAnswer(socket) === null && socket.bytesWritten === 0) awaitRequest(socket)
      else closeAfterAnswer(socket)
    }
  })
}

/**
 * An HTTPS listener's connections whose TLS handshake has not completed are not
 * among the connections above (they come with 'secureConnection'), yet the server's
 * close() waits for them, up to Node's handshake timeout of 120 s: a TCP health
 * check that connects and says nothing would outlast the shutdown's 10 s grace. So
 * their raw sockets are kept until the handshake completes, and once closing has
 * begun each gets LATE_CONNECTION_IDLE_MS to complete it before it is closed.
 * Node links a server-side TLS socket to its raw socket as `_parent`; should that
 * link ever be missing or point elsewhere, nothing is closed here (a raw socket whose
 * handshake completed must never be taken for one that did not), and the shutdown
 * waits for Node's timeout as before. Answers the function that starts the countdown.
 */
function trackHandshakes(server: TlsServer): () => void {
  const handshaking = new Set<Socket>()
  let linked = true
  let draining = false
  const closeUnlessSecured = (raw: Socket) => {
    setTimeout(() => { if (linked && handshaking.has(raw)) raw.destroy() }, LATE_CONNECTION_IDLE_MS).unref()
  }
  server.prependListener('connection', (raw: Socket) => {
    handshaking.add(raw)
    raw.once('close', () => handshaking.delete(raw))
    if (draining) closeUnlessSecured(raw)
  })
  server.prependListener('secureConnection', (socket: Socket) => {
    const raw = (socket as Socket & { _parent?: unknown })._parent
    if (!(raw instanceof Socket) || !handshaking.delete(raw)) linked = false
  })
  return () => {
    draining = true
    for (const raw of handshaking) closeUnlessSecured(raw)
  }
}

/**
 * Starts ending a tracked listener's connections as described above. The caller
 * then closes the server; it closes once the last answer is flushed.
 */
export function drainConnections(server: Server): void {
  drains.get(server)?.()
}
