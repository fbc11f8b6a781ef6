import { packageVersion } from '../version.js'
import { Command } from 'commander'
import { registerAudit } from './commands/audit.js'
import { registerBackup } from './commands/backup.js'
import { registerCheck } from './commands/check.js'
import { registerClients } from './commands/clients.js'
import { registerDev } from './commands/dev.js'
import { registerInit } from './commands/init.js'
import { registerJwks } from './commands/jwks.js'
import { registerKeys } from './commands/keys.js'
import { registerKeysets } from './commands/keysets.js'
import { registerRewrap } from './commands/rewrap.js'
import { registerServe } from './commands/serve.js'

/**
 * Every command of SPEC section 5. Adding one is a file in commands/ that exports
 * a `register(program)` function, and one line here.
 */
const COMMANDS: ((program: Command) => void)[] = [
  registerServe,
  registerDev,
  registerInit,
  registerKeysets,
  registerKeys,
  registerClients,
  registerRewrap,
  registerBackup,
  registerAudit,
  registerCheck,
  registerJwks,
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
  for (const register of COMMANDS) register(program)
  return program
}
