import type { Storage } from '../storage/types.js'
import { AUDIT_HEAD, auditHead, verifyChain } from './chain.js'

/** Audit rows read per page while checking the chain. */
const PAGE = 1000

export type AuditLogCheck =
  | { ok: true; events: number; lastId: number | null; lastHash: string | null }
  | { ok: false; events: number; brokenId: number; reason: string }

/**
 * Walks the whole audit log page by page through verifyChain, then checks that it
 * ends at the head the last write recorded (a chain alone cannot show that its
 * last rows were deleted). Used by `signet audit verify` and the admin API.
 */
export async function verifyAuditLog(storage: Pick<Storage, 'getMeta' | 'listAudit'>): Promise<AuditLogCheck> {
  const head = await storage.getMeta(AUDIT_HEAD)
  let prev: { id: number; hash: string } | null = null
  let events = 0
  for (;;) {
    const page = await storage.listAudit(prev?.id ?? 0, PAGE)
    if (page.length === 0) {
      if (head !== null && (prev === null || auditHead(prev) !== head)) {
        const expected = Number(head.split(':')[0])
        return { ok: false, events, brokenId: expected, reason: `the log ends at event ${prev?.id ?? 0}, but event ${expected} was written: events were removed from its end` }
      }
      return { ok: true, events, lastId: prev?.id ?? null, lastHash: prev?.hash ?? null }
    }
    const check = verifyChain(page, prev)
    if (!check.ok) return { ok: false, events: events + check.rows - 1, brokenId: check.brokenId, reason: check.reason }
    events += page.length
    const last = page[page.length - 1]!
    prev = { id: last.id, hash: last.hash }
  }
}
