import cluster, { type Worker } from 'node:cluster'
import { createRequire } from 'node:module'
import type { Logger } from 'pino'
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client'
import { SignetMetrics } from './metrics/registry.js'
import type { Signet } from './runtime.js'

/**
 * SIGNET_WORKERS: several serving processes of one instance, with node:cluster
 * (README, "Workers or replicas"). The primary serves nothing: the workers share its
 * listening sockets. It starts the workers, hands them their configuration, gives
 * the key schedule to exactly one of them, replaces a worker that dies, answers
 * /metrics for the whole instance, relays each committed change to the other workers
 * (so the instance answers a change only once every worker serves it), and at
 * shutdown has every worker finish its requests in flight before it exits itself.
 * server.ts does the listening and the signals; this module is the conversation
 * between the processes.
 *
 * Secrets: a worker's environment holds no SIGNET_* variable. The primary sends
 * them over the IPC channel (a pipe between the two processes), so they are never
 * in a worker's /proc/<pid>/environ, its command line, or a log line.
 */

/** How much longer than a worker's own shutdown grace the primary waits for the workers' exits. */
export const WORKER_STOP_MARGIN_MS = 2000
/** How long the primary waits for a worker's metrics, and a worker for the instance's. */
const METRICS_TIMEOUT_MS = 3000
/** The pause before replacing a worker that died before it listened, doubling up to the most. */
const RESTART_DELAY_MS = 1000
const RESTART_DELAY_MAX_MS = 30_000
/** How long the primary waits for the other workers to reload after a change before it answers the committing one anyway. */
export const PEER_RELOAD_TIMEOUT_MS = 2000

type MetricsPart = MetricObjectWithValues<MetricValue<string>>[]

/** Messages between the primary and a worker (JSON over the cluster's IPC channel). */
type ToPrimary =
  | { type: 'signet:hello' }
  | { type: 'signet:listening'; url: string; publicUrl: string | null }
  | { type: 'signet:start-failed'; message: string }
  | { type: 'signet:instance-metrics'; id: number }
  | { type: 'signet:metrics-part'; id: number; metrics: MetricsPart }
  /** This worker committed a change: have the others reload, then answer `signet:peers-reloaded`. */
  | { type: 'signet:committed'; id: number }
  /** This worker reloaded its keystore for the primary's `signet:reload`. */
  | { type: 'signet:reloaded'; id: number }
type ToWorker =
  | { type: 'signet:config'; env: Record<string, string> }
  | { type: 'signet:schedule' }
  | { type: 'signet:stop' }
  | { type: 'signet:collect-metrics'; id: number }
  | { type: 'signet:instance-metrics'; id: number; text?: string; error?: string }
  /** Another worker committed a change: reload the keystore from storage, then answer `signet:reloaded`. */
  | { type: 'signet:reload'; id: number }
  /** Every other worker reloaded after this worker's `signet:committed` (or the primary stopped waiting). */
  | { type: 'signet:peers-reloaded'; id: number }

const isMessage = (message: unknown): message is { type: string } =>
  typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' && (message as { type: string }).type.startsWith('signet:')

export function isClusterWorker(): boolean {
  return cluster.isWorker
}

/** The SIGNET_* variables of an environment: what the workers are configured from. */
export function signetVariables(env: NodeJS.ProcessEnv): Record<string, string> {
  const variables: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) if (name.startsWith('SIGNET_') && value !== undefined) variables[name] = value
  return variables
}

/** The thread pool `signet serve` runs with unless UV_THREADPOOL_SIZE is given (bin/serving-defaults.cjs). */
const { THREAD_POOL_SIZE } = createRequire(import.meta.url)('../bin/serving-defaults.cjs') as { THREAD_POOL_SIZE: string }

/**
 * The signing threads of each worker: the instance's thread pool (UV_THREADPOOL_SIZE,
 * which bin/signet.cjs sets unless given; the same default here when it is missing)
 * shared out among the workers, at least one each. Each
 * worker with a pool of its own that size would put workers x cores signing threads
 * on the cores beside the event loops: measured on 2 cores in alternating runs,
 * 1.3-1.4 times the CPU per token of one process, against 1.1-1.2 shared out.
 */
export function workerThreadPool(instancePool: string | undefined, workers: number): number {
  const threads = Number.parseInt(instancePool ?? '', 10)
  const total = Number.isSafeInteger(threads) && threads > 0 ? threads : Number(THREAD_POOL_SIZE)
  return Math.max(1, Math.floor(total / workers))
}

