import type { Command } from 'commander'
import { printJson, printLines } from '../output.js'
import { commandGroup } from '../group.js'

/** Audit rows read per page while checking the chain. */
const PAGE = 1000

export function registerAudit(program: Command): void {
  const audit = commandGroup(program, 'audit', 'check the audit log')

  audit
    .command('verify')
    .description('check the audit log\'s hash chain; exits 1 and names the first broken event')
    .option('--json', 'print the result as JSON')
    .action(async (options: { json?: boolean }) => {
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
