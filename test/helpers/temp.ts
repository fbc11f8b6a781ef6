import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Fresh secrets made at test time: never a fixture in the repository. */
export const newMasterKey = (): string => randomBytes(32).toString('base64')
export const newAdminToken = (): string => `admin-${randomBytes(24).toString('base64url')}`

/** A temporary directory removed by the returned function. */
export function tempDir(prefix = 'signet-test-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) }
}
