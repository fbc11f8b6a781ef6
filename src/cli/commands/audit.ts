import type { Command } from 'commander'
import { printJson, printLines } from '../output.js'
import { commandGroup } from '../group.js'

export function registerAudit(program: Command): void {
  const audit = commandGroup(program, 'audit', 'check the audit log')

  audit
    .command('verify')
    .description('check the audit log\'s hash chain; exits 1 and names the first broken event')
    .option('--json', 'print the result as JSON')
    .action(async (options: { json?: boolean }) => {
      const { verifyAuditLog } = await import('../../audit/verify-log.js')
      const { readConfig, withStorage } = await import('../context.js')
      const result = await withStorage(readConfig(), verifyAuditLog)
      if (options.json) printJson(result)
      if (!result.ok) {
        process.stderr.write(`signet: audit log broken at event ${result.brokenId}: ${result.reason}\n`)
        process.exitCode = 1
        return
      }
      if (!options.json) printLines(`audit log intact: ${result.events} events${result.lastHash ? `, last hash ${result.lastHash}` : ''}`)
    })
}
