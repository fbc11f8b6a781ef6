import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

/** The repository's root: servers run from here. */
export const ROOT = join(import.meta.dirname, '..', '..')

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
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)))
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
