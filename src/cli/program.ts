import { packageVersion } from '../version.js'
import { Command } from 'commander'
import { registerAudit } from './commands/audit.js'
import { registerBackup } from './commands/backup.js'
import { registerCheck } from './commands/check.js'
import { registerClients } from './commands/clients.js'
import { registerDev } from './commands/dev.js'
import { registerInit } from './commands/init.js'
import { registerIssuers } from './commands/issuers.js'
import { registerJwks } from './commands/jwks.js'
import { registerKeys } from './commands/keys.js'
import { registerKeysets } from './commands/keysets.js'
import { registerRewrap } from './commands/rewrap.js'
import { registerServe } from './commands/serve.js'
import { registerStatus } from './commands/status.js'

/**
 * Every command (README, Command line; docs/configuration.md). Adding one is a file in commands/ that exports
 * a `register(program)` function, and one line here.
 */
const COMMANDS: ((program: Command) => void)[] = [
  registerServe,
  registerDev,
  registerInit,
  registerKeysets,
  registerKeys,
  registerClients,
  registerIssuers,
  registerRewrap,
  registerBackup,
  registerAudit,
  registerCheck,
  registerJwks,
  registerStatus,
]

/** The `signet` program; commander reports errors by throwing, and fail() prints them. */
export function buildProgram(): Command {
  const program = new Command()
  program
    .name('signet')
    .description('A standalone JWT signing service: keys stay in Signet, apps ask it to sign, verifiers fetch the JWKS.')
    .version(packageVersion(), '-V, --version')
    // Errors become exceptions (inherited by every subcommand); help goes to stdout.
    .exitOverride()
    .configureOutput({ outputError: () => {}, writeErr: () => {} })
    .showSuggestionAfterError(true)
    // Each command's help also lists --url (inherited by the commands registered below).
    .configureHelp({ showGlobalOptions: true })
    // Admin commands use this Signet's admin API instead of the database (admin-api.ts).
    .option('--url <url>', 'administer the Signet at this URL through its admin API, with SIGNET_ADMIN_TOKEN (default: SIGNET_URL); no database or master key needed')
  for (const register of COMMANDS) register(program)
  return program
}
