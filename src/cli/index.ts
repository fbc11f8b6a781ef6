#!/usr/bin/env node
import { Command, CommanderError } from 'commander'
import { ConfigError } from '../errors.js'
import { serve } from '../server.js'

/** One clear line on stderr and a non-zero exit: what scripts and operators see. */
function fail(error: unknown): never {
  const message = error instanceof ConfigError || error instanceof CommanderError ? error.message : (error as Error)?.message ?? String(error)
  process.stderr.write(`signet: ${message.replace(/\s+/g, ' ').trim()}\n`)
  process.exit(error instanceof CommanderError ? error.exitCode || 2 : 1)
}

const program = new Command()
program.name('signet').description('A standalone JWT signing service: keys stay in Signet, apps ask it to sign.')

program
  .command('serve')
  .description('run the service from the environment (SIGNET_*)')
  .action(async () => {
    await serve()
  })

program.parseAsync(process.argv).catch(fail)
