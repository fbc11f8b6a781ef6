import type { Command } from 'commander'
import { UsageError } from './args.js'

/**
 * A command that only groups others (`signet keys`): run bare or with an unknown
 * name, it fails with one line listing what it has.
 */
export function commandGroup(parent: Command, name: string, description: string): Command {
  const group = parent.command(name).description(description).usage('<command> [options]').argument('[command]')
  group.action(function (this: Command, given: string | undefined) {
    const names = this.commands.map((command) => command.name()).join(', ')
    throw new UsageError(given
      ? `${name}: unknown command '${given}' (expected one of: ${names})`
      : `${name} needs a command: ${names} (see signet ${name} --help)`)
  })
  return group
}
