import type { Command } from 'commander'
import type { AdminApi } from './admin-api.js'
import { printJson } from './output.js'

/** How an admin command shows its result: `json` with --json, `text` otherwise. */
export interface Shown<R> {
  json: (result: R) => unknown
  text: (result: R) => void
}

/**
 * The action of an admin command that has a --json option: opens the admin API
 * (the database here, or a server with --url / SIGNET_URL), runs `work` with the
 * command's arguments, and prints what it returns. Commander calls an action with
 * the arguments, then the options, then the command.
 */
export function adminAction<A extends unknown[], R>(work: (api: AdminApi, ...args: A) => Promise<R>, shown: Shown<R>): (...received: unknown[]) => Promise<void> {
  return async (...received) => {
    const command = received.at(-1) as Command
    const options = received.at(-2) as { json?: boolean }
    // Loaded on use, as every command's modules are, so `signet --help` stays quick.
    const { adminApi } = await import('./admin-api.js')
    const result = await work(await adminApi(command), ...(received.slice(0, -2) as A))
    if (options.json) printJson(shown.json(result))
    else shown.text(result)
  }
}
