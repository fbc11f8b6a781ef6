import { spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

/** The repository's root: servers run from here. */
export const ROOT = join(import.meta.dirname, '..', '..')

/** What `signet serve` runs with: V8's memory flags and the thread pool's size (bin/serving-defaults.cjs). */
const SERVING: { MEMORY_FLAGS: string[]; THREAD_POOL_SIZE: string } = createRequire(import.meta.url)('../../bin/serving-defaults.cjs')
export const MEMORY_FLAGS: readonly string[] = SERVING.MEMORY_FLAGS

/**
 * What the reference servers (ceiling, bare signers) run with, so that they differ
 * from Signet only in what they do: Signet's thread pool in their environment and
 * its memory flags on their command line.
 */
const REFERENCE_ENV: NodeJS.ProcessEnv = { PATH: process.env.PATH, UV_THREADPOOL_SIZE: SERVING.THREAD_POOL_SIZE }
const referenceArgs = (...args: string[]): string[] => [...MEMORY_FLAGS, ...args]

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

/** How a node server is started: by node itself, or under a wrapper such as valgrind. */
interface Launcher {
  command: string
  /** What goes before the script's own arguments (for a wrapper: its options, then node). */
  args: string[]
}
const NODE: Launcher = { command: process.execPath, args: [] }

/** Starts `signet serve` (bin/signet.cjs, as users run it) on a free port with `env`. */
export function spawnSignet(env: NodeJS.ProcessEnv, launcher = NODE): Promise<{ child: ChildProcess; url: string }> {
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
export const signRequestBody = (keyset: string): string => JSON.stringify({ keyset, claims: BENCH_CLAIMS, ttl: 600 })

/**
 * Starts the ceiling server (bench/ceiling.ts) answering as many bytes as a token of
 * `tokenLength` and a JWK Set of `jwksBytes`, signing `signingInput`.
 */
export function spawnCeiling(tokenLength: number, jwksBytes: number, signingInput: string, launcher = NODE): Promise<{ child: ChildProcess; url: string }> {
  const args = referenceArgs('--import', 'tsx', 'bench/ceiling.ts', String(tokenLength), String(jwksBytes), signingInput)
  return spawnServer([...launcher.args, ...args], REFERENCE_ENV, /ceiling listening (\S+)/, 'stderr', launcher.command)
}

/** Starts the bare signer (bench/bare-signer.mjs) for `alg` over `signingInput`. */
export function spawnBareSigner(alg: 'RS256' | 'ES256', signingInput: string): Promise<{ child: ChildProcess; url: string }> {
  return spawnServer(referenceArgs('bench/bare-signer.mjs', alg, signingInput), REFERENCE_ENV, /bare signer listening (\S+)/, 'stderr')
}

/** A token's signing input: its first two parts (RFC 7515 section 5.1). */
export const signingInputOf = (token: string): string => token.split('.').slice(0, 2).join('.')
