import type { Command } from 'commander'
import { wholeNumber } from '../args.js'
import { printJson, printLines, printTable, shortTime } from '../output.js'
import { commandGroup } from '../group.js'

/** Audit rows read per page while checking the chain. */
const PAGE = 1000

export function registerAudit(program: Command): void {
  const audit = commandGroup(program, 'audit', 'read and check the audit log')

  audit
    .command('list')
    .description('print audit events, oldest first, one page at a time')
    .option('--after <id>', 'start after this event id (the "next" of the previous page)', wholeNumber(0), 0)
    .option('--limit <n>', 'events per page, 1 to 1000', wholeNumber(1), 100)
    .option('--json', 'print the page as JSON: { events, next }')
    .action(async (options: { after: number; limit: number; json?: boolean }, command: Command) => {
      const { UsageError } = await import('../args.js')
      const { adminApi } = await import('../admin-api.js')
      if (options.limit > 1000) throw new UsageError('--limit must be a whole number from 1 to 1000')
      const page = await (await adminApi(command)).listAudit(options.after, options.limit)
      if (options.json) {
        printJson(page)
        return
      }
      printTable(page.events, [
        { header: 'id', value: (e) => e.id },
        { header: 'at', value: (e) => shortTime(e.at) },
        { header: 'actor', value: (e) => e.actor },
        { header: 'action', value: (e) => e.action },
        { header: 'target', value: (e) => e.target },
      ])
      if (page.next !== null) printLines('', `More: signet audit list --after ${page.next}${options.limit === 100 ? '' : ` --limit ${options.limit}`}`)
    })

  audit
    .command('verify')
    .description('check the audit log\'s hash chain; exits 1 and names the first broken event')
    .option('--json', 'print the result as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { refuseUrl } = await import('../admin-api.js')
      refuseUrl(command, 'audit verify', 'it checks the hash chain of the stored rows')
      const { AUDIT_HEAD, auditHead, verifyChain } = await import('../../audit/chain.js')
      const { readConfig, withStorage } = await import('../context.js')
      const result = await withStorage(readConfig(), async (storage) => {
        const head = await storage.getMeta(AUDIT_HEAD)
        let prev: { id: number; hash: string } | null = null
        let events = 0
        for (;;) {
          const page = await storage.listAudit(prev?.id ?? 0, PAGE)
          if (page.length === 0) {
            // The chain holds, but does it end where the last write said it ends?
            if (head !== null && (prev === null || auditHead(prev) !== head)) {
              const expected = Number(head.split(':')[0])
              return { ok: false as const, events, brokenId: expected, reason: `the log ends at event ${prev?.id ?? 0}, but event ${expected} was written: events were removed from its end` }
            }
            return { ok: true as const, events, lastId: prev?.id ?? null, lastHash: prev?.hash ?? null }
          }
          const check = verifyChain(page, prev)
          if (!check.ok) return { ok: false as const, events: events + check.rows - 1, brokenId: check.brokenId, reason: check.reason }
          events += page.length
          const last = page[page.length - 1]!
          prev = { id: last.id, hash: last.hash }
        }
      })
      if (options.json) printJson(result)
      if (!result.ok) {
        process.stderr.write(`signet: audit log broken at event ${result.brokenId}: ${result.reason}\n`)
        process.exitCode = 1
        return
      }
      if (!options.json) printLines(`audit log intact: ${result.events} events${result.lastHash ? `, last hash ${result.lastHash}` : ''}`)
    })
}
