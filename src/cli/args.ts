import { InvalidArgumentError } from 'commander'
import type { Static, TSchema } from 'typebox'
import { ALGORITHMS, type Alg } from '../crypto/algorithms.js'
import { InvalidRequest, SignetError } from '../errors.js'

/**
 * Parsers for option values. Each throws commander's InvalidArgumentError, so a bad
 * value ends the command with one line naming the option and the rule it broke.
 */

/** A wrong use of a command that commander's own checks cannot see. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** A whole number of seconds (or a count) from `min` up. */
export function wholeNumber(min = 0): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`must be a whole number from ${min}`)
    const number = Number(value)
    if (!Number.isSafeInteger(number) || number < min) throw new InvalidArgumentError(`must be a whole number from ${min}`)
    return number
  }
}

/** A comma-separated list, e.g. `--scopes sign,verify`; empty items are refused. */
export function list(value: string): string[] {
  const items = value.split(',').map((item) => item.trim())
  if (items.some((item) => item.length === 0)) throw new InvalidArgumentError('must be a comma-separated list without empty items')
  return items
}

/** A repeatable option, e.g. `--subject a --subject b`: every value, in order. */
export function repeatable(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value]
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 }

/** A duration in seconds: plain seconds, or a whole number with s, m, h or d (`90s`, `15m`, `12h`, `30d`). */
export function duration(min = 0): (value: string) => number {
  const rule = `must be a duration from ${min}s: seconds, or a whole number with s, m, h or d (90s, 15m, 12h, 30d)`
  return (value) => {
    const match = /^(\d+)([smhd]?)$/.exec(value.trim())
    if (!match) throw new InvalidArgumentError(rule)
    const seconds = Number(match[1]) * (UNIT_SECONDS[match[2] || 's'] ?? 1)
    if (!Number.isSafeInteger(seconds) || seconds < min) throw new InvalidArgumentError(rule)
    return seconds
  }
}

/** A duration, or the word `default` (the keyset's computed default; the caller maps it to null). */
export function durationOrDefault(value: string): number | 'default' {
  return value === 'default' ? 'default' : duration(0)(value)
}

/** An algorithm name in any case (`es256` is ES256). */
export function algorithm(value: string): Alg {
  const found = ALGORITHMS.find((alg) => alg.toLowerCase() === value.toLowerCase())
  if (!found) throw new InvalidArgumentError(`must be one of ${ALGORITHMS.join(', ')}`)
  return found
}

/**
 * Runs a command's work and words a refused input in the command's flags, not the
 * API's field names: `defaultTtl must not exceed maxTtl` becomes
 * `--default-ttl must not exceed --max-ttl`.
 */
export async function inFlagTerms<T>(flags: Record<string, string>, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (error) {
    if (!(error instanceof SignetError) || error.code !== 'invalid_request') throw error
    const fields = Object.keys(flags).sort((a, b) => b.length - a.length).join('|')
    throw new InvalidRequest(error.message.replace(new RegExp(`\\b(${fields})\\b`, 'g'), (field) => flags[field]!))
  }
}

/**
 * The changes an update command was given, as the API's patch: none at all is
 * refused (`signet clients update: nothing to change`); the others are checked
 * against the patch schema as the API checks them, in the command's flag terms.
 */
export async function checkedPatch<T extends TSchema>(command: string, flags: Record<string, string>, schema: T, given: Record<string, unknown>): Promise<Static<T>> {
  if (Object.keys(given).length === 0) throw new UsageError(`signet ${command}: nothing to change (give at least one option, see --help)`)
  const { checkBody } = await import('../schemas/validate.js')
  return inFlagTerms(flags, async () => checkBody(schema, given))
}
