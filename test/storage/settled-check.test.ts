import { describe, expect, it } from 'vitest'
import { whileSettled } from '../../src/storage/integrity-check.js'

/**
 * A check that reads the database in several steps runs again when a writer
 * committed meanwhile (storage/integrity-check.ts): a failure seen across two
 * moments is not reported, a failure that holds still is.
 */
describe('whileSettled', () => {
  /** A storage whose generation moves by `moves[i]` during the i-th check. */
  const storageMoving = (moves: number[]) => {
    let generation = 0
    let calls = 0
    return {
      storage: { generation: async () => generation },
      check: (failing: (attempt: number) => boolean) => async () => {
        const attempt = calls++
        generation += moves[attempt] ?? 0
        return { failures: failing(attempt) ? ['seen'] : [], attempt }
      },
      calls: () => calls,
    }
  }

  it('runs a failed check again while writers moved the generation, until one passes or fails with nothing moving', async () => {
    const passes = storageMoving([1, 1, 0])
    expect(await whileSettled(passes.storage, passes.check((attempt) => attempt < 2))).toEqual({ failures: [], attempt: 2 })
    const fails = storageMoving([1, 0])
    expect(await whileSettled(fails.storage, fails.check(() => true))).toEqual({ failures: ['seen'], attempt: 1 })
    expect(fails.calls()).toBe(2)
  })

  it('reports a failure seen while nothing moved, at once', async () => {
    const still = storageMoving([0])
    expect(await whileSettled(still.storage, still.check(() => true))).toEqual({ failures: ['seen'], attempt: 0 })
    expect(still.calls()).toBe(1)
  })

  it('never runs a passing check twice, and gives up after 5 runs under constant writes', async () => {
    const passing = storageMoving([1])
    expect((await whileSettled(passing.storage, passing.check(() => false))).attempt).toBe(0)
    const busy = storageMoving([1, 1, 1, 1, 1, 1, 1])
    expect(await whileSettled(busy.storage, busy.check(() => true))).toEqual({ failures: ['seen'], attempt: 4 })
    expect(busy.calls()).toBe(5)
  })
})
