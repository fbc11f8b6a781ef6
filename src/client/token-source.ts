import { readFile, stat } from 'node:fs/promises'
import { SignetClientError } from './errors.js'

/**
 * Where SignetClient gets its bearer token for each call: a fixed string, a
 * function the application gives (sync or async, e.g. reading a secret manager), or
 * a file that a platform rotates, such as a Kubernetes projected service-account
 * token. Whatever the source, the token never appears in an error message or a
 * log line.
 */
export type TokenProvider = () => string | Promise<string>

/** Gives the token to send now; throws SignetClientError `token_unavailable` when there is none. */
export type TokenSource = (requestId: string) => Promise<string>

/** A token file is checked for a change at most this often (its mtime, inode and size). */
export const TOKEN_FILE_CHECK_MS = 1000

/** A bearer token: non-empty, printable ASCII, no white space (RFC 6750 section 2.1). */
export function isUsableToken(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 16 * 1024 && /^[\x21-\x7e]+$/.test(value)
}

function unavailable(requestId: string, detail: string, cause?: unknown): SignetClientError {
  return new SignetClientError({ code: 'token_unavailable', status: null, detail, requestId, attempts: 0 }, cause === undefined ? undefined : { cause })
}

export function fixedToken(token: string): TokenSource {
  return async () => token
}

export function providedToken(provider: TokenProvider): TokenSource {
  return async (requestId) => {
    let value: unknown
    try {
      value = await provider()
    } catch (error) {
      throw unavailable(requestId, 'the token function failed', error)
    }
    if (!isUsableToken(value)) throw unavailable(requestId, 'the token function returned no usable token (a non-empty string without spaces)')
    return value
  }
}

/**
 * A token read from `path`, read again when the file changes. The file is looked
 * at (one stat) at most once per TOKEN_FILE_CHECK_MS. Kubernetes swaps a projected
 * token by a symlink, so a change shows as a new inode as well as a new mtime. A
 * file that is briefly unreadable or empty while its writer replaces it does not
 * fail calls that have a token already: the last one read is kept and the file
 * looked at again on the next check.
 */
export function fileToken(path: string, now: () => number = Date.now): TokenSource {
  let current: string | null = null
  let version = ''
  let checkedAt = -Infinity
  let pending: Promise<string | null> | null = null

  /** Looks at the file; answers why there is no token, or null when `current` holds one. */
  const check = async (): Promise<string | null> => {
    let seen: string
    let text: string
    try {
      const info = await stat(path)
      seen = `${info.mtimeMs}:${info.ino}:${info.size}`
      if (seen === version && current !== null) return null
      text = await readFile(path, 'utf8')
    } catch (error) {
      return current !== null ? null : `cannot read the tokenFile ${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`
    }
    const token: string = text.trim()
    if (!isUsableToken(token)) {
      if (current !== null) return null
      return text.trim() === '' ? `the tokenFile ${path} is empty` : `the tokenFile ${path} holds no usable token (one line without spaces)`
    }
    current = token
    version = seen
    return null
  }

  return async (requestId) => {
    if (current === null || now() - checkedAt >= TOKEN_FILE_CHECK_MS) {
      // Concurrent calls share one look at the file.
      pending ??= check().finally(() => {
        checkedAt = now()
        pending = null
      })
      const problem = await pending
      if (problem !== null) throw unavailable(requestId, problem)
    }
    return current!
  }
}
