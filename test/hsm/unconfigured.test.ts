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

/** A configured module that cannot load, and no keyset using it yet. Needs no HSM. */
describe('pkcs11 module configured but missing, no pkcs11 keyset yet', () => {
  let h: Harness
  beforeAll(async () => {
    h = await createHarness({ env: { SIGNET_PKCS11_MODULE: '/nonexistent/libpkcs11-missing.so', SIGNET_PKCS11_TOKEN_LABEL: 'none', SIGNET_PKCS11_PIN: '0000' } })
  })
  afterAll(async () => {
    await h.close()
  })

  it('starts, says so in the log at its first poll, and stays ready for its software keysets', async () => {
    await h.signet.keystore.poll()
    expect(h.logs.lines.join('')).toMatch(/the PKCS#11 token is unavailable: the PKCS#11 module cannot be loaded/)
    expect((await h.request('GET', '/readyz')).statusCode).toBe(200)
    const { token } = await h.createClient({ scopes: ['sign'] })
    expect((await h.request('POST', '/v1/sign', { token, body: { claims: {} } })).statusCode).toBe(200)
    const refused = await h.admin('POST', '/v1/admin/keysets', { name: 'hsm', backend: 'pkcs11' })
    expect(refused.statusCode).toBe(503)
    expect(refused.json()).toMatchObject({ code: 'hsm_unavailable', detail: 'the PKCS#11 token is unavailable: the PKCS#11 module cannot be loaded' })
  })
})
