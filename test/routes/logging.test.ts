import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness } from '../helpers/harness.js'

describe('logs', () => {
  let h: Harness
  let token: string

  beforeAll(async () => {
    h = await createHarness()
    token = (await h.createClient()).token
  })
  afterAll(async () => {
    await h.watchPrivateKeys()
    h.watch.assertClean()
    await h.close()
  })

  it('are JSON lines with a request id, and carry no Authorization header, token or claim value', async () => {
    const marker = `claim-value-${Date.now()}`
    const ok = await h.request('POST', '/v1/sign', { token, body: { claims: { sub: marker, email: `${marker}@example.com` } }, headers: { 'x-request-id': 'req-12345' } })
    expect(ok.statusCode).toBe(200)
    expect(ok.headers['x-request-id']).toBe('req-12345')
    // Refusals whose parser errors could quote the body.
    await h.request('POST', '/v1/sign', { token, payload: `{"claims":{"sub":"${marker}"`, headers: { 'content-type': 'application/json' } })
    await h.request('POST', '/v1/sign', { token, body: { claims: { sub: marker, exp: 1 } } })
    await h.request('POST', '/v1/verify', { token, body: { token: `${marker}.x.y` } })

    const lines = h.logs.lines.map((line) => JSON.parse(line))
    expect(lines.length).toBeGreaterThan(0)
    const text = h.logs.lines.join('\n')
    expect(text).not.toContain(marker)
    expect(text).not.toMatch(/authorization/i)
    expect(text).not.toContain(token)
    expect(text).not.toContain(ok.json().token)
    expect(lines.filter((line) => line.reqId === 'req-12345').length).toBeGreaterThan(0)
  })

  it('replaces a request id that is not sane', async () => {
    const response = await h.request('GET', '/healthz', { headers: { 'x-request-id': 'bad id\nwith newline' } })
    expect(response.headers['x-request-id']).not.toContain('bad id')
  })
})
