import type { Command } from 'commander'
import { localAction } from '../admin-action.js'
import { printLines } from '../output.js'
import { legacyNote } from './audit.js'

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('verify every stored row\'s integrity (keysets, keys with their kid, clients) and the audit chain; needs SIGNET_MASTER_KEY; exits 1 naming each failure')
    .option('--json', 'print the result as JSON')
    // The rows themselves are what it checks, and the admin API never hands them out.
    .action(localAction('it checks every stored row (remotely, signet audit verify checks the audit log)', async () => {
      const { checkIntegrity } = await import('../../storage/integrity-check.js')
      const { readConfig, withIntegrityKeys } = await import('../context.js')
      return withIntegrityKeys(readConfig(), 'check', (storage, keys) => checkIntegrity(storage, keys))
    }, {
      json: (report) => ({ ok: report.failures.length === 0, ...report }),
      failures: (report) => report.failures.map((failure) => `integrity failure: ${failure.table === 'audit' ? `audit event ${failure.id}` : `${failure.table} ${failure.id}`}: ${failure.reason}`),
      text: ({ rows, audit }) => printLines(`intact: ${rows.keysets} keysets, ${rows.keys} keys, ${rows.clients} clients, ${audit.events} audit events${legacyNote(audit)}`),
    }))
}
