/**
 * `npm run bench`: where Signet stands against the limits of this machine, all
 * measured in one run so the ratios hold on a noisy machine. See the README section
 * "Performance" for what each row measures and what limits it.
 */
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, platform, release, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { exportJWK, SignJWT } from 'jose'
import jsonwebtoken from 'jsonwebtoken'
import pino from 'pino'
import { generateKeyPair } from '../src/crypto/keygen.js'
import { loadConfig } from '../src/config.js'
import { Signet } from '../src/runtime.js'
import type { Alg } from '../src/crypto/algorithms.js'
import { cryptoLimit } from './lib/crypto-limit.js'
import { postgresSchema, softHsmToken } from './lib/extras.js'
import { paced } from './lib/paced.js'
import { alternate, pairedRatio, type Measured, type Probe, type Row, type Sample } from './lib/rounds.js'
import { watchProcess } from './lib/process-stats.js'
import { BENCH_CLAIMS, json, killServers, ROOT, signingInputOf, signRequestBody, spawnBareSigner, spawnCeiling, spawnSignet, startSignet } from './lib/servers.js'

/** Rows of a ratio are measured in alternation, ROUNDS rounds of ROUND_SECONDS each (bench/lib/rounds.ts). */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const ROUND_SECONDS = Number(process.env.BENCH_SECONDS ?? 1.5)
/** The latency rows: one evenly paced run this long. */
const SECONDS = ROUNDS * ROUND_SECONDS
/** Rows that measure something other than Signet, to set it against. */
const REFERENCE_ROW = /^(ceiling|bare signer|crypto limit|jsonwebtoken)/
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16)
/** The latency rows' rate: half the measured maximum, at most this. */
const MAX_PACED_RATE = 2000
/** The jsonwebtoken rows: one thread signing this long. */
const STATUS_QUO_SECONDS = 3

const rows: Row[] = []
interface LoadOptions {
  url: string
  method?: 'GET' | 'POST'
  body?: string
  headers?: Record<string, string>
}

/** Method, headers (JSON) and body of a request, as both load generators take them. */
function requestShape(options: LoadOptions): { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string } {
  return { method: options.method ?? 'GET', headers: { 'content-type': 'application/json', ...options.headers }, ...(options.body ? { body: options.body } : {}) }
}

async function load(options: LoadOptions & { seconds: number; connections: number }): Promise<autocannon.Result> {
  return autocannon({
    ...requestShape(options),
    url: options.url,
    connections: options.connections,
    duration: options.seconds,
    // autocannon stops at its first sample after the duration: sampling often keeps rounds on time.
    sampleInt: 250,
  })
}

/** A server process to load and watch. */
interface Server {
  pid: number
  url: string
}

type Watched<T> = Awaited<ReturnType<typeof watchProcess<T>>>

/**
 * One round of autocannon runs (one per server; several for replicas) as a sample:
 * rates over the exact time each run took (autocannon's average is over whole
 * seconds), the slowest server's latencies, the servers' CPU added up.
 */
function loadSample(results: autocannon.Result[], watched: Watched<unknown>[], tokensPerRequest: number | null): Sample {
  const requestsPerSecond = results.reduce((sum, result) => sum + result.requests.total / result.duration, 0)
  const tokensPerSecond = tokensPerRequest === null ? null : requestsPerSecond * tokensPerRequest
  return {
    requestsPerSecond,
    tokensPerSecond,
    p50Ms: Math.max(...results.map((result) => result.latency.p50)),
    p99Ms: Math.max(...results.map((result) => result.latency.p99)),
    ...serverColumns(watched, requestsPerSecond, tokensPerSecond),
    errors: results.reduce((sum, result) => sum + result.errors + result.non2xx + result.timeouts, 0),
  }
}

/**
 * The servers' memory (the largest process) and CPU (added up), the load
 * generator's CPU while they were watched, and the servers' CPU per token and per request.
 */
