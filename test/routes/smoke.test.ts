import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness } from '../helpers/harness.js'

describe('smoke', () => {
  let h: Harness
  beforeAll(async () => { h = await createHarness() })
  afterAll(async () => { await h.close() })

  it('signs and serves jwks', async () => {
    const { token } = await h.createClient()
    const r = await h.request('POST', '/v1/sign', { token, body: { claims: { sub: 'u1' } } })
    console.log(r.statusCode, r.body)
    const j = await h.request('GET', '/.well-known/jwks.json')
    console.log(j.statusCode, j.headers, j.body)
    const v = await h.request('POST', '/v1/verify', { token, body: { token: r.json().token } })
    console.log(v.body)
    expect(r.statusCode).toBe(200)
  })
})
