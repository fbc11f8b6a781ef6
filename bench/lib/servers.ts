import { spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

/** The repository's root: servers run from here. */
export const ROOT = join(import.meta.dirname, '..', '..')

/** The V8 memory flags `signet serve` runs with (bin/memory-flags.cjs). */
export const MEMORY_FLAGS: readonly string[] = createRequire(import.meta.url)('../../bin/memory-flags.cjs')

/**
 * What the reference servers (ceiling, bare signers) run with, so that they differ
 * from Signet only in what they do: Signet's thread pool (one thread per core,
 * bin/signet.cjs) in their environment and its memory flags on their command line.
 */
export const REFERENCE_ENV: NodeJS.ProcessEnv = { PATH: process.env.PATH, UV_THREADPOOL_SIZE: String(Math.max(2, availableParallelism())) }
export const referenceArgs = (...args: string[]): string[] => [...MEMORY_FLAGS, ...args]

/** The line bench/ceiling.ts prints once it listens. */
export const CEILING_LISTENING = /ceiling listening (\S+)/

const children: ChildProcess[] = []

/** Kills every server spawned here (also when the bench process exits). */
export function killServers(): void {
  for (const child of children) child.kill('SIGKILL')
}
process.on('exit', killServers)

/**
 * Spawns a server (`command` with `args`, node by default) and resolves its URL from
 * the first line of `stream` that `pattern` matches.
 */
export async function spawnServer(args: string[], env: NodeJS.ProcessEnv, pattern: RegExp, stream: 'stdout' | 'stderr', command = process.execPath): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  const lines = createInterface({ input: child[stream]! })
  const other = stream === 'stdout' ? child.stderr! : child.stdout!
  other.resume()
  const url = await new Promise<string>((resolve, reject) => {
    child.once('error', (error) => reject(new Error(`${command}: ${error.message}`)))
    child.once('exit', (code) => reject(new Error(`${command} ${args.join(' ')} exited with ${code}`)))
    lines.on('line', (line) => {
      const match = pattern.exec(line)
      if (match) resolve(match[1]!)
    })
  })
  // Keep draining the logs so the server never blocks on a full pipe.
  lines.removeAllListeners('line')
  lines.on('line', () => {})
  return { child, url }
}

/** fetch that throws unless the answer is 2xx, and parses its JSON. */
export async function json(url: string, init: RequestInit = {}): Promise<any> {
  const response = await fetch(url, init)
  if (!response.ok) throw new Error(`${init.method ?? 'GET'} ${url}: ${response.status} ${await response.text()}`)
  return response.json()
}

/** How `signet serve` is started: `node bin/signet.cjs serve`, or under a wrapper such as valgrind. */
export interface Launcher {
  command: string
  /** What goes before `bin/signet.cjs serve`. */
  args: string[]
}

/** Starts `signet serve` (bin/signet.cjs, as users run it) on a free port with `env`. */
export function spawnSignet(env: NodeJS.ProcessEnv, launcher: Launcher = { command: process.execPath, args: [] }): Promise<{ child: ChildProcess; url: string }> {
  return spawnServer([...launcher.args, 'bin/signet.cjs', 'serve'], { PATH: process.env.PATH, SIGNET_PORT: '0', ...env }, /"url":"([^"]+)"/, 'stdout', launcher.command)
}

/** Starts a server, creates `keysets` and a signing client through its admin API. */
export async function startSignet(env: NodeJS.ProcessEnv, adminToken: string, keysets: Record<string, unknown>[], launcher?: Launcher): Promise<{ child: ChildProcess; url: string; token: string }> {
  const server = await spawnSignet({ SIGNET_ADMIN_TOKEN: adminToken, ...env }, launcher)
  const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }
  for (const keyset of keysets) await json(`${server.url}/v1/admin/keysets`, { method: 'POST', headers: admin, body: JSON.stringify(keyset) })
  const { token } = await json(`${server.url}/v1/admin/clients`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'bench', keysets: '*', scopes: ['sign'] }) })
  return { ...server, token }
}

/** The claims every sign request of the benches carries, and its body for `keyset`. */
export const BENCH_CLAIMS = { sub: 'user-42', aud: 'api', scope: 'read write' }
export const signBody = (keyset: string): string => JSON.stringify({ keyset, claims: BENCH_CLAIMS, ttl: 600 })

/** A token's signing input: its first two parts (RFC 7515 section 5.1). */
export const signingInputOf = (token: string): string => token.split('.').slice(0, 2).join('.')
