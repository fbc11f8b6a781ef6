import type { Command } from 'commander'
import { printJson, printTable, shortTime } from '../output.js'
import { commandGroup } from '../group.js'

type Presented = ReturnType<typeof import('../../routes/present.js').presentKey>

function printKeys(keys: Presented[]): void {
  printTable(keys, [
    { header: 'kid', value: (k) => k.kid },
    { header: 'keyset', value: (k) => k.keyset },
    { header: 'state', value: (k) => k.state },
    { header: 'alg', value: (k) => k.alg },
    { header: 'created', value: (k) => shortTime(k.createdAt) },
    { header: 'activates/activated', value: (k) => shortTime(k.activatedAt ?? k.activatesAt) },
    { header: 'retired', value: (k) => shortTime(k.retiredAt) },
    { header: 'published until', value: (k) => shortTime(k.publishedUntil) },
    { header: 'revoked', value: (k) => (k.revokedAt ? `${shortTime(k.revokedAt)} (${k.revokeReason ?? ''})` : null) },
  ])
}

export function registerKeys(program: Command): void {
  const keys = commandGroup(program, 'keys', 'list, rotate and revoke keys; a running server picks changes up within 2 s')

  keys
    .command('list')
    .description('list the keys of a keyset (default: SIGNET_DEFAULT_KEYSET), every state')
    .argument('[keyset]', 'keyset name')
    .option('--json', 'print the list as JSON')
    .action(async (name: string | undefined, options: { json?: boolean }) => {
      const { KeysetNotFound } = await import('../../errors.js')
      const { presentKey } = await import('../../routes/present.js')
      const { readConfig, withStorage } = await import('../context.js')
      const config = readConfig()
      const keyset = name ?? config.defaultKeyset
      const snapshot = await withStorage(config, (storage) => storage.snapshot())
      if (!snapshot.keysets.some((k) => k.name === keyset)) throw new KeysetNotFound(`no keyset ${keyset}`)
      const list = snapshot.keys.filter((key) => key.keyset === keyset).map(presentKey)
      if (options.json) printJson({ keys: list })
      else printKeys(list)
    })

  keys
    .command('rotate')
    .description('add a key: pending until prepublish has passed, or active at once with --immediate')
    .argument('[keyset]', 'keyset name (default: SIGNET_DEFAULT_KEYSET)')
    .option('--immediate', 'activate the new key now and retire the active one (skips prepublish: verifiers with a cached JWKS may miss the key until they refetch)')
    .option('--json', 'print the new key as JSON')
    .action(async (name: string | undefined, options: { immediate?: boolean; json?: boolean }) => {
      const { presentKey } = await import('../../routes/present.js')
      const { cliActor, readConfig, withSignet } = await import('../context.js')
      const config = readConfig()
      const key = await withSignet(config, 'keys rotate', (signet) =>
        signet.keys.rotate(name ?? config.defaultKeyset, options.immediate ? 'immediate' : 'scheduled', cliActor()))
      if (options.json) printJson(presentKey(key))
      else printKeys([presentKey(key)])
    })

  keys
    .command('revoke')
    .description('revoke a key (compromise): it leaves the JWKS at once; an active key is replaced at once')
    .argument('<kid>', 'the key id')
    .option('--reason <text>', 'why, for the audit log', 'unspecified')
    .option('--json', 'print the revoked key as JSON')
    .action(async (kid: string, options: { reason: string; json?: boolean }) => {
      const { presentKey } = await import('../../routes/present.js')
      const { cliActor, readConfig, withSignet } = await import('../context.js')
      const key = await withSignet(readConfig(), 'keys revoke', (signet) => signet.keys.revoke(kid, options.reason, cliActor()))
      if (options.json) printJson(presentKey(key))
      else printKeys([presentKey(key)])
    })
}
