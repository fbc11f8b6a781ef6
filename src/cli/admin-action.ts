import type { Command } from 'commander'
import type { AdminApi } from './admin-api.js'
import { printJson, printTable, type Columns } from './output.js'

/** The option of a command that prints a result: --json prints it as JSON, for scripts. */
export interface JsonOption {
  json?: boolean
}

/**
 * How a command shows its result: `json` with --json, `text` otherwise. A check
 * (signet check, audit verify) also names its `failures`: each is a line on
 * stderr and makes the exit status 1, with --json or without; the text is then
 * not shown.
 */
export interface Shown<R> {
  json: (result: R) => unknown
  text: (result: R) => void | Promise<void>
  failures?: (result: R) => string[]
}

/** Shows a command's result as `shown` says: the one place where --json chooses JSON over text. */
export async function show<R>(options: JsonOption, result: R, shown: Shown<R>): Promise<void> {
  const failures = shown.failures?.(result) ?? []
  if (options.json) printJson(shown.json(result))
  for (const failure of failures) process.stderr.write(`signet: ${failure}\n`)
  if (failures.length > 0) process.exitCode = 1
  else if (!options.json) await shown.text(result)
}

/** A result that is one row: the row as JSON, else a table of that row. */
export function asRow<T>(columns: Columns<T>): Shown<T> {
  return { json: (row) => row, text: (row) => printTable([row], columns) }
}

/** A result that is a list: `{ [name]: list }` as JSON, else a table. */
export function asList<T>(name: string, columns: Columns<T>): Shown<T[]> {
  return { json: (list) => ({ [name]: list }), text: (list) => printTable(list, columns) }
}

/**
 * An action as commander calls it: with the command's arguments, its options,
 * then the command. `run` gets the arguments and options (`args`) and the
 * command; with `shown`, what it returns is shown.
 */
function action<R>(run: (args: unknown[], command: Command) => Promise<R>, shown?: Shown<R>): (...received: unknown[]) => Promise<void> {
  return async (...received) => {
    const result = await run(received.slice(0, -1), received.at(-1) as Command)
    if (shown) await show(received.at(-2) as JsonOption, result, shown)
  }
}

/**
 * The action of an admin command: opens the admin API (the database here, or a
 * server with --url / SIGNET_URL), runs `work` with it and the command's
 * arguments and options, and shows what it returns. `A` is what commander passes:
 * the command's arguments, then its options object (a work function that needs no
 * options may leave that last parameter out).
 */
export function adminAction<A extends unknown[], R>(work: (api: AdminApi, ...args: A) => Promise<R>, shown: Shown<R>): (...received: unknown[]) => Promise<void> {
  return checkedAdminAction((...args: A) => args, (api, args) => work(api, ...args), shown)
}

/**
 * adminAction for a command that checks its input first: `check` gets the
 * arguments and options before the admin API is opened, so a bad input fails
 * before the configuration, the database or the server is read; `work` gets the
 * API and what `check` returned.
 */
export function checkedAdminAction<A extends unknown[], C, R>(check: (...args: A) => C | Promise<C>, work: (api: AdminApi, checked: C) => Promise<R>, shown: Shown<R>): (...received: unknown[]) => Promise<void> {
  return action(async (args, command) => {
    const checked = await check(...(args as A))
    // Loaded on use, as every command's modules are, so `signet --help` stays quick.
    const { adminApi } = await import('./admin-api.js')
    return work(await adminApi(command), checked)
  }, shown)
}

/**
 * The action of a command that works on this machine's database itself, or runs
 * a server on it: with --url it refuses, saying `why`; else it runs `work` with
 * the command's arguments and options and, given `shown`, shows what it returns.
 */
export function localAction<A extends unknown[], R>(why: string, work: (...args: A) => Promise<R>, shown?: Shown<R>): (...received: unknown[]) => Promise<void> {
  return action(async (args, command) => {
    const { refuseUrl } = await import('./admin-api.js')
    refuseUrl(command, why)
    return work(...(args as A))
  }, shown)
}
