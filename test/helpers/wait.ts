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
