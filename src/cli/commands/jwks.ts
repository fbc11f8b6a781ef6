import type { Command } from 'commander'
import { printJson, printLines } from '../output.js'

export function registerJwks(program: Command): void {
  program
    .command('jwks')
    .description('print the public JWK Set of a keyset (default: SIGNET_DEFAULT_KEYSET), as the server serves it')
    .argument('[keyset]', 'keyset name')
    .option('--json', 'print it on one line (the default is indented)')
    .action(async (name: string | undefined, options: { json?: boolean }) => {
      const { jwksDocument, publishedKeys } = await import('../../keys/keystore.js')
      const { readConfig, readKeyset } = await import('../context.js')
      const { keyset, keys } = await readKeyset(readConfig(), name)
      const document = JSON.parse(jwksDocument(publishedKeys(keys), keyset.x5c).body.toString('utf8')) as unknown
      if (options.json) printJson(document)
      else printLines(JSON.stringify(document, null, 2))
    })
}
