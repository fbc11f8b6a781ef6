/**
 * A Signet server for the crash test (test/faults/crash.test.ts), meant to be
 * killed with SIGKILL at any moment: `node crash-server.ts`. Node strips the types
 * itself and the code is the build's (dist/, made by `npm test`'s pretest): no tsx
 * compiling src/ on each of the thirty starts, which was most of the test's time.
 *
 * Its clock runs CRASH_SPEED times faster than real time from CRASH_T0 (virtual)
 * at CRASH_REAL0 (real), computed from the wall clock so every restart, and the
 * parent, agree on the time. It listens on a free port and prints one line
 * `{"ready":"http://..."}` on stdout; once it reads a line on stdin it starts to
 * rotate (scheduled and immediate) and revoke keys at random, while its own
 * scheduler activates, retires and destroys them. Logs go to stdout as JSON lines.
 */
import pino from 'pino'
import { buildApp } from '../../dist/app.js'
import { loadConfig } from '../../dist/config.js'
import { Signet } from '../../dist/runtime.js'

const speed = Number(process.env.CRASH_SPEED)
const t0 = Number(process.env.CRASH_T0)
const real0 = Number(process.env.CRASH_REAL0)
const clock = { now: () => Math.floor(t0 + (Date.now() - real0) * speed) }

/** The policy of both keysets, in virtual seconds. */
const POLICY = { rotationPeriod: 20, prepublish: 10, maxTtl: 300, defaultTtl: 300 }

const logger = pino({ level: 'info' })
const signet = await Signet.open({ config: loadConfig(process.env), clock, logger, createDefaultKeyset: true, pollIntervalMs: 25 })
const current = (await signet.keys.getKeyset('default')).keyset
if (current.rotationPeriod !== POLICY.rotationPeriod || current.maxTtl !== POLICY.maxTtl) {
  await signet.keys.updateKeyset('default', POLICY, 'test:crash')
}
await signet.keys.ensureKeyset({ name: 'second', alg: 'EdDSA', ...POLICY }, 'test:crash')
await signet.keystore.refresh()

const app = await buildApp(signet)
await app.listen({ host: '127.0.0.1', port: 0 })
signet.start()
process.stdout.write(`${JSON.stringify({ ready: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` })}\n`)

const pick = <T>(items: T[]): T | undefined => items[Math.floor(Math.random() * items.length)]

/** One random change: what an operator and the schedule do over weeks, in milliseconds. */
async function chaos(): Promise<void> {
  const snapshot = await signet.storage.snapshot()
  const keyset = pick(['default', 'second'])!
  const keys = snapshot.keys.filter((key) => key.keyset === keyset)
  const pending = keys.filter((key) => key.state === 'pending')
  const roll = Math.random()
  if (roll < 0.35) {
    if (pending.length < 2) await signet.keys.rotate(keyset, 'scheduled', 'test:chaos')
  } else if (roll < 0.5) {
    await signet.keys.rotate(keyset, 'immediate', 'test:chaos')
  } else if (roll < 0.6) {
    const victim = pick(keys.filter((key) => key.state === 'pending' || key.state === 'retired'))
    if (victim) await signet.keys.revoke(victim.kid, 'chaos', 'test:chaos')
  } else if (roll < 0.65) {
    const active = keys.find((key) => key.state === 'active')
    if (active) await signet.keys.revoke(active.kid, 'chaos: compromise', 'test:chaos')
  }
}

process.stdin.once('data', () => {
  const loop = async () => {
    for (;;) {
      await chaos().catch((error: Error) => logger.warn({ code: (error as { code?: string }).code }, 'chaos step refused'))
      await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 30))
    }
  }
  void loop()
})
