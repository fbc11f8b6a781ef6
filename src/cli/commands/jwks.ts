import type { Command } from 'commander'
import { printJson, printLines } from '../output.js'

export function registerJwks(program: Command): void {
  program
    .command('jwks')
    .description('print the public JWK Set of a keyset (default: SIGNET_DEFAULT_KEYSET), as the server serves it')
    .argument('[keyset]', 'keyset name')
    .option('--json', 'print it on one line (the default is indented)')
    .action(async (name: string | undefined, options: { json?: boolean }) => {
      const { KeysetNotFound } = await import('../../errors.js')
      const { jwksDocument, orderForJwks } = await import('../../keys/keystore.js')
      const { PUBLISHED_STATES } = await import('../../keys/model.js')
      const { readConfig, withStorage } = await import('../context.js')
      const config = readConfig()
      const keysetName = name ?? config.defaultKeyset
      const snapshot = await withStorage(config, (storage) => storage.snapshot())
      const keyset = snapshot.keysets.find((k) => k.name === keysetName)
      if (!keyset) throw new KeysetNotFound(`no keyset ${keysetName}`)
      const published = orderForJwks(snapshot.keys.filter((key) => key.keyset === keysetName && PUBLISHED_STATES.includes(key.state)))
      const document = JSON.parse(jwksDocument(published, keyset.x5c).body.toString('utf8')) as unknown
      if (options.json) printJson(document)
      else printLines(JSON.stringify(document, null, 2))
    })
}
