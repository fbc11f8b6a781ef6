import { createConnection, createServer, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy in front of PostgreSQL that a test can cut: `cut()` closes the
 * listening port and destroys every connection through it, so the replicas behind
 * it see their database vanish (connections reset, new ones refused) without
 * touching the server other test suites use; `restore()` listens again on the
 * same port.
 */
export class TcpProxy {
  readonly #target: { host: string; port: number }
  readonly #sockets = new Set<Socket>()
  #server: Server | null = null
  #port = 0

  constructor(targetUrl: string) {
    const url = new URL(targetUrl)
    this.#target = { host: url.hostname || '127.0.0.1', port: Number(url.port || 5432) }
  }

  get port(): number {
    return this.#port
  }

  /** `url` with its host and port replaced by the proxy's. */
  route(url: string): string {
    const routed = new URL(url)
    routed.hostname = '127.0.0.1'
    routed.port = String(this.#port)
    return routed.toString()
  }

  async listen(): Promise<number> {
    const server = createServer((client) => {
      const upstream = createConnection(this.#target)
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket)
        socket.on('close', () => this.#sockets.delete(socket))
        socket.on('error', () => {
          client.destroy()
          upstream.destroy()
        })
      }
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.#port, '127.0.0.1', () => resolve())
    })
    this.#server = server
    this.#port = (server.address() as { port: number }).port
    return this.#port
  }

  /** The database goes away: no new connections, existing ones reset. */
  async cut(): Promise<void> {
    const server = this.#server
    this.#server = null
    for (const socket of this.#sockets) socket.destroy()
    this.#sockets.clear()
    if (server) await new Promise((resolve) => server.close(resolve))
  }

  /** The database comes back on the same port. */
  async restore(): Promise<void> {
    await this.listen()
  }

  async close(): Promise<void> {
    await this.cut()
  }
}
