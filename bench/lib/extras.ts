import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'

/**
 * Optional back ends for the bench: a SoftHSM2 token (PKCS#11 keysets) and a
 * PostgreSQL schema (replicas). Each is used when present and skipped, with a
 * line saying so, when not.
 */

const SOFTHSM_MODULES = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so']

/** A fresh SoftHSM2 token in a temporary directory, and the variables that open it; null without SoftHSM2. */
export function softHsmToken(): { env: Record<string, string>; remove: () => void } | null {
  const module = SOFTHSM_MODULES.find((path) => existsSync(path))
  if (!module) return null
  try {
    execFileSync('softhsm2-util', ['--version'], { stdio: 'ignore' })
  } catch {
    return null
  }
  const root = mkdtempSync(join(tmpdir(), 'signet-bench-hsm-'))
  mkdirSync(join(root, 'tokens'))
  const conf = join(root, 'softhsm2.conf')
  writeFileSync(conf, `directories.tokendir = ${join(root, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`)
  const pin = randomBytes(6).toString('hex')
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'bench', '--pin', pin, '--so-pin', randomBytes(6).toString('hex')], { env: { ...process.env, SOFTHSM2_CONF: conf }, stdio: 'ignore' })
  return {
    env: { SOFTHSM2_CONF: conf, SIGNET_PKCS11_MODULE: module, SIGNET_PKCS11_TOKEN_LABEL: 'bench', SIGNET_PKCS11_PIN: pin },
    remove: () => rmSync(root, { recursive: true, force: true }),
  }
}

/** A new PostgreSQL schema and a SIGNET_DATABASE_URL that uses it; null without a database URL. */
export async function postgresSchema(baseUrl: string | undefined): Promise<{ url: string; drop: () => Promise<void> } | null> {
  if (!baseUrl) return null
  const schema = `signet_bench_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: baseUrl })
  try {
    await admin.connect()
    await admin.query(`CREATE SCHEMA ${schema}`)
  } catch {
    await admin.end().catch(() => {})
    return null
  }
  const url = new URL(baseUrl)
  url.searchParams.set('options', `-c search_path=${schema}`)
  return {
    url: url.toString(),
    drop: async () => {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`).catch(() => {})
      await admin.end().catch(() => {})
    },
  }
}