function serverColumns(watched: Watched<unknown>[], requestsPerSecond: number, tokensPerSecond: number | null): Pick<Sample, 'serverRssMb' | 'serverCpuPercent' | 'serverEventLoopCpuPercent' | 'loadGeneratorCpuPercent' | 'cpuUsPerToken' | 'cpuUsPerRequest'> {
  const cpuPercent = watched.reduce((sum, w) => sum + w.cpuPercent, 0)
  const cpuUsPer = (perSecond: number | null) => (perSecond ? ((cpuPercent / 100) * 1e6) / perSecond : null)
  return {
    cpuUsPerToken: cpuUsPer(tokensPerSecond),
    cpuUsPerRequest: cpuUsPer(requestsPerSecond),
    serverRssMb: Math.round(Math.max(...watched.map((w) => w.peakRssMb))),
    serverCpuPercent: Math.round(cpuPercent),
    serverEventLoopCpuPercent: Math.round(watched.reduce((sum, w) => sum + w.mainThreadCpuPercent, 0)),
    loadGeneratorCpuPercent: Math.round(watched[0]!.ownCpuPercent),
  }
}

/** A row that signs without HTTP: signatures per second, and the CPU of one signature when known. */
function signaturesSample(perSecond: number, cpuUsPerToken: number | null = null): Sample {
  return { requestsPerSecond: 0, tokensPerSecond: perSecond, p50Ms: null, p99Ms: null, serverRssMb: null, serverCpuPercent: null, serverEventLoopCpuPercent: null, loadGeneratorCpuPercent: null, cpuUsPerToken, cpuUsPerRequest: null, errors: 0 }
}

/**
 * An HTTP row: autocannon against one server (or, for replicas, the connections
 * split evenly over several at once), watching the servers' processes, after
 * `warmUpSeconds` of warm-up.
 */
function httpProbe(name: string, what: string, servers: Server[], path: string, request: Omit<LoadOptions, 'url'>, tokensPerRequest: number | null, warmUpSeconds = 1): Probe {
  const connections = Math.max(1, Math.floor(CONNECTIONS / servers.length))
  const run = (seconds: number) => Promise.all(servers.map((server) => load({ ...request, url: `${server.url}${path}`, seconds, connections })))
  return {
    name,
    what,
    warmUp: async () => { await run(warmUpSeconds) },
    sample: async (seconds) => {
      // The first server's watch runs the load; the others are watched meanwhile.
      const watched = await Promise.all(servers.map((server, i) => watchProcess(server.pid, i === 0 ? () => run(seconds) : () => new Promise((resolve) => setTimeout(resolve, seconds * 1000)))))
      return loadSample(watched[0]!.result as autocannon.Result[], watched, tokensPerRequest)
    },
  }
}

/** A crypto-limit row: node:crypto signing on every core (or on `threads`), no HTTP (bench/lib/crypto-limit.ts). */
function cryptoProbe(alg: Alg, signingInput: string, threads = availableParallelism()): Probe {
  return {
    name: threads === availableParallelism() ? `crypto limit ${alg}` : `crypto limit ${alg}, ${threads} thread${threads === 1 ? '' : 's'}`,
    what: `node:crypto signing on ${threads} thread${threads === 1 ? '' : 's'}, no HTTP`,
    sample: async (seconds) => {
      const { perSecond, cpuUsPerSignature } = await cryptoLimit(alg, signingInput, seconds * 1000, threads)
      return signaturesSample(perSecond, cpuUsPerSignature)
    },
  }
}

/** Latency at a steady `rate` (requests spread evenly, bench/lib/paced.ts), watching the server. */
function pacedProbe(name: string, what: string, pid: number, options: LoadOptions, rate: number): Probe {
  return {
    name,
    what,
    sample: async (seconds) => {
      const watched = await watchProcess(pid, () => paced({ ...requestShape(options), url: options.url, rate, seconds, connections: CONNECTIONS }))
      const { requestsPerSecond, p50Ms, p99Ms, errors } = watched.result
      return { requestsPerSecond, tokensPerSecond: requestsPerSecond, p50Ms, p99Ms, ...serverColumns([watched], requestsPerSecond, requestsPerSecond), errors }
    },
  }
}

