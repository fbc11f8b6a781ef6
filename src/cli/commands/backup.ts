import type { Command } from 'commander'
import { printJson, printLines } from '../output.js'

export function registerBackup(program: Command): void {
  program
    .command('backup')
    .description('consistent online copy of the SQLite database while the server runs; keys stay encrypted')
    .argument('<file>', 'where to write the copy (a new file)')
    .option('--force', 'replace FILE if it exists')
    .option('--json', 'print the result as JSON')
    .action(async (file: string, options: { force?: boolean; json?: boolean }, command: Command) => {
      const { refuseUrl } = await import('../admin-api.js')
      refuseUrl(command, 'backup', 'it copies the database file')
      const { backupDatabase } = await import('../../ops/backup.js')
      const { readConfig, withStorage } = await import('../context.js')
      const config = readConfig()
      const result = await withStorage(config, (storage) =>
        backupDatabase(storage, file, { overwrite: options.force ?? false, ...(config.databaseUrl ? {} : { databasePath: config.dbPath }) }))
      if (options.json) printJson(result)
      else printLines(`backup written: ${result.file} (${result.bytes} bytes, ${result.keys} keys, generation ${result.generation}); restore it with the same master key`)
    })
}
