import type { Command } from 'commander'
import { printJson, printLines } from '../output.js'

export function registerJwks(program: Command): void {
  program
    .command('jwks')
    .description('print the public JWK Set of a keyset (default: SIGNET_DEFAULT_KEYSET), as the server serves it')
    .argument('[keyset]', 'keyset name')
    .option('--json', 'print it on one line (the default is indented)')
    .action(async (name: string | undefined, options: { json?: boolean }, command: Command) => {
      const { adminApi } = await import('../admin-api.js')
      const api = await adminApi(command)
      const { document } = await api.jwks(name ?? api.defaultKeyset)
      if (options.json) printJson(document)
      else printLines(JSON.stringify(document, null, 2))
    })
}