/** In-process jsonwebtoken.sign on one thread: what apps do today with a secret in process.env. */
function jsonwebtokenProbe(alg: 'ES256' | 'RS256'): Probe {
  return {
    name: `jsonwebtoken.sign ${alg}`,
    what: 'in-process signing, one thread (the status quo)',
    sample: async (seconds) => {
      const { privateKey } = await generateKeyPair(alg, 2048)
      const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
      const claims = BENCH_CLAIMS
      const started = Date.now()
      let count = 0
      while (Date.now() < started + seconds * 1000) {
        jsonwebtoken.sign(claims, pem, { algorithm: alg, expiresIn: 600 })
        count++
      }
      return signaturesSample(count / ((Date.now() - started) / 1000))
    },
  }
}

/** Adds measured rows to the table, and says each on stderr. */
function record(measured: Measured[]): Measured[] {
  for (const { row } of measured) {
    rows.push(row)
    const rate = row.requestsPerSecond === 0 ? `${Math.round(row.tokensPerSecond ?? 0)} signatures/s` : `${Math.round(row.requestsPerSecond)} req/s, p99 ${row.p99Ms?.toFixed(1)} ms`
    process.stderr.write(`  ${row.name}: ${rate}${row.errors ? `, ${row.errors} errors` : ''}\n`)
  }
  return measured
}

/** Measures probes side by side (alternating rounds, bench/lib/rounds.ts) and records their rows. */
async function measure(...probes: Probe[]): Promise<Measured[]> {
  return record(await alternate(probes, ROUNDS, ROUND_SECONDS))
}

/** Measures one probe in a single run of `seconds` and records its row. */
async function measureOnce(probe: Probe, seconds: number): Promise<Row> {
  return record(await alternate([probe], 1, seconds))[0]!.row
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  child.kill('SIGTERM')
  await new Promise((resolve) => child.once('exit', resolve))
}

