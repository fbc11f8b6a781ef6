import type { Command } from 'commander'

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the service from the environment (SIGNET_*); on an empty database it first creates keyset default (ES256)')
    .action(async (_options: object, command: Command) => {
      const { refuseUrl } = await import('../admin-api.js')
      refuseUrl(command, 'serve', 'it runs the server on its database')
      const { serve } = await import('../../server.js')
      await serve()
    })
}
