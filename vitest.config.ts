import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { defineConfig } from 'vitest/config'
import { BaseSequencer, type TestSpecification } from 'vitest/node'

/** The PKCS#11 (SoftHSM2) tests: part of the slow run, in a project of their own (below). */
const HSM = 'test/hsm'

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
  `${HSM}/**`,
  'test/console/browser.test.ts',
  'test/storage/postgres*.test.ts',
  // Kills, faults and load; rotations, cache lifetimes, restarts and certificate
  // reloads waited out in real time.
  'test/faults/**',
  'test/client/verifier.test.ts',
  'test/client/retry.test.ts',
  'test/tls/reload.test.ts',
  'test/security/exhaustion.test.ts',
  'test/interop/rotation.test.ts',
]

/**
 * The longest files (about 25 to 70 s each here, mostly waiting in real time), longest
 * first: started at once, none of them is left running alone at the end while the
 * other cores idle. Vitest orders by the last run's durations, but a fresh clone (CI)
 * has none, and its fallback, the largest file first, started the crash test last.
 * A name missing from this list only costs time, never a test.
 */
const LONGEST = [
  'test/workers/workers.test.ts',
  'test/faults/crash.test.ts',
  'test/cli/commands.test.ts',
  'test/ops/rewrap-crash.test.ts',
  'test/console/browser.test.ts',
  'test/faults/rotation-load.test.ts',
  'test/security/untrusted-database.test.ts',
  'test/cli/remote.test.ts',
  'test/replicas/replicas.test.ts',
]

/**
 * LONGEST first, then the rest of the slow and hsm projects, then the short in-process files
 * of the fast one, which fill the cores while the last slow files finish (vitest's
 * own order inside each part). Vitest's default runs the projects in name order,
 * fast first, which left the longest files for last.
 */
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (file: TestSpecification): number => {
      const longest = LONGEST.indexOf(relative(import.meta.dirname, file.moduleId))
      if (longest >= 0) return longest
      return LONGEST.length + (file.project.name === 'fast' ? 1 : 0)
    }
    // Array.prototype.sort is stable: vitest's order holds within each rank.
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b))
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
    sequence: { sequencer: LongestFirst },
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
      { extends: true, test: { name: 'slow', include: SLOW.map((glob) => (glob.endsWith('/**') ? `${glob}/*.test.ts` : glob)), exclude: [`${HSM}/**`] } },
      // PKCS#11 state is per process (the loaded module, its SOFTHSM2_CONF, its
      // sessions), and each file makes and removes its own token directory: each HSM
      // file gets a process of its own, so one that fails cannot leave the next a token
      // that is gone.
      { extends: true, test: { name: 'hsm', include: [`${HSM}/*.test.ts`], isolate: true } },
    ],
  },
})
