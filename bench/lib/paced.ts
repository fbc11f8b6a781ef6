import { connect, type Socket } from 'node:net'

/**
 * Latency at a steady rate: requests go out evenly spread in time (open loop), over
 * a fixed number of keep-alive connections, whatever the server's answers do.
 *
 * autocannon's rate option cannot measure this. Each of its connections sends its
 * quota for the second back to back and then waits for the next second, so "half
 * the maximum rate" is full-speed bursts half of the time, and its latencies are
 * those of a server at full load. Its coordinated-omission correction also takes
 * 1/rate (seconds) as the expected interval in milliseconds, which adds a made-up
 * sample for every millisecond of a slow answer.
 *
 * Each latency is measured from the moment the generator issues the request on
 * its schedule (a 1 ms tick), not from when a free connection took it, so a server
 * that falls behind cannot hide its queue (coordinated omission). The first second is a warm-up on the same
 * connections and is not counted: it would measure connecting, and the server
 * catching up with whatever ran before.
 *
 * The client is a few lines over raw sockets (one request at a time on each
 * connection, answers with Content-Length), because it shares the machine with the
 * server: a general HTTP client cost three times autocannon's CPU per request here.
 */
export interface PacedOptions {
  url: string
  method: 'GET' | 'POST'
  headers: Record<string, string>
  body?: string
  /** Requests per second, spread evenly. */
  rate: number
  /** Seconds measured, after one second of warm-up. */
  seconds: number
  connections: number
}

export interface PacedResult {
  requestsPerSecond: number
  p50Ms: number
  p99Ms: number
  errors: number
}

/** The q-quantile (0..1) of sorted values, by nearest rank. */
function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!
}

/** The request's bytes, built once: every request of a run is the same. */
function requestBytes(url: URL, options: PacedOptions): Buffer {
  const body = options.body === undefined ? Buffer.alloc(0) : Buffer.from(options.body)
  const headers = { host: url.host, ...options.headers, 'content-length': String(body.length) }
  const head = `${options.method} ${url.pathname}${url.search} HTTP/1.1\r\n${Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`
  return Buffer.concat([Buffer.from(head, 'latin1'), body])
}

/** One keep-alive connection answering one request at a time. */
class Connection {
  readonly #socket: Socket
  #received: Buffer = Buffer.alloc(0)
  #waiting: ((status: number) => void) | null = null
  /** The server closed it (or it failed): it is not used again. */
  closed = false
  ready: Promise<void>

  constructor(host: string, port: number) {
    this.#socket = connect(port, host)
    this.#socket.setNoDelay(true)
    this.ready = new Promise((resolve, reject) => {
      this.#socket.once('connect', resolve)
      this.#socket.once('error', reject)
    })
    this.#socket.on('data', (chunk: Buffer) => {
      this.#received = this.#received.length === 0 ? chunk : Buffer.concat([this.#received, chunk])
      this.#takeAnswer()
    })
    this.#socket.on('error', () => {})
    this.#socket.on('close', () => {
      this.closed = true
      const waiting = this.#waiting
      this.#waiting = null
      waiting?.(0)
    })
  }

  /** Sends a request and resolves with the answer's status (0 if the connection broke). */
  send(request: Buffer): Promise<number> {
    if (this.closed) return Promise.resolve(0)
    return new Promise((resolve) => {
      this.#waiting = resolve
      this.#socket.write(request)
    })
  }

  #takeAnswer(): void {
    const end = this.#received.indexOf('\r\n\r\n')
    if (end < 0) return
    const head = this.#received.toString('latin1', 0, end)
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0)
    if (this.#received.length < end + 4 + length) return
    this.#received = this.#received.subarray(end + 4 + length)
    const waiting = this.#waiting
    this.#waiting = null
    waiting?.(Number(head.slice(9, 12)))
  }

  close(): void {
    this.#socket.destroy()
  }
}

export async function paced(options: PacedOptions): Promise<PacedResult> {
  const url = new URL(options.url)
  const request = requestBytes(url, options)
  const connections = Array.from({ length: options.connections }, () => new Connection(url.hostname, Number(url.port)))
  await Promise.all(connections.map((connection) => connection.ready))
  const idle = [...connections]
  const queue: { issuedAt: number; counted: boolean }[] = []
  const latencies: number[] = []
  let errors = 0
  let live = connections.length

  const warmUp = Math.floor(options.rate)
  const total = warmUp + Math.floor(options.rate * options.seconds)
  let sent = 0
  let finished = 0
  let measuredFrom = Infinity
  let allDone: () => void = () => {}
  const done = new Promise<void>((resolve) => { allDone = resolve })

  // Each idle connection takes the oldest issued request; latency counts from its issue.
  const dispatch = () => {
    while (idle.length > 0 && queue.length > 0) {
      const connection = idle.pop()!
      if (connection.closed) {
        // Closed while idle (a Connection: close answer, a restart): dropped, once.
        if (--live === 0) allDone()
        continue
      }
      const { issuedAt, counted } = queue.shift()!
      void connection.send(request).then((status) => {
        if (counted) {
          if (status >= 200 && status < 300) latencies.push(performance.now() - issuedAt)
          else errors++
        }
        // A connection the server closed is not used again; with none left, the run ends.
        if (status === 0 || connection.closed) live--
        else idle.push(connection)
        if (++finished === total || live === 0) allDone()
        dispatch()
      })
    }
  }

  const started = performance.now()
  // Every millisecond or so, issue what is due by now.
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * options.rate))
      for (; sent < due; sent++) {
        if (sent === warmUp) measuredFrom = performance.now()
        queue.push({ issuedAt: performance.now(), counted: sent >= warmUp })
      }
      dispatch()
      if (sent >= total) resolve()
      else setTimeout(tick, 1)
    }
    tick()
  })
  await done
  const elapsed = (performance.now() - measuredFrom) / 1000
  for (const connection of connections) connection.close()
  latencies.sort((a, b) => a - b)
  return { requestsPerSecond: latencies.length / elapsed, p50Ms: quantile(latencies, 0.5), p99Ms: quantile(latencies, 0.99), errors }
}
