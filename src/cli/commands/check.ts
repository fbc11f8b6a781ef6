import type { Command } from 'commander'
import { printJson, printLines } from '../output.js'
import { legacyNote } from './audit.js'

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('verify every stored row\'s integrity (keysets, keys with their kid, clients) and the audit chain; needs SIGNET_MASTER_KEY; exits 1 naming each failure')
    .option('--json', 'print the result as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { refuseUrl } = await import('../admin-api.js')
      // The rows themselves are what it checks, and the admin API never hands them out.
      refuseUrl(command, 'check', 'it checks every stored row (remotely, signet audit verify checks the audit log)')
      const { checkIntegrity } = await import('../../storage/integrity-check.js')
      const { readConfig, withIntegrityKeys } = await import('../context.js')
      const report = await withIntegrityKeys(readConfig(), 'check', (storage, keys) => checkIntegrity(storage, keys))
      const ok = report.failures.length === 0
      if (options.json) printJson({ ok, ...report })
      if (!ok) {
        for (const failure of report.failures) {
          const where = failure.table === 'audit' ? `audit event ${failure.id}` : `${failure.table} ${failure.id}`
          process.stderr.write(`signet: integrity failure: ${where}: ${failure.reason}\n`)
        }
        process.exitCode = 1
        return
      }
      if (options.json) return
      const { rows, audit } = report
      printLines(`intact: ${rows.keysets} keysets, ${rows.keys} keys, ${rows.clients} clients, ${audit.events} audit events${legacyNote(audit)}`)
    })
}
