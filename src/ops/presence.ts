import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { Storage } from '../storage/types.js'

/**
 * Whether a server is running on a database, for commands that must not run beside
 * one (`signet rewrap` would seal it). A SQLite server keeps a heartbeat file next
 * to its database, `<SIGNET_DB>.server`, rewritten every HEARTBEAT_MS: a file that
 * fresh means a live server, on this machine or on another one sharing the volume,
 * and one left by a killed server goes stale on its own. PostgreSQL replicas are
 * seen through the scheduler lease: while one runs, it holds the lease.
 */

export const HEARTBEAT_MS = 5000
/** A heartbeat older than this is a server that stopped without removing its file. */
const STALE_MS = 3 * HEARTBEAT_MS

export function presenceFile(dbPath: string): string {
  return `${dbPath}.server`
}

/** Starts the heartbeat of a SQLite server; the returned function stops it and removes the file. */
export function markPresence(config: Pick<Config, 'dbPath' | 'databaseUrl'>, logger: Logger): () => void {
  if (config.databaseUrl || config.dbPath === ':memory:') return () => {}
  const file = presenceFile(config.dbPath)
  const mark = JSON.stringify({ pid: process.pid, host: hostname() })
  let warned = false
  const beat = () => {
    try {
      writeFileSync(file, `${mark}\n`, { mode: 0o644 })
    } catch (error) {
      if (!warned) logger.warn({ file, code: (error as NodeJS.ErrnoException).code }, 'cannot write the heartbeat file: signet rewrap will not see that this server runs')
      warned = true
    }
  }
  beat()
  const timer = setInterval(beat, HEARTBEAT_MS)
  timer.unref()
  return () => {
    clearInterval(timer)
    try {
      // Another process (a worker) may have written it since: its own beat restores it.
      if (readFileSync(file, 'utf8').trim() === mark) rmSync(file, { force: true })
    } catch {
      // already gone
    }
  }
}

/** A running server on this storage, described for a message; null when none is seen. */
export async function runningServer(storage: Storage, config: Pick<Config, 'dbPath' | 'databaseUrl'>, now = Date.now()): Promise<string | null> {
  if (storage.schedulerLease) {
    // A CLI that gets the lease holds it only until it closes the storage.
    return (await storage.schedulerLease()) ? null : 'a Signet replica holds the scheduler lease of this PostgreSQL database'
  }
  const file = presenceFile(config.dbPath)
  let modified: number
  let mark: { pid?: number; host?: string } = {}
  try {
    modified = statSync(file).mtimeMs
    mark = JSON.parse(readFileSync(file, 'utf8')) as typeof mark
  } catch {
    return null
  }
  if (now - modified > STALE_MS) return null
  return `a Signet server wrote ${file} ${Math.max(0, Math.round((now - modified) / 1000))} s ago${mark.pid ? ` (pid ${mark.pid} on ${mark.host ?? 'an unknown host'})` : ''}`
}
