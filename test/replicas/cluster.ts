import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'

const ROOT = join(import.meta.dirname, '../..')
export const CLI = join(ROOT, 'dist/cli/index.js')

/** `npm test` builds first (pretest); a bare `vitest run` of this directory builds here if dist/ is missing. */
export async function ensureBuilt(): Promise<void> {
  if (existsSync(CLI)) return
  await promisify(execFile)('npx', ['tsc', '-p', '.'], { cwd: ROOT, timeout: 120_000 }).catch(() => {
    // tsc exits non-zero on type errors elsewhere but still emits; the check below decides.
  })
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npx tsc -p . first`)
}

export interface LogLine {
  level: number
  msg: string
  pid: number
  [key: string]: unknown
}

/** One `signet serve` child process. */
export interface ReplicaProcess {
  readonly name: string
  readonly child: ChildProcess
  readonly url: string
  readonly logs: LogLine[]
  readonly stderr: string[]
  /** Whether its last lease log line says it holds the scheduler lease. */
  leaseHeld(): boolean
  alive(): boolean
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>
}

/**
 * Starts `node dist/cli/index.js serve` with exactly the given SIGNET_* variables
 * (nothing else from this process leaks in) on a free port, and resolves once it
 * listens. Its pino JSON log lines are kept for assertions.
 */
export function startReplica(name: string, env: Record<string, string>, timeoutMs = 30_000): Promise<ReplicaProcess> {
  const child = spawn(process.execPath, [CLI, 'serve'], {
    env: { PATH: process.env.PATH ?? '', SIGNET_HOST: '127.0.0.1', SIGNET_PORT: '0', SIGNET_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const logs: LogLine[] = []
  const stderr: string[] = []
  let exited = false
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true
    resolve()
  }))
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`replica ${name} did not start within ${timeoutMs} ms: ${stderr.join('\n')}`))
    }, timeoutMs)
    void exit.then(() => {
      clearTimeout(timer)
      reject(new Error(`replica ${name} exited before listening: ${stderr.join('\n')}`))
    })
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: LogLine
      try {
        line = JSON.parse(text) as LogLine
      } catch {
        return
      }
      logs.push(line)
      if (line.msg === 'signet listening' && typeof line.url === 'string') {
        clearTimeout(timer)
        const url = line.url
        resolve({
          name,
          child,
          url,
          logs,
          stderr,
          leaseHeld: () => {
            const last = logs.filter((l) => l.msg.startsWith('scheduler lease')).at(-1)
            return last?.msg.startsWith('scheduler lease taken') ?? false
          },
          alive: () => !exited,
          stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
            if (exited) return
            child.kill(signal)
            await exit
          },
        })
      }
    })
  })
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
