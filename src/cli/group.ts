import type { Command } from 'commander'
import { UsageError } from './args.js'

/**
 * A command that only groups others (`signet keys`): run bare or with an unknown
 * name, it fails with one line listing what it has.
 */
export function commandGroup(parent: Command, name: string, description: string): Command {
  // Whatever follows an unknown command is not checked: the unknown command is the error.
  const group = parent.command(name).description(description).usage('<command> [options]').argument('[command...]').allowUnknownOption()
  group.action(function (this: Command, words: string[]) {
    const given = words[0]
    const names = this.commands.map((command) => command.name())
    const guess = given === undefined ? undefined : closest(given, names)
    throw new UsageError(given
      ? `${name}: unknown command '${given}'${guess ? ` (did you mean ${guess}?)` : ''} (expected one of: ${names.join(', ')})`
      : `${name} needs a command: ${names.join(', ')} (see signet ${name} --help)`)
  })
  return group
}

/** Edit distance (insert, delete, replace, swap of neighbours) between two short words. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1)
    }
  }
  return d[a.length]![b.length]!
}

/** The command name a typo most likely meant, as commander suggests top-level commands; none if nothing is close. */
function closest(given: string, names: string[]): string | undefined {
  const scored = names.map((name) => ({ name, score: distance(given.toLowerCase(), name) })).sort((a, b) => a.score - b.score)
  const best = scored[0]
  return best && best.score <= Math.max(1, Math.floor(best.name.length / 3)) ? best.name : undefined
}