/** ES256 and RS256 signing through SoftHSM2 (pkcs11 keysets), beside the software rows. */
async function hsmRows(masterKey: string, adminToken: string): Promise<void> {
  const token = softHsmToken()
  if (!token) {
    process.stderr.write('  SoftHSM2 not installed: PKCS#11 rows skipped\n')
    return
  }
  const dir = mkdtempSync(join(tmpdir(), 'signet-bench-hsm-db-'))
  try {
    const server = await startSignet({ ...token.env, SIGNET_MASTER_KEY: masterKey, SIGNET_DB: join(dir, 'signet.db') }, adminToken, [
      { name: 'hsm-es256', alg: 'ES256', backend: 'pkcs11' },
      { name: 'hsm-rs256', alg: 'RS256', backend: 'pkcs11' },
    ])
    for (const alg of ['ES256', 'RS256']) {
      await measure(httpProbe(`POST /v1/sign ${alg} SoftHSM2`, 'pkcs11 keyset: C_Sign inside the token', [{ pid: server.child.pid!, url: server.url }], '/v1/sign', { method: 'POST', body: signRequestBody(`hsm-${alg.toLowerCase()}`), headers: { authorization: `Bearer ${server.token}` } }, 1))
    }
    await stop(server.child)
  } finally {
    token.remove()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Sign and JWKS with two replicas sharing one PostgreSQL schema, beside SQLite's rows. */
async function postgresRows(masterKey: string, adminToken: string): Promise<void> {
  const database = await postgresSchema(process.env.BENCH_DATABASE_URL ?? process.env.SIGNET_TEST_DATABASE_URL)
  if (!database) {
    process.stderr.write('  no PostgreSQL (BENCH_DATABASE_URL or SIGNET_TEST_DATABASE_URL): replica rows skipped\n')
    return
  }
  try {
    const env = { SIGNET_MASTER_KEY: masterKey, SIGNET_DATABASE_URL: database.url }
    const first = await startSignet(env, adminToken, [])
    const second = await spawnSignet(env)
    const servers = [{ pid: first.child.pid!, url: first.url }, { pid: second.child.pid!, url: second.url }]
    const client = { authorization: `Bearer ${first.token}` }
    // The client made through the first replica reaches the second by notification.
    for (let tries = 0; (await fetch(`${second.url}/v1/sign`, { method: 'POST', headers: { ...client, 'content-type': 'application/json' }, body: signRequestBody('default') })).status !== 200; tries++) {
      if (tries > 100) throw new Error('the second replica never saw the client')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await measure(httpProbe('POST /v1/sign ES256, 2 replicas on PostgreSQL', 'the load split over two replicas sharing one PostgreSQL schema', servers, '/v1/sign', { method: 'POST', body: signRequestBody('default'), headers: client }, 1))
    await measure(httpProbe('GET /.well-known/jwks.json, 2 replicas on PostgreSQL', 'precomputed JWK Set bytes, from both replicas', servers, '/.well-known/jwks.json', {}, null))
    await stop(first.child)
    await stop(second.child)
  } finally {
    await database.drop()
  }
}

/**
 * ES256 signing by `signet serve` with SIGNET_WORKERS=1 and with SIGNET_WORKERS=auto,
 * side by side, each on its own database. Null on a machine with one core.
 */
async function workerRows(masterKey: string, adminToken: string): Promise<{ count: number; one: Measured; auto: Measured } | null> {
  const count = availableParallelism()
  if (count < 2) {
    process.stderr.write('  one core: workers rows skipped\n')
    return null
  }
  const dirs = [mkdtempSync(join(tmpdir(), 'signet-bench-workers-1-')), mkdtempSync(join(tmpdir(), 'signet-bench-workers-auto-'))]
  try {
    // Both started fresh, each on its own database, and warmed up alike per process:
    // the pool's warm-up is spread over its workers, so it gets `count` times as long.
    const [single, pool] = await Promise.all(['1', 'auto'].map((workers, i) =>
      startSignet({ SIGNET_MASTER_KEY: masterKey, SIGNET_DB: join(dirs[i]!, 'signet.db'), SIGNET_WORKERS: workers }, adminToken, [])))
    const probe = (server: typeof single, name: string, what: string, warmUpSeconds: number) =>
      httpProbe(name, what, [{ pid: server!.child.pid!, url: server!.url }], '/v1/sign', { method: 'POST', body: signRequestBody('default'), headers: { authorization: `Bearer ${server!.token}` } }, 1, warmUpSeconds)
    const [one, auto] = await measure(
      probe(single, 'POST /v1/sign ES256, workers=1', 'SIGNET_WORKERS=1: one serving process', 1),
      probe(pool, `POST /v1/sign ES256, workers=auto (${count})`, `SIGNET_WORKERS=auto: ${count} serving processes on one listener, one SQLite file`, count),
    )
    await Promise.all([stop(single!.child), stop(pool!.child)])
    return { count, one: one!, auto: auto! }
  } finally {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * A workload token for `server` (docs/workload-identity.md): registers an issuer
 * with a static JWK Set made here, binds a client to a subject of it, and signs a
 * token shaped like a Kubernetes service-account token, valid for the whole run.
 */
async function workloadToken(server: { url: string }, adminToken: string): Promise<string> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', 2048)
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'ES256', use: 'sig' }
  const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }
  const issuer = 'https://kubernetes.default.svc.cluster.local'
  await json(`${server.url}/v1/admin/issuers`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'bench-cluster', issuer, jwks: { keys: [jwk] }, audiences: ['signet'] }) })
  const subject = 'system:serviceaccount:bench:app'
  await json(`${server.url}/v1/admin/clients`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'bench-workload', keysets: '*', scopes: ['sign'], identity: { issuer: 'bench-cluster', subject } }) })
  return new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'bench-1' }).setIssuer(issuer).setAudience('signet').setSubject(subject)
    .setIssuedAt().setExpirationTime('1h').sign(privateKey)
}

