import { InvalidArgumentError } from 'commander'

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

/** Seconds, or the word `default` (the keyset's computed default; the caller maps it to null). */
export function secondsOrDefault(value: string): number | 'default' {
  return value === 'default' ? 'default' : wholeNumber(0)(value)
}
