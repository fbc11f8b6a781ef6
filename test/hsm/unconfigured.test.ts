import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness } from '../helpers/harness.js'

/** Without SIGNET_PKCS11_MODULE: pkcs11 keysets are refused, nothing else changes. Needs no HSM. */
describe('pkcs11 backend not configured', () => {
  let h: Harness
  beforeAll(async () => {
    h = await createHarness()
  })
  afterAll(async () => {
    await h.close()
  })

  it('creating a pkcs11 keyset answers 503 hsm_unavailable, changes nothing, and the service stays ready', async () => {
    const before = (await h.admin('GET', '/v1/admin/keysets')).json().keysets
    const response = await h.admin('POST', '/v1/admin/keysets', { name: 'hsm', backend: 'pkcs11' })
    expect(response.statusCode).toBe(503)
    expect(response.json()).toMatchObject({ code: 'hsm_unavailable' })
    expect(response.json().detail).toMatch(/SIGNET_PKCS11_MODULE/)
    expect((await h.admin('GET', '/v1/admin/keysets')).json().keysets).toEqual(before)
    expect((await h.request('GET', '/readyz')).statusCode).toBe(200)
  })
})
