import { appendAudit } from '../../src/audit/recorder.js'
import type { Storage } from '../../src/storage/types.js'

/**
 * A read-modify-write of the meta value `counter`, with a pause between read and
 * write to widen the window a race would need. Each run audits the value it read,
 * so a lost update shows up as two events with the same target.
 */
export function increment(storage: Storage, actor = 'test'): Promise<void> {
  return storage.transaction(async (tx) => {
    const value = Number((await tx.getMeta('counter')) ?? '0')
    await new Promise((resolve) => setTimeout(resolve, 2))
    await tx.setMeta('counter', String(value + 1))
    await appendAudit(tx, { at: Date.now(), actor, action: 'increment', target: String(value), details: {} })
  })
}
