import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LeakWatch } from '../helpers/secrets.js'
import { cliJson, fileTempDir, requireBuild, runCli, type CliResult } from './helpers.js'

/**
 * `signet clients create --subject --required-claim` and `signet clients update`:
 * the claim policy and policy changes from the command line, on the database.
 */
const dir = fileTempDir('signet-cli-policy-')
const db = join(dir.path, 'signet.db')
const watch = new LeakWatch()
let env: Record<string, string>
const outputs: CliResult[] = []

async function run(args: string[]): Promise<CliResult> {
  const result = await runCli(args, { env })
  // `clients create` prints the new token once, by design; everything else is scanned.
  if (args[1] !== 'create') outputs.push(result)
  return result
}

async function json<T = any>(args: string[]): Promise<T> {
  const result = await run([...args, '--json'])
  expect(result.code, `signet ${args.join(' ')}: ${result.stderr}`).toBe(0)
  return JSON.parse(result.stdout) as T
}

/** A failure: exit `code`, exactly one line on stderr, which names `what`. */
async function refused(args: string[], what: string, code = 1): Promise<void> {
  const result = await run(args)
  expect(result.code, `signet ${args.join(' ')}: ${result.stderr}`).toBe(code)
  const lines = result.stderr.trimEnd().split('\n')
  expect(lines, result.stderr).toHaveLength(1)
  expect(lines[0]).toContain(what)
}

const auditEvents = async () => (await cliJson<{ events: number }>(['audit', 'verify'], env)).events

beforeAll(async () => {
  requireBuild()
  const init = await cliJson<{ masterKey: string; adminToken: string }>(['init'], { SIGNET_DB: db })
  // Client rows are authenticated under the master key, so writing them needs it.
  env = { SIGNET_DB: db, SIGNET_MASTER_KEY: init.masterKey }
  watch.secret('the master key', init.masterKey)
  watch.secret('the admin token', init.adminToken)
})
afterAll(() => {
  for (const output of outputs) {
    watch.record(output.stdout)
    watch.record(output.stderr)
  }
  watch.assertClean()
  dir.remove()
})

describe('signet clients create with a claim policy', () => {
  it('takes --subject and --required-claim, each repeatable', async () => {
    const created = await json(['clients', 'create', 'portal', '--subject', 'user-*', '--subject', '*@acme.example', '--required-claim', 'tenant', '--required-claim', 'role', '--audiences', 'api'])
    watch.secret('the portal token', created.token)
    expect(created).toMatchObject({ subjects: ['user-*', '*@acme.example'], requiredClaims: ['tenant', 'role'], audiences: ['api'] })
    const table = await run(['clients', 'list'])
    expect(table.stdout).toContain('user-*,*@acme.example')
  })

  it('refuses an empty pattern or one over 256 characters, and writes nothing', async () => {
    const before = await auditEvents()
    // The refusal names the flag, not the API field.
    await refused(['clients', 'create', 'x', '--subject', ''], '--subject must be')
    await refused(['clients', 'create', 'x', '--subject', 'x'.repeat(257)], '--subject must be')
    await refused(['clients', 'create', 'x', '--required-claim', ''], '--required-claim must be')
    expect(await auditEvents()).toBe(before)
  })
})

describe('signet clients update', () => {
  let id: string

  beforeAll(async () => {
    const created = await json(['clients', 'create', 'billing', '--keysets', 'default', '--audiences', 'api', '--max-ttl', '60'])
    watch.secret('the billing token', created.token)
    id = created.id
  })

  it('changes the options given and leaves the others, audited as client.update', async () => {
    const before = await auditEvents()
    const updated = await json(['clients', 'update', id, '--scopes', 'sign,verify', '--subject', 'svc-*', '--required-claim', 'tenant'])
    expect(updated).toMatchObject({ id, keysets: ['default'], scopes: ['sign', 'verify'], audiences: ['api'], maxTtl: 60, subjects: ['svc-*'], requiredClaims: ['tenant'] })
    expect(await auditEvents()).toBe(before + 1)
  })

  it('clears limits with the --no- options, and takes keysets *', async () => {
    const updated = await json(['clients', 'update', id, '--no-audiences', '--no-max-ttl', '--no-subjects', '--no-required-claims', '--keysets', '*'])
    expect(updated).toMatchObject({ keysets: '*', audiences: null, maxTtl: null, subjects: null, requiredClaims: null })
    const table = await run(['clients', 'update', id, '--audiences', 'api,web'])
    expect(table.code).toBe(0)
    expect(table.stdout).toContain('api,web')
  })

  it('refuses bad input with one line naming it, and changes nothing', async () => {
    const before = await auditEvents()
    const stored = await json(['clients', 'list'])
    await refused(['clients', 'update', id], 'nothing to change', 2)
    await refused(['clients', 'update', id, '--keysets', 'Bad!'], 'keysets')
    await refused(['clients', 'update', id, '--scopes', 'root'], 'scopes')
    await refused(['clients', 'update', id, '--max-ttl', '0'], '--max-ttl', 2)
    await refused(['clients', 'update', id, '--subject', 'a', '--no-subjects'], 'contradict', 2)
    await refused(['clients', 'update', 'no-such-client', '--max-ttl', '5'], 'no-such-client')
    expect(await auditEvents()).toBe(before)
    expect(await json(['clients', 'list'])).toEqual(stored)
  })

  it('refuses to change a revoked client', async () => {
    await json(['clients', 'revoke', id])
    await refused(['clients', 'update', id, '--max-ttl', '5'], 'already revoked')
  })

  it('answers --help', async () => {
    const help = await run(['clients', 'update', '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/^Usage: signet clients update/)
    for (const option of ['--keysets', '--scopes', '--audiences', '--no-audiences', '--max-ttl', '--subject', '--no-subjects', '--required-claim', '--no-required-claims']) expect(help.stdout).toContain(option)
  })
})
