import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defineConfig } from 'vitest/config'
import { BaseSequencer, type TestSpecification } from 'vitest/node'

/**
 * Test files that are not part of `npm run test:fast` (the edit loop): they run the
 * built binary or other processes, need the build, PostgreSQL, Docker, SoftHSM2 or
 * a browser, or spend their time on purpose (kills, rotations in real time, load).
 * `npm test` runs them all.
 */
const SLOW = [
  // Child processes: the `signet` binary (needs npm run build), workers, replicas, fixtures.
  'test/cli/**',
  'test/ops/**',
  'test/workers/**',
  'test/replicas/**',
  'test/import/cli.test.ts',
  'test/identity/cli.test.ts',
  'test/tls/cli-binding.test.ts',
  'test/config/client-variables.test.ts',
  'test/crypto/at-rest.test.ts',
  'test/audit/audit.test.ts',
  'test/console/serve.test.ts',
  'test/security/untrusted-database.test.ts',
  'test/keys/propagation.test.ts',
  'test/client/example-app.test.ts',
  // Docker, SoftHSM2, Chromium, PostgreSQL.
  'test/docker/**',
  'test/hsm/**',
  'test/console/browser.test.ts',
  'test/storage/postgres*.test.ts',
  // Kills, faults and load; rotations watched in real time.
  'test/faults/**',
  'test/security/exhaustion.test.ts',
  'test/interop/rotation.test.ts',
]

/**
 * The slow project's files first, the longest of them first (vitest's own order
 * within a project: the last run's durations, else the largest file), and the short
 * in-process files after them, where they fill the cores while the last long files
 * finish. Vitest's default runs the projects in name order, which left the longest
 * files (kills, workers) for last and a tail with idle cores.
 */
class SlowProjectFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files)
    return [...sorted.filter((file) => file.project.name === 'slow'), ...sorted.filter((file) => file.project.name !== 'slow')]
  }
}

export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores, four test files at a time: much of the slow project waits in real
    // time (rotation periods, leases, kills, cache lifetimes) rather than computing, and
    // the third and fourth files fill those waits (npm test here: 225 s with two, 194 s
    // with three; once the suite's CPU fell to about 290 s, 193 s with three, 182 s with four).
    maxWorkers: 4,
    sequence: { sequencer: SlowProjectFirst },
    // Files that a worker runs one after another share its loaded modules instead of
    // each loading vitest, fastify and src/ again: the suite's CPU went from 434 s to
    // 314 s. A test may therefore not rely on a fresh module (auth-constant-time.test.ts
    // loads the module it mocks again) and must put back what it changes in process.env.
    isolate: false,
    // Hundreds of tests start `node bin/signet.cjs`: Node's compile cache (code cached
    // on disk, checked against each module's source) spares each start most of its
    // module compiling. Test runs only; a serving process does not use it.
    env: { NODE_COMPILE_CACHE: join(tmpdir(), 'signet-test-compile-cache') },
    projects: [
      { extends: true, test: { name: 'fast', include: ['test/**/*.test.ts'], exclude: SLOW } },
      { extends: true, test: { name: 'slow', include: SLOW.map((glob) => (glob.endsWith('/**') ? `${glob}/*.test.ts` : glob)) } },
    ],
  },
})
