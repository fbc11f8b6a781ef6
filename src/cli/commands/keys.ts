import type { Command } from 'commander'
import { adminAction, asList, asRow, checkedAdminAction } from '../admin-action.js'
import type { KeyView } from '../admin-api.js'
import { CREATED, inWords, printLines, printTable, shortTime, timeAndDistance, type Columns } from '../output.js'
import { commandGroup } from '../group.js'

const KEY_COLUMNS: Columns<KeyView> = [
  'kid', 'keyset', 'state', 'alg', CREATED,
  { header: 'activates/activated', value: (k) => shortTime(k.activatedAt ?? k.activatesAt) },
  { header: 'retired', value: (k) => shortTime(k.retiredAt) },
  { header: 'published until', value: (k) => shortTime(k.publishedUntil) },
  { header: 'revoked', value: (k) => (k.revokedAt ? `${shortTime(k.revokedAt)} (${k.revokeReason ?? ''})` : null) },
]

export function registerKeys(program: Command): void {
  const keys = commandGroup(program, 'keys', 'list, rotate, revoke and import keys; a running server picks changes up within 2 s')

  keys
    .command('list')
    .description('list the keys of a keyset (default: SIGNET_DEFAULT_KEYSET), every state')
    .argument('[keyset]', 'keyset name')
    .option('--json', 'print the list as JSON')
    .action(adminAction((api, name?: string) => api.listKeys(name ?? api.defaultKeyset), asList('keys', KEY_COLUMNS)))

  keys
    .command('rotate')
    .description('add a key: pending until prepublish has passed, or active at once with --immediate')
    .argument('[keyset]', 'keyset name (default: SIGNET_DEFAULT_KEYSET)')
    .option('--immediate', 'activate the new key now and retire the active one (skips prepublish: verifiers with a cached JWKS may miss the key until they refetch)')
    .option('--json', 'print the new key as JSON')
    .action(adminAction(async (api, name: string | undefined, options: { immediate?: boolean }) => {
      const keyset = name ?? api.defaultKeyset
      const pendingBefore = (await api.listKeys(keyset)).filter((key) => key.state === 'pending')
      const key = await api.rotate(keyset, options.immediate ? 'immediate' : 'scheduled')
      if (pendingBefore.length > 0 && !options.immediate) {
        // Not refused: two pending keys are valid, but rarely what was meant.
        const now = Date.now()
        const earlier = pendingBefore.map((k) => `${k.kid} (activates ${k.activatesAt ? timeAndDistance(k.activatesAt, now) : '-'})`).join(', ')
        process.stderr.write(`signet: warning: keyset ${keyset} already had a pending key: ${earlier}; now ${pendingBefore.length + 1} keys are pending and each will activate in turn (revoke the one you did not mean with signet keys revoke)\n`)
      }
      return key
    }, asRow(KEY_COLUMNS)))

  keys
    .command('revoke')
    .description('revoke a key (compromise): it leaves the JWKS at once; an active key is replaced at once')
    .argument('<kid>', 'the key id')
    // A kid is base64url and may start with "-": take it as the argument, not as an option.
    .allowUnknownOption()
    .option('--reason <text>', 'why, for the audit log', 'unspecified')
    .option('--json', 'print the revoked key, the replacement kid and the JWKS max-age as JSON')
    .action(checkedAdminAction(async (kid: string, options: { reason: string }) => {
      const { revokeBody } = await import('../../schemas/index.js')
      const { checkBody } = await import('../../schemas/validate.js')
      return { kid, reason: checkBody(revokeBody, { reason: options.reason }).reason }
    }, async (api, { kid, reason }) => {
      const key = await api.revoke(kid, reason)
      const replacementKid = (await api.listKeys(key.keyset)).find((k) => k.state === 'active')?.kid ?? null
      return { ...key, replacementKid, jwksMaxAge: (await api.jwks(key.keyset)).maxAge }
    }, {
      json: (revoked) => revoked,
      text: (revoked) => {
        printTable([revoked], KEY_COLUMNS)
        printLines(
          '',
          revoked.replacementKid ? `Keyset ${revoked.keyset} now signs with ${revoked.replacementKid}.` : `Keyset ${revoked.keyset} has no active key now: it cannot sign until one is made (signet keys rotate ${revoked.keyset} --immediate).`,
          `Verifiers may hold the old JWK Set, with ${revoked.kid} in it, for up to ${inWords(revoked.jwksMaxAge)} (its Cache-Control max-age); tell them to refetch it to stop accepting the key sooner.`,
        )
      },
    }))

  keys
    .command('import')
    .description('bring your own key (software keysets): a PEM (PKCS#8, PKCS#1, SEC1, encrypted or not), a PKCS#12 file or a private JWK; pending until prepublish has passed, or active at once with --immediate (docs/hsm.md)')
    .argument('<file>', 'the key file; - reads it from stdin')
    .argument('[keyset]', 'keyset name (default: SIGNET_DEFAULT_KEYSET)')
    .option('--passphrase-file <path>', 'a file holding the passphrase of an encrypted PEM or the password of a PKCS#12 file (never on the command line, where ps shows it)')
    .option('--format <format>', 'pem, pkcs12 or jwk (default: guessed from the file)')
    .option('--immediate', 'activate the key now and retire the active one (skips prepublish)')
    .option('--json', 'print the new key as JSON')
    .action(checkedAdminAction(async (file: string, name: string | undefined, options: { passphraseFile?: string; format?: string; immediate?: boolean }) => {
      const { readFileSync } = await import('node:fs')
      const { UsageError } = await import('../args.js')
      const { importInputFromFile } = await import('../../keys/import.js')
      if (options.format !== undefined && !['pem', 'pkcs12', 'jwk'].includes(options.format)) throw new UsageError('--format must be pem, pkcs12 or jwk')
      if (file === '-' && options.passphraseFile === '-') throw new UsageError('the key and --passphrase-file cannot both come from stdin')
      const read = (path: string, what: string): Buffer => {
        try {
          return readFileSync(path === '-' ? 0 : path)
        } catch (error) {
          throw new UsageError(`cannot read ${what} ${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`)
        }
      }
      const secret = options.passphraseFile === undefined ? undefined : read(options.passphraseFile, '--passphrase-file').toString('utf8').replace(/\r?\n$/, '')
      const input = importInputFromFile(read(file, 'the key file'), secret, options.format as 'pem' | 'pkcs12' | 'jwk' | undefined)
      const { importKeyBody } = await import('../../schemas/index.js')
      const { checkBody } = await import('../../schemas/validate.js')
      return { name, body: checkBody(importKeyBody, { ...input, activate: options.immediate ? 'immediate' : 'scheduled' }) }
    }, (api, { name, body }) => api.importKey(name ?? api.defaultKeyset, body), asRow(KEY_COLUMNS)))
}
