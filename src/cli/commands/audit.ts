import type { Command } from 'commander'
import { UsageError, wholeNumber } from '../args.js'
import { printLines, printTable, shortTime } from '../output.js'
import { checkedAdminAction, show, type JsonOption, type Shown } from '../admin-action.js'
import type { AuditVerifyView } from '../admin-api.js'
import type { AuditLogCheck } from '../../storage/integrity-check.js'
import { commandGroup } from '../group.js'

export function registerAudit(program: Command): void {
  const audit = commandGroup(program, 'audit', 'read and check the audit log')

  audit
    .command('list')
    .description('print audit events, oldest first, one page at a time')
    .option('--after <id>', 'start after this event id (the "next" of the previous page)', wholeNumber(0), 0)
    .option('--limit <n>', 'events per page, 1 to 1000', wholeNumber(1), 100)
    .option('--json', 'print the page as JSON: { events, next }')
    .action(checkedAdminAction((options: { after: number; limit: number }) => {
      if (options.limit > 1000) throw new UsageError('--limit must be a whole number from 1 to 1000')
      return options
    }, async (api, { after, limit }) => ({ page: await api.listAudit(after, limit), limit }), {
      json: ({ page }) => page,
      text: ({ page, limit }) => {
        printTable(page.events, ['id', { header: 'at', value: (e) => shortTime(e.at) }, 'actor', 'action', 'target'])
        if (page.next !== null) printLines('', `More: signet audit list --after ${page.next}${limit === 100 ? '' : ` --limit ${limit}`}`)
      },
    }))

  audit
    .command('verify')
    .description('check the audit log\'s keyed hash chain and its head (needs SIGNET_MASTER_KEY, or --url: the server checks it); exits 1 and names each broken event')
    .option('--json', 'print the result as JSON')
    .action(async (options: JsonOption, command: Command) => {
      const { remoteAdminApi } = await import('../admin-api.js')
      const { readConfig, withIntegrityKeys } = await import('../context.js')
      const config = readConfig()
      const remote = await remoteAdminApi(command, config)
      if (remote !== null) return show(options, await remote.verifyAudit(), VERIFIED_REMOTELY)
      const { verifyAuditLog } = await import('../../storage/integrity-check.js')
      const check = await withIntegrityKeys(config, 'audit verify', verifyAuditLog)
      await show(options, check, VERIFIED_HERE)
    })
}

/** audit verify through a server's admin API: its answer as it is. */
const VERIFIED_REMOTELY: Shown<AuditVerifyView> = {
  json: (check) => check,
  // id 0: the fault is in the chain's head or marker, which the reason names.
  // A server that says the log is broken but names nothing (not Signet's own answer) still fails the check.
  failures: (check) => {
    if (check.intact) return []
    if (check.problems.length === 0) return ['audit log broken: the server says the log is not intact and names no event']
    return check.problems.map((problem) => `audit log broken${problem.id > 0 ? ` at event ${problem.id}` : ''}: ${problem.reason}`)
  },
  text: (check) => printLines(`audit log intact: ${check.events} events`),
}

/** audit verify on the database, with the master key. */
const VERIFIED_HERE: Shown<AuditLogCheck> = {
  json: (check) => {
    const [first] = check.failures
    return first ? { ok: false, brokenId: Number(first.id) || null, reason: first.reason, ...check } : { ok: true, ...check }
  },
  failures: (check) => check.failures.map((failure) => `audit log broken at ${failure.table === 'audit' ? `event ${failure.id}` : failure.id}: ${failure.reason}`),
  text: (check) => printLines(`audit log intact: ${check.events} events${legacyNote(check)}`),
}

/** Events chained before the upgrade to a keyed log: reported, not failed (docs/security.md). */
export function legacyNote(check: { legacy: number; keyedFrom: number | null }): string {
  return check.legacy > 0 ? `; events 1 to ${check.legacy} are legacy, not keyed (plain SHA-256 from before the upgrade, sealed by event ${check.keyedFrom})` : ''
}
