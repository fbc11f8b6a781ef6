import type { Command } from 'commander'
import { printJson } from '../output.js'

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('per keyset: the active kid and its age, the next rotation, pending keys and when they activate, retired keys and when they leave the JWKS')
    .argument('[keyset]', 'only this keyset (default: every keyset)')
    .option('--json', 'print the status as JSON')
    .action(async (name: string | undefined, options: { json?: boolean }, command: Command) => {
      const { adminApi } = await import('../admin-api.js')
      const { keysetStatus, printStatus } = await import('../status.js')
      const api = await adminApi(command)
      const keysets = name === undefined ? await api.listKeysets() : [await api.getKeyset(name)]
      const now = Date.now()
      const statuses = []
      for (const keyset of keysets) statuses.push(keysetStatus(keyset, await api.listKeys(keyset.name), now))
      if (options.json) printJson({ now: new Date(now).toISOString(), keysets: statuses })
      else printStatus(statuses, now)
    })
}
