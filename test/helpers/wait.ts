import { cpuMsOf } from '../../bench/lib/process-stats.js'

/**
 * Polls `probe` every `everyMs` until it holds; resolves to the milliseconds that
 * took, or throws once `limitMs` have passed. For guarantees stated as "within N
 * seconds" (a change reaching another process, a lease moving): the limit is the
 * guarantee, and a fast machine answers long before it.
 */
export async function within(limitMs: number, probe: () => Promise<boolean> | boolean, everyMs = 20): Promise<number> {
  const start = Date.now()
  for (;;) {
    if (await probe()) return Date.now() - start
    if (Date.now() - start > limitMs) throw new Error(`not seen within ${limitMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}

/**
 * Resolves once `pids` together have used `ms` more CPU than when called: the sign
 * that a request sent just before is being worked on (a 1000-token batch's parsing
 * and signing takes 60-80 ms), where waiting a fixed time is a guess a loaded machine
 * can lose. /proc counts in 10 ms ticks, so 30 means more than 20 ms, well above
 * what an idle server spends meanwhile (about 10 ms in 1.5 s).
 */
export async function whenBusy(pids: number[], ms = 30, limitMs = 10_000): Promise<void> {
  const used = () => pids.reduce((sum, pid) => sum + cpuMsOf(`/proc/${pid}/stat`), 0)
  const before = used()
  await within(limitMs, () => used() - before >= ms, 2)
}
