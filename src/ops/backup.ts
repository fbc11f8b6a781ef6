import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { ConfigError } from '../errors.js'
import { MASTER_KEY_CHECK } from '../keys/master-key-check.js'
import type { Storage } from '../storage/types.js'

export interface BackupResult {
  /** Absolute path of the copy. */
  file: string
  bytes: number
  /** Keys in the copy (every state). */
  keys: number
  /** The storage generation the copy holds. */
  generation: number
}

/** SQLite's side files of a database file. */
const sideFiles = (file: string) => [`${file}-wal`, `${file}-shm`, `${file}-journal`]

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * Makes the copy self-contained (rollback journal, so no -wal file is needed next
 * to it) and checks it: intact pages, an initialised Signet database.
 */
function checkCopy(file: string): Omit<BackupResult, 'file' | 'bytes'> {
  const db = new Database(file, { fileMustExist: true })
  try {
    db.pragma('journal_mode = DELETE')
    const integrity = db.pragma('integrity_check', { simple: true })
    if (integrity !== 'ok') throw new Error(`the copy failed its integrity check (${String(integrity)})`)
    const meta = db.prepare('SELECT value FROM meta WHERE name = ?').pluck()
    if (meta.get(MASTER_KEY_CHECK) === undefined) throw new Error('the copy holds no initialised Signet database')
    return {
      keys: Number(db.prepare('SELECT count(*) FROM keys').pluck().get()),
      generation: Number(meta.get('generation') ?? 0),
    }
  } finally {
    db.close()
  }
}

/**
 * `signet backup FILE`: a consistent copy of the database, taken while the server
 * runs. Private keys stay envelope-encrypted in it, so the copy is as safe to keep
 * as the database itself, and restores only with the same master key.
 *
 * The copy is written to a temporary file (mode 0600) in the target's directory,
 * checked, flushed to disk, and only then renamed to FILE: a backup that failed
 * or was interrupted never looks like a complete one.
 */
export async function backupDatabase(storage: Storage, file: string, options: { overwrite?: boolean; databasePath?: string } = {}): Promise<BackupResult> {
  if (!storage.backup) {
    throw new ConfigError(`signet backup copies SQLite databases; back up ${storage.kind} storage with its own tools (pg_dump for PostgreSQL)`)
  }
  const target = resolve(file)
  const directory = dirname(target)
  if (!existsSync(directory) || !statSync(directory).isDirectory()) throw new ConfigError(`cannot write ${file}: directory ${directory} does not exist`)
  if (options.databasePath && resolve(options.databasePath) === target) throw new ConfigError(`${file} is the database itself: write the backup elsewhere`)
  if (existsSync(target) && !options.overwrite) throw new ConfigError(`${file} exists: choose another name, or pass --force to replace it`)

  const partial = join(directory, `.${basename(target)}.partial-${process.pid}`)
  const cleanup = () => {
    for (const path of [partial, ...sideFiles(partial)]) rmSync(path, { force: true })
  }
  try {
    closeSync(openSync(partial, 'wx', 0o600)) // the copy holds encrypted keys: owner only
    await storage.backup(partial)
    const counts = checkCopy(partial)
    fsyncPath(partial)
    for (const path of sideFiles(target)) rmSync(path, { force: true }) // stale side files would corrupt the copy
    renameSync(partial, target)
    fsyncPath(directory)
    return { file: target, bytes: statSync(target).size, ...counts }
  } catch (error) {
    cleanup()
    throw error
  }
}
