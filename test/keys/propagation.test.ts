import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness } from '../helpers/harness.js'
import { within } from '../helpers/wait.js'
import { requireBuild } from '../cli/helpers.js'

const run = promisify(execFile)
const FIXTURE = join(import.meta.dirname, '../fixtures/other-process.ts')

/**
 * A change written to the database by another process (new keys, revocations,
 * clients) reaches the running server within 2 seconds.
 */
describe('changes made by another process', () => {
  let h: Harness
  let signer: string

  beforeAll(async () => {
    requireBuild() // the other process runs from dist/
    h = await createHarness({ clock: { now: () => Date.now() } })
    signer = (await h.createClient({ scopes: ['sign'] })).token
    h.signet.start()
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  async function other(action: string, arg?: string): Promise<any> {
    const { stdout } = await run(process.execPath, [FIXTURE, action, ...(arg ? [arg] : [])], {
      env: { PATH: process.env.PATH, SIGNET_MASTER_KEY: h.masterKey, SIGNET_DB: join(h.dir, 'signet.db'), SIGNET_LOG_LEVEL: 'silent' },
      cwd: join(import.meta.dirname, '../..'),
    })
    return JSON.parse(stdout)
  }
  const signedKid = async () => (await h.request('POST', '/v1/sign', { token: signer, body: { claims: {} } })).json().kid
  const publishedKids = async () => (await h.request('GET', '/.well-known/jwks.json')).json().keys.map((k: { kid: string }) => k.kid)

  it('an immediate rotation: the new kid signs and is published within 2 s', async () => {
    const key = await other('rotate', 'default')
    await within(2000, async () => (await signedKid()) === key.kid && (await publishedKids()).includes(key.kid))
  })

  it('a revocation: the key leaves the JWKS and stops signing within 2 s', async () => {
    const kid = await signedKid()
    await other('revoke-key', kid)
    await within(2000, async () => !(await publishedKids()).includes(kid) && (await signedKid()) !== kid)
  })

  it('a new client can sign, and a revoked one cannot, within 2 s', async () => {
    const client = await other('create-client')
    h.watch.secret('the token of a client made by another process', client.token)
    const signs = async () => (await h.request('POST', '/v1/sign', { token: client.token, body: { claims: {} } })).statusCode
    await within(2000, async () => (await signs()) === 200)
    await other('revoke-client', client.id)
    await within(2000, async () => (await signs()) === 401)
  })
})
