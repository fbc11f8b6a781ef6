import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliJson, fileTempDir, requireBuild, runCli } from '../cli/helpers.js'
import { issuerKey } from './test-issuer.js'

/** `signet issuers add / list / remove` and `signet clients create --identity`, run as the built binary. */
describe('signet issuers and identity-bound clients', () => {
  const dir = fileTempDir('signet-issuers-')
  const db = join(dir.path, 'signet.db')
  let env: Record<string, string>

  /** A failure: non-zero exit and one line on stderr naming `what`. */
  async function refused(args: string[], what: string, code = 1): Promise<void> {
    const result = await runCli(args, { env })
    expect(result.code, `${args.join(' ')}: ${result.stdout}`).toBe(code)
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1)
    expect(result.stderr).toContain(what)
  }

  beforeAll(async () => {
    requireBuild()
    const init = await cliJson<{ masterKey: string }>(['init'], { SIGNET_DB: db })
    env = { SIGNET_DB: db, SIGNET_MASTER_KEY: init.masterKey }
  })
  afterAll(() => dir.remove())

  it('adds an issuer from a static JWK Set file (kubectl get --raw /openid/v1/jwks) and one by URL, and lists them', async () => {
    const key = await issuerKey('cluster-key', 'RS256')
    const file = join(dir.path, 'jwks.json')
    writeFileSync(file, JSON.stringify({ keys: [key.publicJwk] }))
    const added = await cliJson(['issuers', 'add', 'prod-cluster', '--issuer', 'https://kubernetes.default.svc.cluster.local', '--jwks-file', file], env)
    expect(added).toMatchObject({ name: 'prod-cluster', jwksUri: null, audiences: ['signet'], algorithms: ['RS256', 'ES256'], maxTokenLifetime: 3600 })
    const byUrl = await cliJson(['issuers', 'add', 'spire', '--issuer', 'https://oidc.example.org', '--jwks-uri', 'https://oidc.example.org/keys', '--audiences', 'signet,api', '--algorithms', 'ES256', '--max-token-lifetime', '300'], env)
    expect(byUrl).toMatchObject({ jwksUri: 'https://oidc.example.org/keys', audiences: ['signet', 'api'], algorithms: ['ES256'], maxTokenLifetime: 300 })
    const listed = await cliJson<{ issuers: { name: string }[] }>(['issuers', 'list'], env)
    expect(listed.issuers.map((i) => i.name)).toEqual(['prod-cluster', 'spire'])
    const table = await runCli(['issuers', 'list'], { env })
    expect(table.stdout).toContain('static: 1 key(s)')
  })

  it('refuses bad issuers with one line, changing nothing', async () => {
    await refused(['issuers', 'add', 'x', '--issuer', 'https://x', '--jwks-uri', 'http://x.example/keys'], 'loopback')
    await refused(['issuers', 'add', 'x', '--issuer', 'https://x', '--jwks-uri', 'https://x/k', '--algorithms', 'HS256'], 'algorithms', 1)
    await refused(['issuers', 'add', 'x', '--issuer', 'https://x'], 'exactly one of --jwks-uri and --jwks-file', 2)
    await refused(['issuers', 'add', 'x', '--issuer', 'https://x', '--jwks-file', join(dir.path, 'missing.json')], 'cannot read', 2)
    await refused(['issuers', 'add', 'other', '--issuer', 'https://kubernetes.default.svc.cluster.local', '--jwks-uri', 'https://k/keys'], 'conflict')
    expect((await cliJson<{ issuers: unknown[] }>(['issuers', 'list'], env)).issuers).toHaveLength(2)
  })

  it('creates a client bound to an identity with no token, or with one on --token', async () => {
    const bound = await cliJson(['clients', 'create', 'billing api', '--identity', 'prod-cluster:system:serviceaccount:billing:api'], env)
    expect(bound).toMatchObject({ identity: { issuer: 'prod-cluster', subject: 'system:serviceaccount:billing:api' } })
    expect(bound.token).toBeUndefined()
    const human = await runCli(['clients', 'create', 'billing worker', '--identity', 'prod-cluster:system:serviceaccount:billing:worker'], { env })
    expect(human.code).toBe(0)
    expect(human.stdout).not.toMatch(/signet_/)
    const both = await cliJson(['clients', 'create', 'both', '--identity', 'spire:spiffe://example.org/ns/billing/*', '--token'], env)
    expect(both.token).toMatch(/^signet_/)
    await refused(['clients', 'create', 'x', '--identity', 'nope:sub'], 'issuer_not_found')
    await refused(['clients', 'create', 'x', '--identity', 'no-subject'], 'ISSUER:SUBJECT', 2)
    await refused(['clients', 'create', 'x', '--token'], '--token only applies with --identity', 2)
  })

  it('removes an issuer only once no live client is bound to it', async () => {
    await refused(['issuers', 'remove', 'spire'], 'revoke them first')
    const clients = (await cliJson<{ clients: { id: string; identity?: { issuer: string } }[] }>(['clients', 'list'], env)).clients
    for (const client of clients.filter((c) => c.identity?.issuer === 'spire')) await cliJson(['clients', 'revoke', client.id], env)
    const removed = await cliJson(['issuers', 'remove', 'spire'], env)
    expect(removed.name).toBe('spire')
    await refused(['issuers', 'remove', 'spire'], 'issuer_not_found')
  })
})