/** Seconds from spawning `signet serve` to /readyz 200 on a database with 100 keysets of 3 keys each. */
async function startupTime(masterKey: string): Promise<{ ms: number; keys: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'signet-bench-start-'))
  const db = join(dir, 'signet.db')
  const signet = await Signet.open({ config: loadConfig({ SIGNET_MASTER_KEY: masterKey, SIGNET_DB: db }), logger: pino({ level: 'silent' }) })
  for (let i = 0; i < 100; i++) {
    await signet.keys.createKeyset({ name: `ks-${i}` }, 'bench')
    await signet.keys.rotate(`ks-${i}`, 'scheduled', 'bench')
    await signet.keys.rotate(`ks-${i}`, 'scheduled', 'bench')
  }
  const keys = (await signet.storage.snapshot()).keys.length
  await signet.close()
  const started = Date.now()
  const { child, url } = await spawnSignet({ SIGNET_MASTER_KEY: masterKey, SIGNET_DB: db, SIGNET_DEFAULT_KEYSET: 'ks-0' })
  for (;;) {
    if (child.exitCode !== null) throw new Error(`signet serve exited with ${child.exitCode} before /readyz answered 200`)
    const response = await fetch(`${url}/readyz`).catch(() => null)
    if (response?.status === 200) break
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  const ms = Date.now() - started
  await stop(child)
  rmSync(dir, { recursive: true, force: true })
  return { ms, keys }
}

function table(): string {
  const head = '| row | what it measures | req/s | tokens/s | p50 ms | p99 ms | server RSS MB | server CPU % | of which event loop % | load generator CPU % |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|'
  const fmt = (n: number | null, digits = 0) => (n === null ? '' : n.toFixed(digits))
  return [head, ...rows.map((r) => `| ${r.name} | ${r.what} | ${r.requestsPerSecond ? fmt(r.requestsPerSecond) : ''} | ${fmt(r.tokensPerSecond)} | ${fmt(r.p50Ms, 1)} | ${fmt(r.p99Ms, 1)} | ${fmt(r.serverRssMb)} | ${fmt(r.serverCpuPercent)} | ${fmt(r.serverEventLoopCpuPercent)} | ${fmt(r.loadGeneratorCpuPercent)} |`)].join('\n')
}

