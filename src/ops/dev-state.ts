import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { generateToken } from '../auth/tokens.js'
import { MasterKey } from '../crypto/master-key.js'
import { ConfigError } from '../errors.js'

/**
 * What `signet dev` keeps between runs, all in one directory (mode 0700): the
 * SQLite database and the dev secrets, each in a file of mode 0600. Re-running dev
 * reuses them, so the database stays readable and printed tokens keep working.
 * This is a convenience for a developer's machine, never a way to run production:
 * the master key sits on disk next to the database it protects.
 */
/** Where `signet dev` keeps its data unless --data-dir says otherwise. */
export const DEV_DATA_DIR = './data/dev'

export interface DevState {
  dataDir: string
  dbPath: string
  masterKey: string
  adminToken: string
  /** The files holding them, for SIGNET_MASTER_KEY_FILE and SIGNET_ADMIN_TOKEN_FILE. */
  masterKeyFile: string
  adminTokenFile: string
  /** Path of the saved dev client token (the token itself is read with readDevClientToken). */
  clientTokenFile: string
}

/** Reads a secret file, or makes it (mode 0600) when missing; tightens a looser mode. */
function keptSecret(path: string, make: () => string, check: (value: string) => void): string {
  if (existsSync(path)) {
    chmodSync(path, 0o600)
    const value = readFileSync(path, 'utf8').trim()
    try {
      check(value)
    } catch (error) {
      throw new ConfigError(`${path} is not a valid dev secret (${(error as Error).message}); delete the dev data directory to start over`)
    }
    return value
  }
  const value = make()
  writeFileSync(path, `${value}\n`, { mode: 0o600, flag: 'wx' })
  return value
}

export function loadDevState(dataDir: string): DevState {
  const dir = resolve(dataDir)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  chmodSync(dir, 0o700)
  const masterKeyFile = join(dir, 'master.key')
  const adminTokenFile = join(dir, 'admin.token')
  const masterKey = keptSecret(masterKeyFile, () => randomBytes(32).toString('base64'), (value) => MasterKey.fromBase64(value))
  const adminToken = keptSecret(adminTokenFile, generateToken, (value) => {
    if (value.length < 32) throw new TypeError('too short')
  })
  return {
    dataDir: dir,
    dbPath: join(dir, 'signet.db'),
    masterKey,
    adminToken,
    masterKeyFile,
    adminTokenFile,
    clientTokenFile: join(dir, 'client.token'),
  }
}

export function readDevClientToken(state: DevState): string | null {
  return existsSync(state.clientTokenFile) ? readFileSync(state.clientTokenFile, 'utf8').trim() || null : null
}

export function saveDevClientToken(state: DevState, token: string): void {
  writeFileSync(state.clientTokenFile, `${token}\n`, { mode: 0o600 })
  chmodSync(state.clientTokenFile, 0o600)
}

/**
 * The environment of the dev server: the caller's, with the dev database and
 * secrets in place of any configured ones (named in `ignored`, so dev can say so).
 */
export function devEnvironment(state: DevState, env: NodeJS.ProcessEnv): { env: NodeJS.ProcessEnv; ignored: string[] } {
  const replaced = ['SIGNET_DB', 'SIGNET_DATABASE_URL', 'SIGNET_MASTER_KEY', 'SIGNET_MASTER_KEY_FILE', 'SIGNET_MASTER_KEY_PKCS11', 'SIGNET_ADMIN_TOKEN', 'SIGNET_ADMIN_TOKEN_FILE']
  const next: NodeJS.ProcessEnv = { ...env }
  const ignored = replaced.filter((name) => next[name] !== undefined)
  for (const name of replaced) delete next[name]
  next.SIGNET_DB = state.dbPath
  next.SIGNET_MASTER_KEY = state.masterKey
  next.SIGNET_ADMIN_TOKEN = state.adminToken
  return { env: next, ignored }
}
