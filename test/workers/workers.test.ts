import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, Client } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { workerThreadPool } from '../../src/cluster.js'
import { advisoryLockKey, advisoryLockRow } from '../../src/storage/postgres/locks.js'
import { cliJson, fileTempDir, REPO, requireBuild, runCli, signetStderr, spawnCli, startServe, waitReady, type RunningChild } from '../cli/helpers.js'
import { newAdminToken, newMasterKey } from '../helpers/temp.js'
import { whenBusy, within } from '../helpers/wait.js'
import { createTestSchema, pgBaseUrl, type TestSchema } from '../storage/postgres-fixture.js'

/**
 * SIGNET_WORKERS (README, "Workers or replicas"): `node bin/signet.cjs serve` with
 * several node:cluster workers on one listener. Requests spread over the workers;
 * a change made through one is in force in all before its answer; /metrics sums the counters of all and does
 * not multiply the key gauges; exactly one worker runs the key schedule, and another
 * takes it when that one is killed; a killed worker is replaced; SIGTERM drains
 * every worker before the primary exits; secrets never reach a worker's environment.
 */

const BIN = join(REPO, 'bin/signet.cjs')
const PERIOD_S = 3
const PREPUBLISH_S = 1

type Pool = RunningChild & { url: string }

/** `signet serve` with SIGNET_WORKERS=`workers`; resolves once every worker listens. */
async function startPool(env: Record<string, string>, workers: number | 'auto'): Promise<Pool> {
  const running = spawnCli(['serve'], {
    env: { SIGNET_PORT: '0', SIGNET_LOG_LEVEL: 'info', SIGNET_WORKERS: String(workers), ...env },
    command: [process.execPath, BIN, 'serve'],
  })
  try {
    const url = await running.waitFor((line) => (line.includes('"workers listening"') ? (JSON.parse(line) as { url: string }).url : undefined), 60_000)
    await waitReady(url)
    const pool = Object.assign(running, { url })
    // Each worker's own "listening" line may trail the primary's on the shared pipe.
    const count = workers === 'auto' ? availableParallelism() : workers
    await within(10_000, () => workerPids(pool).length === count)
    return pool
  } catch (error) {
    await running.stop('SIGKILL')
    throw error
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Pids of the workers that said they listen and are still running. */
const workerPids = (pool: Pool): number[] =>
  [...new Set(pool.logs.filter((l) => l.msg === 'signet listening').map((l) => l.pid as number))].filter(alive)

/** The pid of the worker running the key schedule now. */
const schedulerPid = (pool: Pool): number | undefined =>
  pool.logs.filter((l) => l.msg === 'this worker runs the key schedule' && alive(l.pid)).at(-1)?.pid

let nextId = 0

/**
 * One request on a connection of its own (cluster hands out connections, not
 * requests, so a kept-alive connection would always reach the same worker). Answers
 * the status, the parsed body and the pid of the worker that logged it.
 */
async function call(pool: Pool, method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; json: any; text: string; pid: () => number | undefined }> {
  const id = `workers-${process.pid}-${nextId++}`
  const dispatcher = new Agent()
  try {
    const response = await fetch(`${pool.url}${path}`, {
      method,
      headers: { 'x-request-id': id, ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      dispatcher,
    } as RequestInit)
    const text = await response.text()
    let json: any = null
    try {
      json = JSON.parse(text)
    } catch {
      // not JSON (/metrics)
    }
    return { status: response.status, json, text, pid: () => pool.logs.find((l) => l.reqId === id)?.pid }
  } finally {
    await dispatcher.close()
  }
}

/** A sample's value in a Prometheus text answer, e.g. `signet_jwks_requests_total{keyset="default",status="200"}`. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

/** Waits until the pids of the logged requests `pidOf` returns are all known (log lines trail answers). */
async function servedBy(pids: (() => number | undefined)[]): Promise<Set<number>> {
  await within(5000, () => pids.every((pid) => pid() !== undefined))
  return new Set(pids.map((pid) => pid()!))
}

/** Activation times of the keys of `keyset`, in order, as the admin API lists them. */
async function activations(pool: Pool, adminToken: string, keyset: string): Promise<{ keys: { kid: string; state: string }[]; times: number[] }> {
  const answer = await call(pool, 'GET', `/v1/admin/keysets/${keyset}/keys`, adminToken)
  expect(answer.status).toBe(200)
  const keys = answer.json.keys as { kid: string; state: string; activatedAt: string | null }[]
  return { keys, times: keys.filter((k) => k.activatedAt !== null).map((k) => Date.parse(k.activatedAt!)).sort((a, b) => a - b) }
}

/** Every gap between activations is one rotation period: none sooner (doubled), none a period late (lost). */
function expectOneRotationPerPeriod(times: number[]): void {
  for (const [i, time] of times.slice(1).entries()) {
    const gap = time - times[i]!
    expect(gap).toBeGreaterThanOrEqual(PERIOD_S * 1000)
    expect(gap).toBeLessThan(2 * PERIOD_S * 1000)
  }
}

/** The audit log shows each rotation and each state change of `keyset` once. */
async function expectAuditedOnce(pool: Pool, adminToken: string, keyset: string, keyCount: number): Promise<void> {
  const events = (await call(pool, 'GET', '/v1/admin/audit?limit=1000', adminToken)).json.events as { action: string; target: string; details: Record<string, unknown> }[]
  const ofKeyset = events.filter((e) => e.details?.keyset === keyset)
  const rotations = ofKeyset.filter((e) => e.action === 'key.rotate').map((e) => e.target)
  expect(rotations).toHaveLength(keyCount - 1)
  expect(new Set(rotations).size).toBe(rotations.length)
  const transitions = ofKeyset.filter((e) => e.action === 'key.state').map((e) => `${e.target} ${String(e.details.to)}`)
  expect(transitions.length).toBeGreaterThan(0)
  expect(new Set(transitions).size, 'no state change (activation, retirement) happened twice').toBe(transitions.length)
}

/** The `kid` in a compact JWS's protected header. */
const headerKid = (token: string): string => (JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid

/**
 * Bursts of twenty signing requests at once, each on a connection of its own,
 * until they have reached every worker (at most five bursts; on a loaded machine
 * one burst may land on one worker): every answer is returned.
 */
async function signBurst(pool: Pool, token: string, claims: Record<string, unknown> = { sub: 'u' }) {
  const workers = workerPids(pool).length
  const answers: Awaited<ReturnType<typeof call>>[] = []
  for (let burst = 0; burst < 5; burst++) {
    answers.push(...(await Promise.all(Array.from({ length: 20 }, () => call(pool, 'POST', '/v1/sign', token, { claims })))))
    if ((await servedBy(answers.map((a) => a.pid))).size === workers) break
  }
  return answers
}

/**
 * A change answered by one worker is already in force in every worker (cluster.ts
 * relays it before the answer): twenty requests sent the moment the answer arrives,
 * reaching every worker, all see the new state. Without the relay the workers that
 * did not make the change serve the old one until their next poll.
 */
async function expectChangesInForceAtOnce(pool: Pool, adminToken: string): Promise<void> {
  const workers = workerPids(pool).length
  const expectEveryWorker = async (answers: Awaited<ReturnType<typeof signBurst>>) =>
    expect((await servedBy(answers.map((a) => a.pid))).size, 'the burst reaches every worker').toBe(workers)
  const activeKid = async () => (await activations(pool, adminToken, 'default')).keys.find((k) => k.state === 'active')!.kid

  // A new client signs everywhere at once.
  const created = await call(pool, 'POST', '/v1/admin/clients', adminToken, { name: 'at-once', keysets: '*', scopes: ['sign'] })
  expect(created.status).toBe(201)
  const token = created.json.token as string
  const signed = await signBurst(pool, token)
  expect(signed.map((s) => s.status)).toEqual(Array(signed.length).fill(200))
  await expectEveryWorker(signed)

  // A revoked key signs nowhere: every token has the replacement's kid.
  const revokedKid = await activeKid()
  expect((await call(pool, 'POST', `/v1/admin/keys/${revokedKid}/revoke`, adminToken, { reason: 'drill' })).status).toBe(200)
  const afterRevoke = await signBurst(pool, token)
  expect(afterRevoke.map((s) => s.status)).toEqual(Array(afterRevoke.length).fill(200))
  const replacement = await activeKid()
  expect(replacement).not.toBe(revokedKid)
  expect(afterRevoke.map((s) => headerKid(s.json.token as string))).toEqual(Array(afterRevoke.length).fill(replacement))
  await expectEveryWorker(afterRevoke)

  // A narrowed policy is enforced everywhere: aud is now required.
  expect((await call(pool, 'PATCH', `/v1/admin/clients/${created.json.id}`, adminToken, { audiences: ['api'] })).status).toBe(200)
  const unaddressed = await signBurst(pool, token)
  expect(unaddressed.map((s) => `${s.status} ${s.json.code}`)).toEqual(Array(unaddressed.length).fill('400 missing_claim'))
  await expectEveryWorker(unaddressed)

  // A revoked client's token works nowhere.
  expect((await call(pool, 'DELETE', `/v1/admin/clients/${created.json.id}`, adminToken)).status).toBe(200)
  const refused = await signBurst(pool, token, { sub: 'u', aud: 'api' })
  expect(refused.map((s) => `${s.status} ${s.json.code}`)).toEqual(Array(refused.length).fill('401 unauthorized'))
  await expectEveryWorker(refused)
}

describe('SIGNET_WORKERS=3 on one SQLite file', () => {
  const dir = fileTempDir('signet-workers-')
  const masterKey = newMasterKey()
  const adminToken = newAdminToken()
  let env: Record<string, string>
  let pool: Pool
  let clientToken = ''

  beforeAll(async () => {
    requireBuild()
    env = { SIGNET_DB: join(dir.path, 'signet.db'), SIGNET_MASTER_KEY: masterKey, SIGNET_ADMIN_TOKEN: adminToken, SIGNET_PUBLIC_PORT: '0' }
    // The instance's signing threads, which the three workers share (two each).
    pool = await startPool({ ...env, UV_THREADPOOL_SIZE: '6' }, 3)
  }, 90_000)

  afterAll(async () => {
    await pool?.stop('SIGKILL')
    dir.remove()
  })

  it('starts three workers on the same two listeners, on a database the primary prepared once', async () => {
    expect(workerPids(pool)).toHaveLength(3)
    expect(workerPids(pool)).not.toContain(pool.child.pid)
    const listening = pool.logs.filter((l) => l.msg === 'signet listening')
    expect(new Set(listening.map((l) => l.url))).toEqual(new Set([pool.url]))
    const publicUrl = pool.logs.find((l) => l.msg === 'workers listening')!.publicUrl as string
    expect(publicUrl).not.toBe(pool.url)
    expect(new Set(listening.map((l) => l.publicUrl))).toEqual(new Set([publicUrl]))
    // The public listener of every worker serves the JWK Set and nothing else.
    const onPublic = { ...pool, url: publicUrl }
    const jwks = await Promise.all(Array.from({ length: 6 }, () => call(onPublic, 'GET', '/.well-known/jwks.json')))
    expect(jwks.map((j) => j.status)).toEqual(Array(6).fill(200))
    expect((await servedBy(jwks.map((j) => j.pid))).size).toBeGreaterThan(1)
    expect((await call(onPublic, 'POST', '/v1/sign', 'x', { claims: {} })).status).toBe(404)

    const events = (await call(pool, 'GET', '/v1/admin/audit?limit=1000', adminToken)).json.events as { action: string }[]
    expect(events.filter((e) => e.action === 'storage.init')).toHaveLength(1)
    expect(events.filter((e) => e.action === 'keyset.create')).toHaveLength(1)
  })

  it('spreads requests over the workers, and a client revoked through one is refused by all', async () => {
    const created = await call(pool, 'POST', '/v1/admin/clients', adminToken, { name: 'app', keysets: '*', scopes: ['sign'] })
    expect(created.status).toBe(201)
    clientToken = created.json.token
    const id = created.json.id as string

    // Every worker picks the new client up (its poll) and signs for it.
    await within(5000, async () => {
      const signs = await Promise.all(Array.from({ length: 6 }, () => call(pool, 'POST', '/v1/sign', clientToken, { claims: { sub: 'u' } })))
      return signs.every((s) => s.status === 200)
    }, 100)
    const signs = await Promise.all(Array.from({ length: 9 }, () => call(pool, 'POST', '/v1/sign', clientToken, { claims: { sub: 'u' } })))
    expect(signs.map((s) => s.status)).toEqual(Array(9).fill(200))
    expect((await servedBy(signs.map((s) => s.pid))).size, 'nine requests on nine connections reach more than one worker').toBeGreaterThan(1)

    const revoked = await call(pool, 'DELETE', `/v1/admin/clients/${id}`, adminToken)
    expect(revoked.status).toBe(200)
    let refusals: Awaited<ReturnType<typeof call>>[] = []
    await within(5000, async () => {
      refusals = await Promise.all(Array.from({ length: 9 }, () => call(pool, 'POST', '/v1/sign', clientToken, { claims: { sub: 'u' } })))
      return refusals.every((r) => r.status === 401)
    }, 100)
    expect(refusals.map((r) => r.json.code)).toEqual(Array(9).fill('unauthorized'))
    expect((await servedBy(refusals.map((r) => r.pid))).size).toBeGreaterThan(1)
  }, 30_000)

  it('a change answered by one worker is in force in every worker before its answer: new client, revoked key, narrowed policy, revoked client', async () => {
    await expectChangesInForceAtOnce(pool, adminToken)
  }, 60_000)

  it('/metrics answers for the whole instance: counters summed over the workers, key gauges counted once', async () => {
    const series = 'signet_jwks_requests_total{keyset="default",status="200"}'
    const before = sample((await call(pool, 'GET', '/metrics')).text, series)
    expect(before, 'the public listener\'s JWKS requests of the first test are counted').toBeGreaterThanOrEqual(6)
    const fetched = await Promise.all(Array.from({ length: 12 }, () => call(pool, 'GET', '/.well-known/jwks.json')))
    expect(fetched.map((f) => f.status)).toEqual(Array(12).fill(200))
    expect((await servedBy(fetched.map((f) => f.pid))).size).toBeGreaterThan(1)

    // Asked of any worker, the answer is the same instance-wide count.
    for (let i = 0; i < 3; i++) {
      const metrics = await call(pool, 'GET', '/metrics')
      expect(metrics.status).toBe(200)
      expect(sample(metrics.text, series) - before).toBe(12)
      expect(sample(metrics.text, 'signet_keys{keyset="default",state="active"}')).toBe(1)
      expect(sample(metrics.text, 'signet_ready')).toBe(1)
      expect(metrics.text).toMatch(/^process_cpu_user_seconds_total /m)
    }
  }, 30_000)

  it('runs the key schedule in one worker only; when that worker is killed another takes it, and a replacement starts', async () => {
    const made = await call(pool, 'POST', '/v1/admin/keysets', adminToken, { name: 'fast', rotationPeriod: PERIOD_S, prepublish: PREPUBLISH_S, maxTtl: 60 })
    expect(made.status).toBe(201)
    const first = schedulerPid(pool)
    expect(first).toBeDefined()
    const applied = () => pool.logs.filter((l) => l.msg === 'scheduled key changes applied').map((l) => l.pid as number)
    // The schedule at work: a few changes applied (about two periods), waited for rather than slept through.
    await within(8 * PERIOD_S * 1000, () => applied().length >= 4, 100)
    expect(applied().length, 'the schedule ran').toBeGreaterThanOrEqual(4)
    expect(new Set(applied()), 'one worker applies the scheduled changes').toEqual(new Set([first]))
    const appliedBeforeKill = applied().length

    // kill -9 the scheduling worker: the primary logs it, hands the schedule to a live worker and starts a replacement.
    const before = workerPids(pool)
    process.kill(first!, 'SIGKILL')
    await within(5000, () => pool.logs.some((l) => l.msg === 'a worker exited: starting a replacement' && l.worker === first && l.signal === 'SIGKILL'))
    await within(5000, () => schedulerPid(pool) !== undefined && schedulerPid(pool) !== first)
    const second = schedulerPid(pool)!
    expect(before).toContain(second)
    await within(30_000, () => workerPids(pool).length === 3 && workerPids(pool).some((pid) => !before.includes(pid)), 100)
    expect(workerPids(pool)).not.toContain(first)
    expect((await call(pool, 'GET', '/readyz')).status).toBe(200)

    // Six rotations in all since the keyset was made: a few of them after the handover.
    await within(12 * PERIOD_S * 1000, async () => applied().length - appliedBeforeKill >= 2 && (await activations(pool, adminToken, 'fast')).times.length >= 7, 250)
    const after = applied().slice(appliedBeforeKill)
    expect(after.length).toBeGreaterThanOrEqual(2)
    expect(new Set(after)).toEqual(new Set([second]))

    const { keys, times } = await activations(pool, adminToken, 'fast')
    expect(times.length).toBeGreaterThanOrEqual(7) // the first key and six rotations or more
    expect(keys.filter((k) => k.state === 'active')).toHaveLength(1)
    expectOneRotationPerPeriod(times)
    await expectAuditedOnce(pool, adminToken, 'fast', keys.length)
  }, 90_000)

  it('shares the instance\'s signing thread pool out among the workers', () => {
    const pids = workerPids(pool)
    expect(pids).toHaveLength(3)
    for (const pid of pids) expect(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')).toContain('UV_THREADPOOL_SIZE=2')
  })

  it('keeps secrets out of the workers\' environment and out of every log line', async () => {
    expect(clientToken).not.toBe('')
    for (const pid of workerPids(pool)) {
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8')
      expect(environ.includes(masterKey), 'a worker\'s environment holds the master key').toBe(false)
      expect(environ.includes(adminToken), 'a worker\'s environment holds the admin token').toBe(false)
      expect(environ).not.toMatch(/(^|\0)SIGNET_/)
    }
    const output = `${pool.lines.join('\n')}\n${pool.stderr()}`
    for (const [label, secret] of [['the master key', masterKey], ['the admin token', adminToken], ['the client token', clientToken]] as const) {
      expect(output.includes(secret), `the output holds ${label}`).toBe(false)
    }
  })
})

describe('SIGNET_WORKERS: a worker that cannot confirm a change never holds its answer', () => {
  const dir = fileTempDir('signet-workers-stall-')
  const adminToken = newAdminToken()
  let pool: Pool
  /** One kept-alive connection: every request on it reaches the same worker. */
  let connection: Client

  beforeAll(async () => {
    requireBuild()
    pool = await startPool({ SIGNET_DB: join(dir.path, 'signet.db'), SIGNET_MASTER_KEY: newMasterKey(), SIGNET_ADMIN_TOKEN: adminToken }, 2)
    connection = new Client(pool.url, { pipelining: 1 })
  }, 90_000)

  afterAll(async () => {
    await connection?.destroy()
    await pool?.stop('SIGKILL')
    dir.remove()
  })

  /** An admin request on the kept-alive connection: its status and the pid of the worker that served it. */
  async function admin(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; pid: number }> {
    const id = `workers-stall-${nextId++}`
    const answer = await connection.request({
      method,
      path,
      headers: { authorization: `Bearer ${adminToken}`, 'x-request-id': id, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    })
    await answer.body.text()
    await within(5000, () => pool.logs.some((l) => l.reqId === id))
    return { status: answer.statusCode, pid: pool.logs.find((l) => l.reqId === id)!.pid as number }
  }

  const warnings = () => pool.logs.filter((l) => l.msg === 'workers did not confirm a change in time: they serve it by their next poll')

  it('a stopped worker: the change is answered once the primary stops waiting, with a warning naming that worker', async () => {
    const { pid: serving } = await admin('GET', '/v1/admin/clients')
    const stopped = workerPids(pool).find((pid) => pid !== serving)!
    process.kill(stopped, 'SIGSTOP')
    try {
      const created = await admin('POST', '/v1/admin/clients', { name: 'while-stopped', keysets: '*', scopes: ['sign'] })
      expect(created).toEqual({ status: 201, pid: serving })
      expect(warnings().map((w) => w.workers)).toEqual([[stopped]])
    } finally {
      process.kill(stopped, 'SIGCONT')
    }
  }, 30_000)

  it('a worker that dies while the primary waits for it: the change is answered at once, without waiting out the bound', async () => {
    const { pid: serving } = await admin('GET', '/v1/admin/clients')
    const dying = workerPids(pool).find((pid) => pid !== serving)!
    const warned = warnings().length
    process.kill(dying, 'SIGSTOP')
    let answered = false
    const created = admin('POST', '/v1/admin/clients', { name: 'while-dying', keysets: '*', scopes: ['sign'] }).finally(() => (answered = true))
    await sleep(500)
    expect(answered, 'the answer waits for the stopped worker').toBe(false)
    process.kill(dying, 'SIGKILL')
    expect(await created).toEqual({ status: 201, pid: serving })
    expect(warnings(), 'the primary did not wait out its bound').toHaveLength(warned)
    await within(30_000, () => workerPids(pool).length === 2 && !workerPids(pool).includes(dying), 100)
  }, 60_000)
})

describe('SIGNET_WORKERS: shutdown and start failures', () => {
  const dir = fileTempDir('signet-workers-stop-')
  let env: Record<string, string>
  let clientToken: string

  beforeAll(async () => {
    requireBuild()
    const db = join(dir.path, 'signet.db')
    const init = await cliJson(['init'], { SIGNET_DB: db })
    env = { SIGNET_DB: db, SIGNET_MASTER_KEY: init.masterKey }
    clientToken = (await cliJson(['clients', 'create', 'load', '--scopes', 'sign'], env)).token
  })

  afterAll(() => dir.remove())

  it('SIGTERM to the primary: a request in flight gets its whole answer, every worker exits, the primary exits 0 last', async () => {
    const pool = await startPool(env, 2)
    const workers = workerPids(pool)
    expect(workers).toHaveLength(2)
    const client = new Client(pool.url, { pipelining: 1 })
    try {
      const pending = client.request({
        method: 'POST',
        path: '/v1/sign/batch',
        headers: { authorization: `Bearer ${clientToken}`, 'content-type': 'application/json', 'x-request-id': 'in-flight' },
        body: JSON.stringify({ items: Array.from({ length: 1000 }, (_, i) => ({ claims: { sub: `u${i}` } })) }),
      })
      await whenBusy(workers) // a worker is parsing and signing the batch: it is in flight
      pool.child.kill('SIGTERM')
      const answer = await pending
      expect(answer.statusCode).toBe(200)
      expect(((await answer.body.json()) as { results: unknown[] }).results).toHaveLength(1000)
      expect(await pool.exited).toEqual({ code: 0, signal: null })
    } finally {
      await client.destroy()
      await pool.stop('SIGKILL')
    }
    for (const pid of workers) expect(alive(pid), `worker ${pid} still runs`).toBe(false)
    // Each worker said it stopped, and the primary said so after all of them.
    const stopped = pool.logs.map((l, i) => ({ pid: l.pid as number, msg: l.msg, i })).filter((l) => l.msg === 'stopped')
    expect(new Set(stopped.map((l) => l.pid))).toEqual(new Set([...workers, pool.child.pid]))
    expect(stopped.at(-1)!.pid).toBe(pool.child.pid)
    expect(pool.logs.filter((l) => l.msg === 'a worker exited: starting a replacement')).toEqual([])
  }, 60_000)

  it('refuses a malformed SIGNET_WORKERS, naming it', async () => {
    for (const value of ['0', 'two', '1.5', '', '100000', ' 2']) {
      const result = await runCli(['serve'], { env: { ...env, SIGNET_PORT: '0', SIGNET_WORKERS: value } })
      expect(result.code, `SIGNET_WORKERS=${JSON.stringify(value)}`).toBe(1)
      expect(result.stderr).toMatch(/^signet: SIGNET_WORKERS must be auto or a whole number from 1 to \d+/)
    }
  }, 60_000)

  it('a port in use stops the start once, naming SIGNET_PORT, and leaves no worker behind', async () => {
    const holder = await startServe(env)
    try {
      const port = new URL(holder.url).port
      const running = spawnCli(['serve'], { env: { ...env, SIGNET_PORT: port, SIGNET_WORKERS: '2' }, command: [process.execPath, BIN, 'serve'] })
      const exit = await running.exited
      expect(exit.code).toBe(1)
      const stderr = signetStderr(running.stderr())
      expect(stderr, running.stderr()).toHaveLength(1)
      expect(stderr[0]).toMatch(new RegExp(`^signet: SIGNET_PORT=${port}: the port is already in use`))
      const forked = [...new Set(running.logs.map((l) => l.pid as number))].filter((pid) => pid !== running.child.pid)
      for (const pid of forked) await within(5000, () => !alive(pid))
      expect(running.logs.some((l) => l.msg === 'a worker exited: starting a replacement')).toBe(false)
    } finally {
      await holder.stop()
    }
  }, 60_000)

  it('a wrong master key stops the start in the primary, before any worker', async () => {
    const result = await runCli(['serve'], { env: { ...env, SIGNET_PORT: '0', SIGNET_WORKERS: '2', SIGNET_MASTER_KEY: newMasterKey() } })
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/SIGNET_MASTER_KEY is not the master key of this database/)
    expect(result.stdout).not.toContain('starting workers')
  }, 30_000)

  // (On one core `auto` is one process: no cluster, as SIGNET_WORKERS=1.)
  it.skipIf(availableParallelism() < 2)('SIGNET_WORKERS=auto starts one worker per core', async () => {
    const pool = await startPool(env, 'auto')
    try {
      expect(pool.logs.find((l) => l.msg === 'workers listening')?.workers).toBe(availableParallelism())
    } finally {
      await pool.stop()
    }
  }, 60_000)
})

const pgSuite = pgBaseUrl ? describe : describe.skip

pgSuite('SIGNET_WORKERS=2 on PostgreSQL', () => {
  let db: TestSchema
  let pool: Pool
  const masterKey = newMasterKey()
  const adminToken = newAdminToken()

  beforeAll(async () => {
    requireBuild()
    db = await createTestSchema('signet_workers')
    pool = await startPool({ SIGNET_MASTER_KEY: masterKey, SIGNET_ADMIN_TOKEN: adminToken, SIGNET_DATABASE_URL: db.url }, 2)
  }, 90_000)

  afterAll(async () => {
    await pool?.stop()
    await db?.drop()
  })

  async function leaseHolders(): Promise<number> {
    const { classid, objid } = advisoryLockRow(advisoryLockKey('scheduler', db.schema))
    const result = await db.query("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 1 AND granted", [classid, objid])
    return result.rowCount ?? 0
  }

  it('a change answered by one worker is in force in both before its answer', async () => {
    await expectChangesInForceAtOnce(pool, adminToken)
  }, 60_000)

  it('serves, propagates a revocation to both workers, sums /metrics, and rotates once per period', async () => {
    const created = await call(pool, 'POST', '/v1/admin/clients', adminToken, { name: 'app', keysets: '*', scopes: ['sign'] })
    expect(created.status).toBe(201)
    const token = created.json.token as string
    await within(5000, async () => (await Promise.all(Array.from({ length: 4 }, () => call(pool, 'POST', '/v1/sign', token, { claims: {} })))).every((s) => s.status === 200), 100)
    expect((await call(pool, 'DELETE', `/v1/admin/clients/${created.json.id}`, adminToken)).status).toBe(200)
    await within(5000, async () => (await Promise.all(Array.from({ length: 6 }, () => call(pool, 'POST', '/v1/sign', token, { claims: {} })))).every((s) => s.status === 401), 100)

    const series = 'signet_jwks_requests_total{keyset="default",status="200"}'
    const before = sample((await call(pool, 'GET', '/metrics')).text, series)
    const fetched = await Promise.all(Array.from({ length: 8 }, () => call(pool, 'GET', '/.well-known/jwks.json')))
    expect((await servedBy(fetched.map((f) => f.pid))).size).toBe(2)
    const metrics = (await call(pool, 'GET', '/metrics')).text
    expect(sample(metrics, series) - before).toBe(8)
    expect(sample(metrics, 'signet_keys{keyset="default",state="active"}')).toBe(1)

    expect((await call(pool, 'POST', '/v1/admin/keysets', adminToken, { name: 'fast', rotationPeriod: PERIOD_S, prepublish: PREPUBLISH_S, maxTtl: 60 })).status).toBe(201)
    // Until three rotations are in (about three periods), never more than one lease holder.
    await within(10 * PERIOD_S * 1000, async () => {
      expect(await leaseHolders(), 'one worker holds the scheduler lease').toBeLessThanOrEqual(1)
      return (await activations(pool, adminToken, 'fast')).times.length >= 4
    }, 250)
    expect(await leaseHolders()).toBe(1)
    const applied = pool.logs.filter((l) => l.msg === 'scheduled key changes applied').map((l) => l.pid as number)
    expect(new Set(applied)).toEqual(new Set([schedulerPid(pool)]))
    const { keys, times } = await activations(pool, adminToken, 'fast')
    expect(times.length).toBeGreaterThanOrEqual(4)
    expectOneRotationPerPeriod(times)
    await expectAuditedOnce(pool, adminToken, 'fast', keys.length)
  }, 90_000)
})

describe('workerThreadPool', () => {
  it('shares the instance\'s pool out among the workers, at least one thread each', () => {
    expect(workerThreadPool('8', 2)).toBe(4)
    expect(workerThreadPool('6', 4)).toBe(1)
    expect(workerThreadPool('2', 3)).toBe(1)
  })

  it('takes signet serve\'s default pool (one thread per core, at least 2) when the size is missing or not a positive whole number', () => {
    const { THREAD_POOL_SIZE } = createRequire(import.meta.url)('../../bin/serving-defaults.cjs') as { THREAD_POOL_SIZE: string }
    expect(Number(THREAD_POOL_SIZE)).toBe(Math.max(2, availableParallelism()))
    for (const given of [undefined, '', 'many', '0', '-2']) expect(workerThreadPool(given, 1)).toBe(Number(THREAD_POOL_SIZE))
  })
})