async function main(): Promise<void> {
  const started = Date.now()
  const dir = mkdtempSync(join(tmpdir(), 'signet-bench-'))
  const masterKey = randomBytes(32).toString('base64')
  const adminToken = randomBytes(32).toString('base64url')
  process.stderr.write(`signet bench: rows side by side in ${ROUNDS} alternating rounds of ${ROUND_SECONDS} s (ratios: median of the rounds, each round in brackets), latency rows ${SECONDS} s, ${CONNECTIONS} connections, ${availableParallelism()} cores\n`)

  const keysets = { ES256: 'default', RS256: 'rs256', PS256: 'ps256', EdDSA: 'eddsa' } as const
  const signet = await startSignet({ SIGNET_MASTER_KEY: masterKey, SIGNET_DB: join(dir, 'signet.db') }, adminToken,
    Object.entries(keysets).filter(([, name]) => name !== 'default').map(([alg, name]) => ({ name, alg })))
  const server: Server = { pid: signet.child.pid!, url: signet.url }
  const client = { authorization: `Bearer ${signet.token}` }
  const sample = await json(`${signet.url}/v1/sign`, { method: 'POST', headers: { ...client, 'content-type': 'application/json' }, body: signRequestBody('default') })
  const signingInputFor = async (keyset: string) => {
    const signed = await json(`${signet.url}/v1/sign`, { method: 'POST', headers: { ...client, 'content-type': 'application/json' }, body: signRequestBody(keyset) })
    return signingInputOf(signed.token)
  }

  const jwksBytes = (await (await fetch(`${signet.url}/.well-known/jwks.json`)).arrayBuffer()).byteLength
  const es256Input = await signingInputFor(keysets.ES256)
  const ceiling = await spawnCeiling(sample.token.length, jwksBytes, es256Input)
  const ceilingServer: Server = { pid: ceiling.child.pid!, url: ceiling.url }
  const rs256Input = await signingInputFor(keysets.RS256)
  const bare = await spawnBareSigner('RS256', rs256Input)
  const signProbe = (alg: keyof typeof keysets) =>
    httpProbe(`POST /v1/sign ${alg}`, `one token per request, keyset ${keysets[alg]}`, [server], '/v1/sign', { method: 'POST', body: signRequestBody(keysets[alg]), headers: client }, 1)
  const batchBody = JSON.stringify({ items: Array.from({ length: 100 }, () => ({ claims: BENCH_CLAIMS, ttl: 600 })) })

  // Each group's rows are measured in alternation: the rows of each target side by side.
  process.stderr.write(`JWKS against the ceiling server's GET\n`)
  const [ceilingGet, jwks] = await measure(
    httpProbe('ceiling GET', 'plain fastify GET, one log line per request, answers as many bytes as the JWK Set', [ceilingServer], '/jwks', {}, null),
    httpProbe('GET /.well-known/jwks.json', 'precomputed JWK Set bytes', [server], '/.well-known/jwks.json', {}, null),
  )
  process.stderr.write('ES256 against the ceiling server\n')
  const [ceilingPost, ceilingSigner, es256] = await measure(
    httpProbe('ceiling POST', 'plain fastify POST, one log line per request, validates a sign body, answers the same size, no signing', [ceilingServer], '/v1/sign', { method: 'POST', body: signRequestBody('default') }, null),
    httpProbe('ceiling POST + ES256 signature', 'the same, and one ES256 signature on the thread pool: no authentication, claims checks or metrics', [ceilingServer], '/v1/sign/signed', { method: 'POST', body: signRequestBody('default') }, 1),
    signProbe('ES256'),
  )
  await stop(ceiling.child)
  process.stderr.write('RS256 against the bare signer and the signature alone\n')
  const [bareRs256, rs256, limitRs256] = await measure(
    httpProbe('bare signer RS256', 'node:http + crypto.sign on the thread pool, nothing else: the most HTTP signing reaches here', [{ pid: bare.child.pid!, url: bare.url }], '', { method: 'POST', body: signRequestBody(keysets.RS256) }, 1),
    signProbe('RS256'),
    cryptoProbe('RS256', rs256Input),
  )
  await stop(bare.child)
  process.stderr.write('batch against the bare signer and the signature alone, on every core and on one\n')
  const bareEs256 = await spawnBareSigner('ES256', es256Input)
  const [batch, bareBatch, limitEs256, limitEs256OneThread] = await measure(
    httpProbe('POST /v1/sign/batch ES256', '100 tokens per request', [server], '/v1/sign/batch', { method: 'POST', body: batchBody, headers: client }, 100),
    httpProbe('bare signer batch ES256', 'node:http + 100 crypto.sign calls on the thread pool per request, nothing else', [{ pid: bareEs256.child.pid!, url: bareEs256.url }], '', { method: 'POST', body: batchBody }, 100),
    cryptoProbe('ES256', es256Input),
    cryptoProbe('ES256', es256Input, 1),
  )
  await stop(bareEs256.child)
  process.stderr.write('PS256 and EdDSA\n')
  await measure(signProbe('PS256'), cryptoProbe('PS256', await signingInputFor(keysets.PS256)))
  await measure(signProbe('EdDSA'), cryptoProbe('EdDSA', await signingInputFor(keysets.EdDSA)))

  process.stderr.write('workload token against bearer token\n')
  const workload = await workloadToken(signet, adminToken)
  const [bearerSign, workloadSign] = await measure(
    httpProbe('POST /v1/sign ES256, bearer token', 'a signet_ client token', [server], '/v1/sign', { method: 'POST', body: signRequestBody(keysets.ES256), headers: client }, 1),
    httpProbe('POST /v1/sign ES256, workload token', 'a Kubernetes-shaped workload JWT, verified once then cached by its hash', [server], '/v1/sign', { method: 'POST', body: signRequestBody(keysets.ES256), headers: { authorization: `Bearer ${workload}` } }, 1),
  )

  process.stderr.write('latency at half the measured maximum (at most 2,000 requests/s)\n')
  const halfRate: Record<string, Row> = {}
  for (const [alg, max] of [['ES256', es256!.row], ['RS256', rs256!.row]] as const) {
    const rate = Math.max(1, Math.min(MAX_PACED_RATE, Math.floor(max.requestsPerSecond / 2)))
    halfRate[alg] = await measureOnce(pacedProbe(`POST /v1/sign ${alg} at ${rate} req/s`, 'half the maximum rate, evenly spread: latency', server.pid, { url: `${signet.url}/v1/sign`, method: 'POST', body: signRequestBody(keysets[alg]), headers: client }, rate), SECONDS)
  }

  process.stderr.write('workers=auto against workers=1\n')
  await stop(signet.child)
  const workers = await workerRows(masterKey, adminToken)

  process.stderr.write('PKCS#11 (SoftHSM2) and PostgreSQL replicas\n')
  await hsmRows(masterKey, adminToken)
  await postgresRows(masterKey, adminToken)

  process.stderr.write('status quo\n')
  const jwtEs = (await measureOnce(jsonwebtokenProbe('ES256'), STATUS_QUO_SECONDS)).tokensPerSecond!
  const jwtRs = (await measureOnce(jsonwebtokenProbe('RS256'), STATUS_QUO_SECONDS)).tokensPerSecond!

  process.stderr.write('start-up\n')
  const startup = await startupTime(masterKey)

  // serverRssMb is the largest process of a server (bench/lib/process-stats.ts): per serving process.
  // Signet's rows only: the ceiling server and the bare signers are other programs.
  const peakRss = Math.max(...rows.filter((r) => !REFERENCE_ROW.test(r.name)).map((r) => r.serverRssMb ?? 0))
  const tokens = (sample: Sample) => sample.tokensPerSecond
  const requests = (sample: Sample) => sample.requestsPerSecond
  // Ratios of rows measured side by side: the median of the per-round ratios.
  const cpuPerToken = (sample: Sample) => sample.cpuUsPerToken
  const ratio = (measure: string, numerator: Measured, denominator: Measured, pick: (sample: Sample) => number | null, wanted: { atLeast: number } | { atMost: number } | null) => {
    const { value, rounds } = pairedRatio(numerator.samples, denominator.samples, pick)
    if (wanted === null) return { measure, value, rounds, target: '', pass: true }
    if ('atLeast' in wanted) return { measure, value, rounds, target: `>= ${wanted.atLeast.toFixed(2)}`, pass: value >= wanted.atLeast }
    return { measure, value, rounds, target: `<= ${wanted.atMost.toFixed(2)}`, pass: value <= wanted.atMost }
  }
  const single = (measure: string, value: number, target: string, pass: boolean) => ({ measure, value, rounds: null, target, pass })
  const targets = [
    ratio('RS256 /v1/sign tokens/s ÷ bare signer RS256 tokens/s', rs256!, bareRs256!, tokens, { atLeast: 0.9 }),
    ratio('RS256 /v1/sign server CPU per token ÷ CPU of one RS256 signature alone', rs256!, limitRs256!, cpuPerToken, { atMost: 1.2 }),
    ratio('ES256 /v1/sign req/s ÷ ceiling POST req/s (plain fastify, logs, no signing)', es256!, ceilingPost!, requests, { atLeast: 0.55 }),
    ratio('ES256 /v1/sign/batch server CPU per token ÷ CPU of one ES256 signature alone', batch!, limitEs256!, cpuPerToken, { atMost: 1.15 }),
    ratio('JWKS req/s ÷ ceiling GET req/s (plain fastify, logs)', jwks!, ceilingGet!, requests, { atLeast: 0.8 }),
    single(`ES256 p99 paced at ${halfRate.ES256!.requestsPerSecond.toFixed(0)} req/s (ms)`, halfRate.ES256!.p99Ms!, '< 5', halfRate.ES256!.p99Ms! < 5),
    single(`RS256 p99 paced at ${halfRate.RS256!.requestsPerSecond.toFixed(0)} req/s (ms)`, halfRate.RS256!.p99Ms!, '< 15', halfRate.RS256!.p99Ms! < 15),
    single('RSS per serving process under load (MB)', peakRss, '< 200', peakRss < 200),
    ratio('ES256 /v1/sign with a workload token req/s ÷ with a bearer token', workloadSign!, bearerSign!, requests, { atLeast: 0.9 }),
    ...(workers ? [
      ratio(`workers=auto (${workers.count}) ES256 /v1/sign server CPU per token ÷ workers=1`, workers.auto, workers.one, cpuPerToken, { atMost: 1.1 }),
      ratio(`workers=auto (${workers.count}) ES256 /v1/sign req/s ÷ workers=1 (information: on 2 cores the load generator takes its share)`, workers.auto, workers.one, requests, null),
    ] : []),
    single(`start to /readyz 200 with 100 keysets, ${startup.keys} keys (ms)`, startup.ms, '< 1000', startup.ms < 1000),
    ratio('bare signer RS256 tokens/s ÷ RS256 crypto limit on all cores: the most HTTP signing reaches here (information)', bareRs256!, limitRs256!, tokens, null),
    // Floors under the CPU targets: what the least a server does already costs here.
    ratio('bare signer RS256 server CPU per token ÷ one RS256 signature alone: node:http and nothing else (information)', bareRs256!, limitRs256!, cpuPerToken, null),
    single('(ceiling POST server CPU per request + one RS256 signature) ÷ one RS256 signature: a fastify service that logs each request, without the thread-pool hand-off (information)',
      (ceilingPost!.row.cpuUsPerRequest! + limitRs256!.row.cpuUsPerToken!) / limitRs256!.row.cpuUsPerToken!, '', true),
    // Where the ES256 target's gap lies: the signature itself, and Signet's own work per request.
    ratio('ceiling POST + ES256 signature req/s ÷ ceiling POST req/s: what signing costs a fastify service that logs (information)', ceilingSigner!, ceilingPost!, requests, null),
    ratio('ES256 /v1/sign req/s ÷ ceiling POST + ES256 signature req/s: what Signet adds per request (authentication, claims checks, metrics) (information)', es256!, ceilingSigner!, requests, null),
    ratio('bare signer batch ES256 server CPU per token ÷ one ES256 signature alone: node:http and nothing else (information)', bareBatch!, limitEs256!, cpuPerToken, null),
    ratio('CPU of one ES256 signature with every core signing ÷ with one core signing: what running every core costs this machine (information)', limitEs256!, limitEs256OneThread!, cpuPerToken, null),
    ratio('RS256 /v1/sign tokens/s ÷ RS256 crypto limit on all cores (information)', rs256!, limitRs256!, tokens, null),
    ratio('ES256 /v1/sign/batch tokens/s ÷ ES256 crypto limit on all cores (information)', batch!, limitEs256!, tokens, null),
    single('ES256 /v1/sign tokens/s ÷ jsonwebtoken.sign ES256 on one thread (information)', es256!.row.tokensPerSecond! / jwtEs, '', true),
    single('RS256 /v1/sign tokens/s ÷ jsonwebtoken.sign RS256 on one thread (information)', rs256!.row.tokensPerSecond! / jwtRs, '', true),
  ]
  const errors = rows.reduce((sum, row) => sum + row.errors, 0)

  const machine = { cpus: availableParallelism(), model: cpus()[0]?.model ?? 'unknown', memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version, os: `${platform()} ${release()}` }
  const markdown = [
    table(),
    '',
    '| target | value | wanted | met |',
    '|---|---:|---:|:---:|',
    ...targets.map((t) => `| ${t.measure} | ${t.value.toFixed(2)}${t.rounds ? ` (${t.rounds.map((r) => r.toFixed(2)).join(', ')})` : ''} | ${t.target} | ${t.target ? (t.pass ? 'yes' : 'NO') : ''} |`),
    '',
    `Machine: ${machine.cpus} cores (${machine.model}), ${machine.memoryGb} GiB, Node ${machine.node}, ${machine.os}. rows side by side in ${ROUNDS} alternating rounds of ${ROUND_SECONDS} s (ratios: median of the rounds, each round in brackets), latency rows ${SECONDS} s, ${CONNECTIONS} connections, failed requests: ${errors}. Run took ${Math.round((Date.now() - started) / 1000)} s.`,
  ].join('\n')
  process.stdout.write(`${markdown}\n`)

  const date = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*/, '')
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
  const file = join(ROOT, 'bench/results', `${date}.json`)
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), machine, rounds: ROUNDS, roundSeconds: ROUND_SECONDS, connections: CONNECTIONS, rows, targets, failedRequests: errors, markdown }, null, 2)}\n`)
  process.stderr.write(`written ${file}\n`)
  rmSync(dir, { recursive: true, force: true })
  killServers()
  process.exitCode = errors > 0 ? 1 : 0
}

main().catch((error) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`)
  killServers()
  process.exit(1)
})
