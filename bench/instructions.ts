/**
 * `npm run bench:instructions`: the user-space instructions one request costs,
 * counted by valgrind's callgrind, for Signet's POST /v1/sign (ES256, bearer token)
 * and the ceiling server's two POST routes (without and with an ES256 signature).
 *
 * Times on a shared machine drift by a fifth between runs, and two identical
 * processes can differ by a tenth (README, Performance), so a change of a few
 * percent in Signet's own work cannot be seen in `npm run bench`. Instruction
 * counts can: with V8 in --predictable mode (no background compiler or GC threads,
 * a fixed hash seed) they repeat to about half a percent. Each server runs under
 * callgrind; after a warm-up of 2N requests the counters are zeroed, N requests
 * are sent, and the counts (every thread) are divided by N. Instructions are not
 * time: they leave out the kernel (system calls, wake-ups of other threads) and
 * cache misses. Needs valgrind (Debian: apt-get install valgrind).
 *
 * Usage: node --import tsx bench/instructions.ts [N = 1000] [signet]
 * With `signet`, only Signet's row is counted (about a minute): enough to compare
 * two versions of Signet's own code.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { json, killServers, spawnServer } from './lib/servers.js'

const REQUESTS = Number(process.argv[2] ?? 1000)
const SIGNET_ONLY = process.argv[3] === 'signet'
const CONNECTIONS = 8
const claims = { sub: 'user-42', aud: 'api', scope: 'read write' }
const body = JSON.stringify({ keyset: 'default', claims, ttl: 600 })

interface Counted {
  name: string
  instructionsPerRequest: number
}

/** Starts `args` under callgrind and counts the instructions of REQUESTS requests to `path` after a warm-up. */
async function count(name: string, args: string[], env: NodeJS.ProcessEnv, pattern: RegExp, stream: 'stdout' | 'stderr', path: string, prepare: (url: string) => Promise<Record<string, string>>): Promise<Counted> {
  const dir = mkdtempSync(join(tmpdir(), 'signet-instructions-'))
  try {
    const valgrind = ['--tool=callgrind', `--callgrind-out-file=${join(dir, 'callgrind.out')}`, process.execPath, '--predictable', ...args]
    const { child, url } = await spawnServer(valgrind, env, pattern, stream, 'valgrind')
    const headers = { 'content-type': 'application/json', ...(await prepare(url)) }
    const send = async (amount: number) => {
      const result = await autocannon({ url: `${url}${path}`, method: 'POST', headers, body, connections: CONNECTIONS, amount })
      if (result.non2xx + result.errors > 0) throw new Error(`${name}: ${result.non2xx + result.errors} failed requests`)
    }
    await send(2 * REQUESTS)
    execFileSync('callgrind_control', ['--zero', String(child.pid)], { stdio: 'ignore' })
    await send(REQUESTS)
    execFileSync('callgrind_control', ['--dump', String(child.pid)], { stdio: 'ignore' })
    child.kill('SIGKILL')
    // A dump writes callgrind.out.1; its "summary:" line is the total of every thread.
    const dumps = readdirSync(dir).filter((file) => /^callgrind\.out\.\d+$/.test(file))
    const total = dumps.reduce((sum, file) => sum + Number(/^summary: (\d+)$/m.exec(readFileSync(join(dir, file), 'utf8'))?.[1] ?? Number.NaN), 0)
    if (!Number.isFinite(total) || dumps.length === 0) throw new Error(`${name}: no callgrind dump`)
    return { name, instructionsPerRequest: total / REQUESTS }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function main(): Promise<void> {
  const adminToken = randomBytes(32).toString('base64url')
  const dataDir = mkdtempSync(join(tmpdir(), 'signet-instructions-db-'))
  let signingInput = ''
  const signet = await count('POST /v1/sign ES256', ['--max-semi-space-size=16', '--heap-growing-percent=50', 'bin/signet.cjs', 'serve'], {
    PATH: process.env.PATH,
    SIGNET_PORT: '0',
    SIGNET_MASTER_KEY: randomBytes(32).toString('base64'),
    SIGNET_ADMIN_TOKEN: adminToken,
    SIGNET_DB: join(dataDir, 'signet.db'),
  }, /"url":"([^"]+)"/, 'stdout', '/v1/sign', async (url) => {
    const { token } = await json(`${url}/v1/admin/clients`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'instructions', keysets: '*', scopes: ['sign'] }),
    })
    const client = { authorization: `Bearer ${token}` }
    const signed = await json(`${url}/v1/sign`, { method: 'POST', headers: { ...client, 'content-type': 'application/json' }, body })
    signingInput = signed.token.split('.').slice(0, 2).join('.')
    return client
  })
  rmSync(dataDir, { recursive: true, force: true })
  if (SIGNET_ONLY) {
    process.stdout.write(`${signet.name}: ${Math.round(signet.instructionsPerRequest / 1000)}k instructions per request\n`)
    killServers()
    return
  }
  // The ceiling signs Signet's own signing input, so both hash as many bytes.
  const ceilingArgs = ['--import', 'tsx', 'bench/ceiling.ts', '400', '500', signingInput]
  const env = { PATH: process.env.PATH, UV_THREADPOOL_SIZE: '2' }
  const noHeaders = async () => ({})
  const [ceiling, ceilingSigner] = await Promise.all([
    count('ceiling POST', ceilingArgs, env, /ceiling listening (\S+)/, 'stderr', '/v1/sign', noHeaders),
    count('ceiling POST + ES256 signature', ceilingArgs, env, /ceiling listening (\S+)/, 'stderr', '/v1/sign/signed', noHeaders),
  ])
  const thousands = (n: number) => `${Math.round(n / 1000)}k`
  const lines = [
    `| row | instructions per request (${REQUESTS} requests after ${2 * REQUESTS}) |`,
    '|---|---:|',
    ...[ceiling!, ceilingSigner!, signet].map((row) => `| ${row.name} | ${thousands(row.instructionsPerRequest)} |`),
    `| the signature and its hand-off to the pool (ceiling + signature − ceiling) | ${thousands(ceilingSigner!.instructionsPerRequest - ceiling!.instructionsPerRequest)} |`,
    `| Signet's own work (Signet − ceiling + signature) | ${thousands(signet.instructionsPerRequest - ceilingSigner!.instructionsPerRequest)} |`,
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
  killServers()
}

main().catch((error) => {
  process.stderr.write(`bench:instructions failed: ${error instanceof Error ? error.stack : String(error)}\n`)
  killServers()
  process.exit(1)
})
