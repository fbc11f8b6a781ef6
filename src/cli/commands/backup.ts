import type { Command } from 'commander'
import { localAction } from '../admin-action.js'
import { printLines } from '../output.js'

export function registerBackup(program: Command): void {
  program
    .command('backup')
    .description('consistent online copy of the SQLite database while the server runs; keys stay encrypted')
    .argument('<file>', 'where to write the copy (a new file)')
    .option('--force', 'replace FILE if it exists')
    .option('--json', 'print the result as JSON')
    .action(localAction('it copies the database file', async (file: string, options: { force?: boolean }) => {
      const { backupDatabase } = await import('../../ops/backup.js')
      const { readConfig, withStorage } = await import('../context.js')
      const config = readConfig()
      return withStorage(config, (storage) =>
        backupDatabase(storage, file, { overwrite: options.force ?? false, ...(config.databaseUrl ? {} : { databasePath: config.dbPath }) }))
    }, {
      json: (result) => result,
      text: (result) => printLines(`backup written: ${result.file} (${result.bytes} bytes, ${result.keys} keys, generation ${result.generation}); restore it with the same master key`),
    }))
}
