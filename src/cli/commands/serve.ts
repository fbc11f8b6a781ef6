import type { Command } from 'commander'
import { localAction } from '../admin-action.js'

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the service from the environment (SIGNET_*); on an empty database it first creates keyset default (ES256)')
    .action(localAction('it runs the server on its database', async () => {
      const { serve } = await import('../../server.js')
      await serve()
    }))
}
