import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { requireBuild, runCli } from '../cli/helpers.js'
import { createHarness, newMasterKey, tempDir } from '../helpers/harness.js'

describe('signet clients create --certificate-subject', () => {
  const dir = tempDir()
  const masterKey = newMasterKey()
  let env: Record<string, string>

  beforeAll(async () => {
    requireBuild()
    const h = await createHarness({ dir: dir.path, masterKey })
    await h.close()
    env = { SIGNET_DB: join(dir.path, 'signet.db'), SIGNET_MASTER_KEY: masterKey }
  })
  afterAll(() => dir.remove())

  it('binds the new client to a normalised subject, shown in the list', async () => {
    const created = await runCli(['clients', 'create', 'billing', '--certificate-subject', 'CN = billing-api, O = Acme', '--json'], { env })
    expect(created.code, created.stderr).toBe(0)
    const client = JSON.parse(created.stdout)
    expect(client.certificateSubject).toBe('CN=billing-api,O=Acme')
    expect(client.token).toMatch(/^signet_/)

    const table = await runCli(['clients', 'list'], { env })
    expect(table.stdout.split('\n')[0]).toMatch(/\bCERTIFICATE\b/)
    expect(table.stdout).toContain('CN=billing-api,O=Acme')

    // The running service refuses that token without the certificate.
    const h = await createHarness({ dir: dir.path, masterKey })
    try {
      const answer = await h.request('POST', '/v1/sign', { token: client.token, body: { claims: {} } })
      expect(answer.statusCode).toBe(403)
    } finally {
      await h.close()
    }
  })

  it('refuses a subject that is not a distinguished name, and creates nothing', async () => {
    const before = JSON.parse((await runCli(['clients', 'list', '--json'], { env })).stdout).clients.length
    const refused = await runCli(['clients', 'create', 'bad', '--certificate-subject', 'not a dn'], { env })
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toMatch(/--certificate-subject must be a distinguished name/) // named as the flag
    expect(JSON.parse((await runCli(['clients', 'list', '--json'], { env })).stdout).clients.length).toBe(before)
  })
})
