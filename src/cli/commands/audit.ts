import type { Command } from 'commander'
import { printJson, printLines } from '../output.js'
import { commandGroup } from '../group.js'

export function registerAudit(program: Command): void {
  const audit = commandGroup(program, 'audit', 'check the audit log')

  audit
    .command('verify')
    .description('check the audit log\'s keyed hash chain and its head (needs SIGNET_MASTER_KEY); exits 1 and names the first broken event')
    .option('--json', 'print the result as JSON')
    .action(async (options: { json?: boolean }) => {
      const { AUDIT_HEAD } = await import('../../audit/chain.js')
      const { checkAuditLog } = await import('../../storage/integrity-check.js')
      const { INTEGRITY_META } = await import('../../storage/row-integrity.js')
      const { readConfig, withIntegrityKeys } = await import('../context.js')
      const check = await withIntegrityKeys(readConfig(), 'audit verify', async (storage, keys) =>
        checkAuditLog((after, limit) => storage.listAudit(after, limit), { head: await storage.getMeta(AUDIT_HEAD), marker: await storage.getMeta(INTEGRITY_META) }, keys))
      const [first] = check.failures
      if (first) {
        if (options.json) printJson({ ok: false, brokenId: Number(first.id) || null, reason: first.reason, ...check })
        for (const failure of check.failures) {
          const where = failure.table === 'audit' ? `event ${failure.id}` : failure.id
          process.stderr.write(`signet: audit log broken at ${where}: ${failure.reason}\n`)
        }
        process.exitCode = 1
        return
      }
      if (options.json) {
        printJson({ ok: true, ...check })
        return
      }
      printLines(`audit log intact: ${check.events} events${legacyNote(check)}`)
    })
}

/** Events chained before the upgrade to a keyed log: reported, not failed (docs/security.md). */
export function legacyNote(check: { legacy: number; keyedFrom: number | null }): string {
  return check.legacy > 0 ? `; events 1 to ${check.legacy} are legacy, not keyed (plain SHA-256 from before the upgrade, sealed by event ${check.keyedFrom})` : ''
}
