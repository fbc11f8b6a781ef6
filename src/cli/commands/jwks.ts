import type { Command } from 'commander'
import { adminAction } from '../admin-action.js'
import { printLines } from '../output.js'

export function registerJwks(program: Command): void {
  program
    .command('jwks')
    .description('print the public JWK Set of a keyset (default: SIGNET_DEFAULT_KEYSET), as the server serves it')
    .argument('[keyset]', 'keyset name')
    .option('--json', 'print it on one line (the default is indented)')
    .action(adminAction(async (api, name?: string) => (await api.jwks(name ?? api.defaultKeyset)).document, {
      json: (document) => document,
      text: (document) => printLines(JSON.stringify(document, null, 2)),
    }))
}
