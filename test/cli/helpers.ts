import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { tempDir } from '../helpers/temp.js'

/**
 * Helpers for tests that run the built `signet` binary as a child process, the
 * way operators and scripts do. `npm test` builds first (pretest); running a file
 * alone needs `npx tsc -p .` before.
 */

export const REPO = resolve(import.meta.dirname, '../..')
export const CLI = join(REPO, 'dist/cli/index.js')

export function requireBuild(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (npm run build, or npx tsc -p .)`)
}

export { newMasterKey } from '../helpers/temp.js'

/** The child's environment: the caller's PATH and HOME, no SIGNET_* from the test runner, then `env`. */
export function childEnv(env: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('SIGNET_') && !name.startsWith('VITEST') && name !== 'NODE_OPTIONS') base[name] = value
  const merged: NodeJS.ProcessEnv = { ...base, ...env }
  for (const name of Object.keys(merged)) if (merged[name] === undefined) delete merged[name]
  return merged
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `signet ...args` to completion. */
export function runCli(args: string[], options: { env?: Record<string, string | undefined>; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: childEnv(options.env), cwd: options.cwd ?? REPO, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('error', fail)
    child.on('close', (code) => done({ code, stdout, stderr }))
  })
}

/** Runs a command that must succeed with --json, and returns its parsed stdout. */
export async function cliJson<T = any>(args: string[], env: Record<string, string | undefined>, cwd?: string): Promise<T> {
  const result = await runCli([...args, '--json'], { env, ...(cwd ? { cwd } : {}) })
  if (result.code !== 0) throw new Error(`signet ${args.join(' ')} exited ${result.code}: ${result.stderr}`)
  return JSON.parse(result.stdout) as T
}

/** A child process whose stdout lines are kept (JSON log lines parsed) as they arrive. */
export interface RunningChild {
  child: ChildProcess
  lines: string[]
  logs: Record<string, any>[]
  stderr: () => string
  /** Resolves with the first stdout line for which `match` returns a value. */
  waitFor<T>(match: (line: string) => T | undefined, timeoutMs?: number): Promise<T>
  /** Resolves with the exit code (null when killed by a signal) and the signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Sends `signal` if still running, and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export function spawnCli(args: string[], options: { env?: Record<string, string | undefined>; cwd?: string; command?: string[] } = {}): RunningChild {
  const command = options.command ?? [process.execPath, CLI, ...args]
  const child = spawn(command[0]!, command.slice(1), { env: childEnv(options.env), cwd: options.cwd ?? REPO, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  const logs: Record<string, any>[] = []
  let stderr = ''
  const waiters = new Set<() => void>()
  child.stderr!.on('data', (chunk) => (stderr += chunk))
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line)
    if (line.startsWith('{')) {
      try {
        logs.push(JSON.parse(line))
      } catch {
        // not a log line
      }
    }
    for (const wake of waiters) wake()
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.on('exit', (code, signal) => done({ code, signal })))
  let finished = false
  void exited.then(() => {
    finished = true
    for (const wake of waiters) wake()
  })

  function waitFor<T>(match: (line: string) => T | undefined, timeoutMs = 20_000): Promise<T> {
    return new Promise((done, fail) => {
      let seen = 0
      const check = () => {
        for (; seen < lines.length; seen++) {
          const found = match(lines[seen]!)
          if (found !== undefined) {
            cleanup()
            done(found)
            return
          }
        }
        if (finished) {
          cleanup()
          fail(new Error(`the process exited before the expected output; stderr: ${stderr.slice(-2000)}`))
        }
      }
      const timer = setTimeout(() => {
        cleanup()
        fail(new Error(`no expected output within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`))
      }, timeoutMs)
      const cleanup = () => {
        clearTimeout(timer)
        waiters.delete(check)
      }
      waiters.add(check)
      check()
    })
  }

  return {
    child,
    lines,
    logs,
    stderr: () => stderr,
    waitFor,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!finished && child.pid !== undefined) child.kill(signal)
      return exited
    },
  }
}

/** `signet serve` in a child process; resolves once it listens, with its URL. */
export async function startServe(env: Record<string, string | undefined>): Promise<RunningChild & { url: string }> {
  const running = spawnCli(['serve'], { env: { SIGNET_PORT: '0', SIGNET_LOG_LEVEL: 'info', ...env } })
  try {
    const url = await running.waitFor((line) => {
      if (!line.includes('signet listening')) return undefined
      return (JSON.parse(line) as { url: string }).url
    })
    await waitReady(url)
    return Object.assign(running, { url })
  } catch (error) {
    await running.stop('SIGKILL')
    throw error
  }
}

/** Polls `probe` until it returns a value (not undefined); returns it and how long it took. */
export async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000, everyMs = 50): Promise<{ value: T; elapsedMs: number }> {
  const started = Date.now()
  for (;;) {
    const value = await probe()
    if (value !== undefined) return { value, elapsedMs: Date.now() - started }
    if (Date.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((resolveLater) => setTimeout(resolveLater, everyMs))
  }
}

/**
 * One HTTP call with a JSON answer. A 503 `overloaded` (load shedding: refused
 * before any work, with Retry-After) is retried a few times, as a client should;
 * on a busy test machine a fresh server can shed its first requests.
 */
export async function getJson(url: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(url, init)
    const text = await response.text()
    const body = text ? JSON.parse(text) : null
    if (response.status === 503 && body?.code === 'overloaded' && attempt < 10) {
      await new Promise((later) => setTimeout(later, 200))
      continue
    }
    return { status: response.status, body }
  }
}

/** Waits until `url`/readyz answers 200. */
export async function waitReady(url: string, timeoutMs = 15_000): Promise<void> {
  await until(async () => ((await getJson(`${url}/readyz`).catch(() => ({ status: 0 }))).status === 200 ? true : undefined), timeoutMs, 100)
}

export async function postJson(url: string, token: string, body: unknown): Promise<{ status: number; body: any }> {
  return getJson(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

/**
 * stderr without Node's own process warnings ("(node:123) [CODE] ..." and its
 * "--trace-warnings" hint), which a dependency may emit; what is left is Signet's.
 */
export function signetStderr(stderr: string): string[] {
  return stderr.trimEnd().split('\n').filter((line) => line !== '' && !/^\(node:\d+\) /.test(line) && !line.startsWith('(Use `node --trace-warnings'))
}

/**
 * A temporary directory for a whole test file. afterAll removes it as usual; the
 * exit hook covers runs where afterAll never runs (every test filtered out by -t).
 */
export function fileTempDir(prefix: string): { path: string; remove: () => void } {
  const dir = tempDir(prefix)
  process.once('exit', dir.remove)
  return dir
}
