import type { Command } from 'commander'
import { adminAction } from '../admin-action.js'
import { keysetStatus, printStatus } from '../status.js'

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('per keyset: the active kid and its age, the next rotation, pending keys and when they activate, retired keys and when they leave the JWKS')
    .argument('[keyset]', 'only this keyset (default: every keyset)')
    .option('--json', 'print the status as JSON')
    .action(adminAction(async (api, name?: string) => {
      const keysets = name === undefined ? await api.listKeysets() : [await api.getKeyset(name)]
      const now = Date.now()
      const statuses = []
      for (const keyset of keysets) statuses.push(keysetStatus(keyset, await api.listKeys(keyset.name), now))
      return { now, statuses }
    }, {
      json: ({ now, statuses }) => ({ now: new Date(now).toISOString(), keysets: statuses }),
      text: ({ now, statuses }) => printStatus(statuses, now),
    }))
}
