import { closeSync, openSync, writeFileSync } from 'node:fs'
import { UsageError } from './args.js'

/**
 * Claims a new file for a secret the command is about to make (a client token, a
 * master key): created empty with mode 0600 before the secret exists, so a
 * secret is never made that cannot be kept, and an existing file is never
 * overwritten. `flag` names the option in the message.
 */
export function claimSecretFile(path: string, flag: string): void {
  try {
    closeSync(openSync(path, 'wx', 0o600))
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EEXIST') throw new UsageError(`${path} exists: choose another name for ${flag}, or remove the file first (it is never overwritten) (EEXIST)`)
    if (code === 'ENOENT') throw new UsageError(`cannot write ${path} (${flag}): its directory does not exist (ENOENT)`)
    throw new UsageError(`cannot write ${path} (${flag}) (${code ?? 'unwritable'})`)
  }
}

/** Writes the secret into a file claimed by claimSecretFile. */
export function writeSecretFile(path: string, secret: string): void {
  writeFileSync(path, `${secret}\n`, { mode: 0o600 })
}
