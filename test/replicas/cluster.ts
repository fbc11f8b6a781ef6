import type { ChildProcess } from 'node:child_process'
import { spawnCli } from '../cli/helpers.js'

export { requireBuild } from '../cli/helpers.js'

export interface LogLine {
  level: number
  msg: string
  pid: number
  [key: string]: unknown
}

/** One `signet serve` child process, a replica of the service. */
export interface ReplicaProcess {
  readonly name: string
  readonly child: ChildProcess
  readonly url: string
  /** Its pino JSON log lines, as they arrive. */
  readonly logs: LogLine[]
  /** Whether its last lease log line says it holds the scheduler lease. */
  leaseHeld(): boolean
  alive(): boolean
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>
}

/**
 * Starts `signet serve` (the built binary, through spawnCli: no SIGNET_* of this
 * process leaks in) with the given SIGNET_* variables on a free port, and resolves
 * once it listens. What it adds to startServe: a name, and the lease it holds.
 */
export async function startReplica(name: string, env: Record<string, string>, timeoutMs = 30_000): Promise<ReplicaProcess> {
  const running = spawnCli(['serve'], { env: { SIGNET_HOST: '127.0.0.1', SIGNET_PORT: '0', SIGNET_LOG_LEVEL: 'info', ...env } })
  let exited = false
  void running.exited.then(() => { exited = true })
  let url: string
  try {
    url = await running.waitFor((line) => (line.includes('"signet listening"') ? (JSON.parse(line) as { url: string }).url : undefined), timeoutMs)
  } catch (error) {
    await running.stop('SIGKILL')
    throw new Error(`replica ${name} did not start: ${(error as Error).message}`)
  }
  const logs = running.logs as LogLine[]
  return {
    name,
    child: running.child,
    url,
    logs,
    leaseHeld: () => {
      const last = logs.filter((l) => l.msg.startsWith('scheduler lease')).at(-1)
      return last?.msg.startsWith('scheduler lease taken') ?? false
    },
    alive: () => !exited,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      await running.stop(signal)
    },
  }
}

/** fetch against a replica, answering status, headers, text and (when JSON) the parsed body. */
export async function call(replica: { url: string }, method: string, path: string, token?: string, body?: unknown) {
  const response = await fetch(`${replica.url}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  })
  const text = await response.text()
  let json: any = null
  try {
    json = JSON.parse(text)
  } catch {
    // not JSON
  }
  return { status: response.status, headers: response.headers, text, json }
}
