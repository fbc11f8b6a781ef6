import { readFileSync } from 'node:fs'

/** Signet's version, from its package.json; `unknown` if that cannot be read. */
export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}
