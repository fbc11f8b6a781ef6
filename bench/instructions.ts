/**
 * `npm run bench:instructions`: the user-space instructions one request costs,
 * counted by valgrind's callgrind, for Signet's POST /v1/sign (ES256, bearer token),
 * the ceiling server's two POST routes (without and with an ES256 signature), and
 * one ES256 signature alone.
 *
 * Times on a shared machine drift by a fifth between runs, and two identical
 * processes can differ by a tenth (README, Performance), so a change of a few
 * percent in Signet's own work cannot be seen in `npm run bench`. Instruction
 * counts can: with V8 in --predictable mode (no background compiler threads, no
 * concurrent or parallel GC) they repeat to within 1%. Each server runs under
 * callgrind; after a warm-up of 2N requests the counters are zeroed, N requests are
 * sent, and the counts (every thread) are divided by N. Instructions are not time:
 * they leave out the kernel (system calls, wake-ups of other threads) and cache
 * misses. Needs valgrind (Debian: apt-get install valgrind). Writes
 * bench/results/instructions-<date>.json.
 *
 * Usage: node --import tsx bench/instructions.ts [N = 1000] [signet]
 * With `signet`, only Signet's row is counted (about a minute): enough to compare
 * two versions of Signet's own code.
 */
import { execFile, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import autocannon from 'autocannon'
import { killServers, MEMORY_FLAGS, ROOT, signingInputOf, signRequestBody, spawnCeiling, startSignet } from './lib/servers.js'

const run = promisify(execFile)
const REQUESTS = Number(process.argv[2] ?? 1000)
const SIGNET_ONLY = process.argv[3] === 'signet'
const CONNECTIONS = 8
const body = signRequestBody('default')

/** valgrind's command line before node's own arguments: callgrind writing into `dir`, V8 made repeatable. */
const underCallgrind = (dir: string): string[] => ['--tool=callgrind', `--callgrind-out-file=${join(dir, 'callgrind.out')}`, process.execPath, '--predictable']

/** The instructions a callgrind output file counts: its "summary:" line adds up every thread. */
function instructionsIn(file: string): number {
  const summary = /^summary: (\d+)$/m.exec(readFileSync(file, 'utf8'))
  if (!summary) throw new Error(`${file} has no summary line`)
  return Number(summary[1])
}

/** The instructions since the counters were zeroed, from the dumps callgrind wrote into `dir` (callgrind.out.1, ...). */
function dumpedInstructions(dir: string): number {
  const dumps = readdirSync(dir).filter((file) => /^callgrind\.out\.\d+$/.test(file))
  if (dumps.length === 0) throw new Error('callgrind wrote no dump')
  return dumps.reduce((sum, file) => sum + instructionsIn(join(dir, file)), 0)
}

/** Warms `url` up with 2N requests, then counts the instructions `child` spends on N more. */
async function countRequests(child: ChildProcess, dir: string, url: string, headers: Record<string, string>): Promise<number> {
  const send = async (amount: number) => {
    // Under callgrind a server runs some 50 times slower; on a busy machine a request
    // outlasted autocannon's default 10 s timeout, so it gets a minute.
    const result = await autocannon({ url, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, connections: CONNECTIONS, amount, timeout: 60 })
    if (result.non2xx + result.errors > 0) throw new Error(`${url}: ${result.non2xx + result.errors} failed requests`)
  }
  await send(2 * REQUESTS)
  await run('callgrind_control', ['--zero', String(child.pid)])
  await send(REQUESTS)
  await run('callgrind_control', ['--dump', String(child.pid)])
  child.kill('SIGKILL')
  return dumpedInstructions(dir) / REQUESTS
}

/** Runs `work` with a fresh directory for callgrind's files, removed afterwards. */
async function inTempDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'signet-instructions-'))
  try {
    return await work(dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Signet's POST /v1/sign, ES256, with a bearer token; also answers a token it signed. */
function countSignet(): Promise<{ perRequest: number; token: string }> {
  return inTempDir(async (dir) => {
    const adminToken = randomBytes(32).toString('base64url')
    // The memory flags on the command line keep bin/signet.cjs from re-executing
    // itself, which would leave callgrind (it does not follow execve by default).
    const launcher = { command: 'valgrind', args: [...underCallgrind(dir), ...MEMORY_FLAGS] }
    const signet = await startSignet({ SIGNET_MASTER_KEY: randomBytes(32).toString('base64'), SIGNET_DB: join(dir, 'signet.db') }, adminToken, [], launcher)
    const headers = { authorization: `Bearer ${signet.token}` }
    const signed = await (await fetch(`${signet.url}/v1/sign`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body })).json() as { token: string }
    return { perRequest: await countRequests(signet.child, dir, `${signet.url}/v1/sign`, headers), token: signed.token }
  })
}

/** A ceiling route (bench/ceiling.ts) answering as many bytes as Signet and signing Signet's signing input. */
function countCeiling(path: string, token: string): Promise<number> {
  return inTempDir(async (dir) => {
    const ceiling = await spawnCeiling(token.length, 500, signingInputOf(token), { command: 'valgrind', args: underCallgrind(dir) })
    return countRequests(ceiling.child, dir, `${ceiling.url}${path}`, {})
  })
}

/**
 * One ES256 signature alone: crypto.sign in a loop over Signet's signing input,
 * run for N and for 3N signatures; the difference over 2N leaves out start-up.
 */
async function countSignature(token: string): Promise<number> {
  const loop = `const { generateKeyPairSync, sign } = require('node:crypto')
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const input = Buffer.from(process.argv[1], 'ascii')
for (let i = 0; i < Number(process.argv[2]); i++) sign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' })`
  const total = (count: number) => inTempDir(async (dir) => {
    await run('valgrind', [...underCallgrind(dir), '-e', loop, signingInputOf(token), String(count)], { cwd: ROOT })
    // Without a dump on request, callgrind writes its file at exit, unnumbered.
    return instructionsIn(join(dir, 'callgrind.out'))
  })
  return ((await total(3 * REQUESTS)) - (await total(REQUESTS))) / (2 * REQUESTS)
}

async function main(): Promise<void> {
  const signet = await countSignet()
  const thousands = (n: number) => `${Math.round(n / 1000)}k`
  if (SIGNET_ONLY) {
    process.stdout.write(`POST /v1/sign ES256: ${thousands(signet.perRequest)} instructions per request\n`)
    return
  }
  // One at a time: each count has the machine to itself.
  const ceiling = await countCeiling('/v1/sign', signet.token)
  const ceilingSigner = await countCeiling('/v1/sign/signed', signet.token)
  const signature = await countSignature(signet.token)
  const rows = [
    { name: 'ES256 signature alone', what: 'crypto.sign in a loop, no HTTP', instructions: signature },
    { name: 'ceiling POST', what: 'bench/ceiling.ts: a fastify POST like Signet\'s that logs, validates and answers the same size, no signing', instructions: ceiling },
    { name: 'ceiling POST + ES256 signature', what: 'the same, and one ES256 signature on the thread pool', instructions: ceilingSigner },
    { name: 'POST /v1/sign ES256', what: 'Signet, a bearer token, keyset default', instructions: signet.perRequest },
    { name: 'the signature\'s hand-off to the pool', what: 'ceiling + signature − ceiling − signature alone', instructions: ceilingSigner - ceiling - signature },
    { name: 'Signet\'s own work', what: 'Signet − (ceiling + signature)', instructions: signet.perRequest - ceilingSigner },
  ]
  const markdown = [
    `| row | what | instructions per request (${REQUESTS} after ${2 * REQUESTS}) |`,
    '|---|---|---:|',
    ...rows.map((row) => `| ${row.name} | ${row.what} | ${thousands(row.instructions)} |`),
  ].join('\n')
  process.stdout.write(`${markdown}\n`)
  const date = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*/, '')
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
  const file = join(ROOT, 'bench/results', `instructions-${date}.json`)
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, requests: REQUESTS, rows, markdown }, null, 2)}\n`)
  process.stderr.write(`written ${file}\n`)
}

main().then(killServers, (error) => {
  process.stderr.write(`bench:instructions failed: ${error instanceof Error ? error.stack : String(error)}\n`)
  killServers()
  process.exit(1)
})