export interface Workers {
  /** Resolves once every worker listens; rejects when one fails to start (its reason as the message). */
  listening: Promise<void>
  /** Has every worker finish its requests in flight and exit; rejects if one did not exit cleanly. */
  stop(): Promise<void>
}

/** Starts `count` workers (in the primary). */
export function startWorkers(options: { count: number; env: Record<string, string>; logger: Logger }): Workers {
  const { count, env, logger } = options
  // undefined drops a variable from the worker's environment: SIGNET_* reach it over IPC only.
  const workerEnv: Record<string, string | undefined> = { UV_THREADPOOL_SIZE: String(workerThreadPool(process.env.UV_THREADPOOL_SIZE, count)) }
  for (const name of Object.keys(process.env)) if (name.startsWith('SIGNET_')) workerEnv[name] = undefined

  /** Every worker forked and not exited: the ones a change must reach, starting or serving. */
  const live = new Set<Worker>()
  const serving = new Set<Worker>()
  let scheduler: Worker | null = null
  let started = false
  let stopping = false
  let failedStarts = 0
  const restarts = new Set<NodeJS.Timeout>()
  const collecting = new Map<number, { worker: Worker; done: (part: MetricsPart | null) => void }>()
  let nextCollect = 0
  const reloading = new Map<number, { waiting: Set<Worker>; done: () => void }>()
  let nextReload = 0
  let listeningUrls: { url: string; publicUrl: string | null } | null = null

  let markListening!: () => void
  let failStart!: (error: Error) => void
  const listening = new Promise<void>((resolve, reject) => {
    markListening = resolve
    failStart = reject
  })

  /** The key schedule goes to one serving worker; when it dies, to another. */
  function giveScheduleTo(worker: Worker): void {
    scheduler = worker
    send(worker, { type: 'signet:schedule' })
  }

  /**
   * Sends over the worker's IPC channel. A worker can be exiting while the channel
   * still looks connected (one that failed to listen): the write then fails with
   * EPIPE, which without a callback is an 'error' event that would end the primary.
   * The worker's exit is handled where it exits; `failed` does what the message could not.
   */
  function send(worker: Worker, message: ToWorker, failed: () => void = () => {}): void {
    if (!worker.isConnected()) return failed()
    worker.send(message, undefined, undefined, (error: Error | null) => {
      if (error) failed()
    })
  }

  function collect(worker: Worker): Promise<MetricsPart | null> {
    const id = nextCollect++
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(null), METRICS_TIMEOUT_MS)
      const finish = (part: MetricsPart | null) => {
        clearTimeout(timer)
        collecting.delete(id)
        if (part === null) logger.warn({ worker: worker.process.pid }, 'a worker did not give its metrics: /metrics answers without them')
        resolve(part)
      }
      collecting.set(id, { worker, done: finish })
      send(worker, { type: 'signet:collect-metrics', id }, () => finish(null))
    })
  }

  /**
   * A change committed by `origin`: every other live worker reloads its keystore.
   * Resolves once all have answered, a worker that exits meanwhile counting as
   * answered, and after PEER_RELOAD_TIMEOUT_MS in any case: a request is never held longer.
   */
  function reloadPeers(origin: Worker): Promise<void> {
    const id = nextReload++
    const waiting = new Set([...live].filter((worker) => worker !== origin && worker.isConnected()))
    if (waiting.size === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        logger.warn({ workers: [...waiting].map((worker) => worker.process.pid), timeoutMs: PEER_RELOAD_TIMEOUT_MS },
          'workers did not confirm a change in time: they serve it by their next poll')
        finish()
      }, PEER_RELOAD_TIMEOUT_MS)
      const finish = () => {
        clearTimeout(timer)
        reloading.delete(id)
        resolve()
      }
      reloading.set(id, { waiting, done: finish })
      // A worker that cannot be told (its channel is closing) is exiting: it counts as answered.
      for (const worker of waiting) send(worker, { type: 'signet:reload', id }, () => reloaded(worker, id))
    })
  }

  /** `worker` reloaded for change `id`, or exited (id undefined: every change it was awaited for). */
  function reloaded(worker: Worker, id?: number): void {
    for (const [pending, entry] of reloading) {
      if (id !== undefined && pending !== id) continue
      if (entry.waiting.delete(worker) && entry.waiting.size === 0) entry.done()
    }
  }

  /** Counters and histograms summed over the workers; gauges as each metric's `aggregator` says (metrics/registry.ts). */
  async function instanceMetrics(): Promise<string> {
    const parts = await Promise.all([...serving].map(collect))
    return AggregatorRegistry.aggregate(parts.filter((part) => part !== null)).metrics()
  }

  function fork(): void {
    const worker = cluster.fork(workerEnv)
    live.add(worker)
    let failure: string | null = null
    let listened = false
    worker.on('message', (message: unknown) => {
      if (!isMessage(message)) return
      const received = message as ToPrimary
      switch (received.type) {
        case 'signet:hello':
          send(worker, stopping ? { type: 'signet:stop' } : { type: 'signet:config', env })
          break
        case 'signet:listening':
          listened = true
          failedStarts = 0
          serving.add(worker)
          listeningUrls ??= { url: received.url, publicUrl: received.publicUrl }
          if (stopping) send(worker, { type: 'signet:stop' })
          else if (scheduler === null) giveScheduleTo(worker)
          if (!started && serving.size === count) {
            started = true
            logger.info({ workers: count, ...listeningUrls }, 'workers listening')
            markListening()
          }
          break
        case 'signet:start-failed':
          failure = received.message
          break
        case 'signet:instance-metrics':
          instanceMetrics().then(
            (text) => send(worker, { type: 'signet:instance-metrics', id: received.id, text }),
            (error: Error) => send(worker, { type: 'signet:instance-metrics', id: received.id, error: error.message }),
          )
          break
        case 'signet:metrics-part':
          collecting.get(received.id)?.done(received.metrics)
          break
        case 'signet:committed':
          void reloadPeers(worker).then(() => send(worker, { type: 'signet:peers-reloaded', id: received.id }))
          break
        case 'signet:reloaded':
          reloaded(worker, received.id)
          break
      }
    })
    worker.once('exit', (code, signal) => {
      live.delete(worker)
      serving.delete(worker)
      reloaded(worker)
      for (const pending of collecting.values()) if (pending.worker === worker) pending.done(null)
      if (scheduler === worker) scheduler = null
      if (stopping) return
      if (!started) {
        // A start that fails in one worker fails in all (a port in use, a file it cannot read).
        failStart(new Error(failure ?? `a worker exited before it listened (${signal ?? `exit code ${code}`})`))
        return
      }
      const next = [...serving][0]
      if (scheduler === null && next) giveScheduleTo(next)
      const delay = listened ? 0 : Math.min(RESTART_DELAY_MS * 2 ** failedStarts++, RESTART_DELAY_MAX_MS)
      logger.error({ worker: worker.process.pid, code, signal, ...(failure ? { reason: failure } : {}), restartInMs: delay }, 'a worker exited: starting a replacement')
      const timer = setTimeout(() => {
        restarts.delete(timer)
        if (!stopping) fork()
      }, delay)
      restarts.add(timer)
    })
  }

  logger.info({ workers: count }, 'starting workers')
  for (let i = 0; i < count; i++) fork()

  return {
    listening,
    stop: async () => {
      stopping = true
      for (const timer of restarts) clearTimeout(timer)
      const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined)
      const exits = workers.map((worker) => new Promise<boolean>((resolve) => {
        if (worker.process.exitCode !== null || worker.process.signalCode !== null) return resolve(worker.process.exitCode === 0)
        worker.once('exit', (code) => resolve(code === 0))
        // A worker still starting (no config yet, or not listening), or one whose channel is gone, just exits.
        send(worker, { type: 'signet:stop' }, () => worker.process.kill('SIGTERM'))
      }))
      const clean = await Promise.all(exits)
      if (clean.includes(false)) throw new Error('a worker did not stop cleanly')
    },
  }
}

