import pg from 'pg'
import { CHANGE_CHANNEL } from './locks.js'

export interface SessionOptions {
  /** Connection settings (those of the pool). */
  client: pg.ClientConfig
  /** The schema whose notifications count; others in the same database are ignored. */
  schema: string
  /** The advisory-lock key of the scheduler lease. */
  leaseKey: string
  /** Another process committed a change, or the channel came back after a loss. */
  onChange: () => void
}

/**
 * The one long-lived connection of a replica, outside the pool. It LISTENs for
 * change notifications and holds the scheduler lease as a session-level advisory
 * lock, so the lease ends with the connection: a replica killed with SIGKILL loses
 * it as soon as PostgreSQL sees the socket close, and one cut off from the network
 * within the TCP keepalive window set below.
 *
 * Nothing here runs on a timer. The runtime's background loop calls `lease()` on
 * every poll interval; that call (re)connects when needed and probes the
 * connection, so a lost session is noticed and replaced within one interval.
 */
export class Session {
  readonly #options: SessionOptions
  #client: pg.Client | null = null
  #connecting: Promise<pg.Client> | null = null
  #held = false
  #everConnected = false
  #closed = false

  constructor(options: SessionOptions) {
    this.#options = options
  }

  /** Opens the connection and LISTENs, once; concurrent callers share the attempt. */
  connect(): Promise<pg.Client> {
    if (this.#closed) return Promise.reject(new Error('the storage is closed'))
    if (this.#client) return Promise.resolve(this.#client)
    this.#connecting ??= this.#open().finally(() => {
      this.#connecting = null
    })
    return this.#connecting
  }

  async #open(): Promise<pg.Client> {
    const client = new pg.Client(this.#options.client)
    // Until 'end', every failure of this connection lands here (and in the query that hit it).
    client.on('error', () => this.#drop(client))
    client.on('end', () => this.#drop(client))
    client.on('notification', (message) => {
      if (message.channel === CHANGE_CHANNEL && message.payload?.split(':')[0] === this.#options.schema) this.#options.onChange()
    })
    try {
      await client.connect()
      // Let PostgreSQL notice a vanished replica within seconds even without a FIN
      // (its host died, or the network split): then the lease moves on.
      await client.query('SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 3')
      await client.query(`LISTEN ${CHANGE_CHANNEL}`)
    } catch (error) {
      client.removeAllListeners('end')
      await client.end().catch(() => {})
      throw error
    }
    if (this.#closed) {
      await client.end().catch(() => {})
      throw new Error('the storage is closed')
    }
    this.#client = client
    // After a loss, notifications may have been missed: let the listener reconcile.
    if (this.#everConnected) this.#options.onChange()
    this.#everConnected = true
    return client
  }

  /** Forgets a broken connection; the lease went with it. */
  #drop(client: pg.Client): void {
    if (this.#client !== client) return
    this.#client = null
    this.#held = false
    client.end().catch(() => {})
  }

  /**
   * Whether this process holds the scheduler lease, taking it when free. Also the
   * liveness probe of the connection: a query that fails or times out drops it.
   */
  async lease(): Promise<boolean> {
    let client: pg.Client | null = null
    try {
      client = await this.connect()
      if (this.#held) {
        await client.query('SELECT 1')
      } else {
        const result = await client.query<{ taken: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS taken', [this.#options.leaseKey])
        this.#held = result.rows[0]?.taken === true
      }
      return this.#held
    } catch {
      if (client) this.#drop(client)
      return false
    }
  }

  /** Ends the connection, which releases the lease. */
  async close(): Promise<void> {
    this.#closed = true
    await this.#connecting?.catch(() => {})
    const client = this.#client
    this.#client = null
    this.#held = false
    if (client) {
      client.removeAllListeners('end')
      await client.end().catch(() => {})
    }
  }
}