/** The other workers of the instance, as seen by this worker's Signet (server.ts wires it in). */
export interface WorkerPeers {
  /** This worker's Signet, as soon as it is open: a change committed by another worker reloads its keystore. */
  opened(signet: Signet): void
  /**
   * After a change committed here (Signet's onCommit): resolves once every other
   * worker has reloaded its keystore, so the answer to the change is sent only when
   * the whole instance serves it; or when the primary stopped waiting. Never rejects.
   */
  committed(): Promise<void>
}

/** A worker's side of the conversation: what server.ts needs from the primary. */
export interface PrimaryLink extends WorkerPeers {
  /** The SIGNET_* variables to load the configuration from. */
  env: Record<string, string>
  /** Metrics whose /metrics answer is the whole instance's, and which give this worker's part to the primary. */
  instanceMetrics(): SignetMetrics
  /** The worker listens: the primary may give it the key schedule and, at shutdown, stop it. */
  serving(server: { url: string; publicUrl: string | null; signet: Signet; stop(): void }): void
  /** The worker could not start: the primary reports why, and this process exits. */
  failed(error: unknown): Promise<never>
}

function sendToPrimary(message: ToPrimary): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve()
    process.send(message, undefined, {}, () => resolve())
  })
}

/** In a worker: asks the primary for the configuration. */
export async function joinPrimary(): Promise<PrimaryLink> {
  let server: { signet: Signet; stop(): void } | null = null
  let registry: SignetMetrics['registry'] | null = null
  let nextRequest = 0
  const answers = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void }>()
  let signet: Signet | null = null
  let configured = false
  /** Reloads asked for while this worker was opening: its first snapshot may predate them. */
  let reloadsWhileOpening: number[] = []
  const commits = new Map<number, () => void>()
  let nextCommit = 0

  /** Reloads the keystore, then tells the primary that changes `ids` are served here. */
  function reload(opened: Signet, ids: number[]): void {
    void opened.keystore.refresh()
      // The keystore marks storage unavailable and its next poll reloads; the answer must not wait for that.
      .catch((error: unknown) => opened.logger.error({ err: error }, 'reloading keys after another worker\'s change failed'))
      .then(() => Promise.all(ids.map((id) => sendToPrimary({ type: 'signet:reloaded', id }))))
  }

  const env = await new Promise<Record<string, string>>((resolve) => {
    process.on('message', (message: unknown) => {
      if (!isMessage(message)) return
      const received = message as ToWorker
      switch (received.type) {
        case 'signet:config':
          configured = true
          resolve(received.env)
          break
        case 'signet:schedule':
          server?.signet.takeSchedule()
          break
        case 'signet:stop':
          // Not yet serving: nothing is in flight, and storage is crash-safe at any instant.
          if (server) server.stop()
          else process.exit(0)
          break
        case 'signet:collect-metrics':
          void (registry?.getMetricsAsJSON() ?? Promise.resolve([])).then((metrics) =>
            sendToPrimary({ type: 'signet:metrics-part', id: received.id, metrics: metrics as MetricsPart }))
          break
        case 'signet:instance-metrics': {
          const answer = answers.get(received.id)
          answers.delete(received.id)
          if (received.text !== undefined) answer?.resolve(received.text)
          else answer?.reject(new Error(`the instance's metrics could not be gathered: ${received.error ?? 'no answer'}`))
          break
        }
        case 'signet:reload':
          // Not configured yet: this worker opens storage later, and reads the change then.
          if (signet) reload(signet, [received.id])
          else if (configured) reloadsWhileOpening.push(received.id)
          else void sendToPrimary({ type: 'signet:reloaded', id: received.id })
          break
        case 'signet:peers-reloaded':
          commits.get(received.id)?.()
          break
      }
    })
    void sendToPrimary({ type: 'signet:hello' })
  })

  return {
    env,
    opened: (open) => {
      signet = open
      if (reloadsWhileOpening.length > 0) reload(open, reloadsWhileOpening)
      reloadsWhileOpening = []
    },
    committed: () => new Promise<void>((resolve) => {
      if (!process.connected) return resolve()
      const id = nextCommit++
      const finish = () => {
        clearTimeout(timer)
        commits.delete(id)
        resolve()
      }
      // The primary answers within PEER_RELOAD_TIMEOUT_MS; this bounds the wait if it is gone.
      const timer = setTimeout(finish, PEER_RELOAD_TIMEOUT_MS + WORKER_STOP_MARGIN_MS)
      commits.set(id, finish)
      void sendToPrimary({ type: 'signet:committed', id })
    }),
    instanceMetrics: () => {
      const metrics = new SignetMetrics({
        exposition: () => new Promise<string>((resolve, reject) => {
          const id = nextRequest++
          const timer = setTimeout(() => {
            answers.delete(id)
            reject(new Error('the primary did not answer with the instance metrics'))
          }, METRICS_TIMEOUT_MS * 2)
          answers.set(id, {
            resolve: (text) => (clearTimeout(timer), resolve(text)),
            reject: (error) => (clearTimeout(timer), reject(error)),
          })
          void sendToPrimary({ type: 'signet:instance-metrics', id })
        }),
      })
      registry = metrics.registry
      return metrics
    },
    serving: (running) => {
      server = running
      void sendToPrimary({ type: 'signet:listening', url: running.url, publicUrl: running.publicUrl })
    },
    failed: async (error) => {
      await sendToPrimary({ type: 'signet:start-failed', message: error instanceof Error ? error.message : String(error) })
      process.exit(1)
    },
  }
}
