import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SignetClient, SignetClientError } from '../../src/client/index.js'
import { startLiveSignet, type LiveSignet } from '../helpers/live-server.js'

async function refusal(promise: Promise<unknown>): Promise<SignetClientError> {
  const error = await promise.then(() => null, (caught: unknown) => caught)
  expect(error, 'the call succeeded').toBeInstanceOf(SignetClientError)
  return error as SignetClientError
}

describe('SignetClient against a listening Signet', () => {
  let signet: LiveSignet
  let token: string
  let client: SignetClient

  beforeAll(async () => {
    signet = await startLiveSignet()
    await signet.createKeyset({ name: 'edge', alg: 'EdDSA', issuer: 'https://edge.example' })
    token = await signet.createClient()
    client = new SignetClient({ url: signet.url, token })
  })
  afterAll(async () => {
    await client.close()
    await signet.close()
    signet.watch.assertClean()
  })

  it('signs claims with the default keyset; the token verifies against the JWKS', async () => {
    const signed = await client.sign({ sub: 'user-42', aud: 'api', plan: 'pro' })
    expect(signed).toMatchObject({ alg: 'ES256', keyset: 'default' })
    expect(signed.exp - signed.iat).toBe(900)
    const jwks = createRemoteJWKSet(new URL(`${signet.url}/.well-known/jwks.json`))
    const { payload, protectedHeader } = await jwtVerify(signed.token, jwks, { algorithms: ['ES256'], audience: 'api' })
    expect(payload).toMatchObject({ sub: 'user-42', plan: 'pro', iat: signed.iat, exp: signed.exp, jti: signed.jti })
    expect(protectedHeader).toMatchObject({ alg: 'ES256', kid: signed.kid, typ: 'JWT' })
  })

  it('passes ttl, header and keyset through', async () => {
    const signed = await client.sign({ sub: 'svc' }, { ttl: 60, header: { typ: 'at+jwt' }, keyset: 'edge' })
    expect(signed).toMatchObject({ alg: 'EdDSA', keyset: 'edge' })
    expect(signed.exp - signed.iat).toBe(60)
    expect(decodeProtectedHeader(signed.token)).toMatchObject({ alg: 'EdDSA', typ: 'at+jwt' })
    const jwks = createRemoteJWKSet(new URL(`${signet.url}/keysets/edge/jwks.json`))
    const { payload } = await jwtVerify(signed.token, jwks, { issuer: 'https://edge.example' })
    expect(payload.sub).toBe('svc')
  })

  it('uses the keyset given to the constructor when a call names none', async () => {
    const edge = new SignetClient({ url: signet.url, token, keyset: 'edge' })
    try {
      expect((await edge.sign({})).keyset).toBe('edge')
      expect((await edge.sign({}, { keyset: 'default' })).keyset).toBe('default')
    } finally {
      await edge.close()
    }
  })

  it('keeps a path prefix of the base URL', async () => {
    const prefixed = new SignetClient({ url: `${signet.url}/behind-a-proxy`, token, retries: 0 })
    try {
      const error = await refusal(prefixed.sign({}))
      expect(error).toMatchObject({ status: 404, code: 'not_found' })
    } finally {
      await prefixed.close()
    }
  })

  it('signs a batch, answered in order', async () => {
    const results = await client.signBatch([{ claims: { sub: 'a' } }, { claims: { sub: 'b' }, ttl: 30 }, { claims: { sub: 'c' }, header: { typ: 'at+jwt' } }])
    expect(results).toHaveLength(3)
    expect(results.map((r) => JSON.parse(Buffer.from(r.token.split('.')[1]!, 'base64url').toString()).sub)).toEqual(['a', 'b', 'c'])
    expect(results[1]!.exp - results[1]!.iat).toBe(30)
    expect((await client.signBatch([{ claims: {} }], { keyset: 'edge' }))[0]!.alg).toBe('EdDSA')
  })

  it('reuses keep-alive connections for consecutive calls', async () => {
    let connections = 0
    const onConnection = () => { connections++ }
    signet.server.app.server.on('connection', onConnection)
    const fresh = new SignetClient({ url: signet.url, token })
    try {
      for (let i = 0; i < 5; i++) await fresh.sign({ i })
      await fresh.signBatch([{ claims: {} }])
    } finally {
      signet.server.app.server.off('connection', onConnection)
      await fresh.close()
    }
    // undici's pool may open a second socket while the first is being released; never one per call.
    expect(connections).toBeGreaterThanOrEqual(1)
    expect(connections).toBeLessThanOrEqual(2)
  })

  describe('errors carry the problem code, status and detail', () => {
    it('a wrong token: 401 unauthorized, and the error never holds the token', async () => {
      const wrongToken = `signet_${'x'.repeat(43)}`
      const wrong = new SignetClient({ url: signet.url, token: wrongToken })
      try {
        const error = await refusal(wrong.sign({ sub: 'a' }))
        expect(error).toMatchObject({ code: 'unauthorized', status: 401, attempts: 1 })
        expect(error.detail.length).toBeGreaterThan(0)
        const shown = `${error.message} ${JSON.stringify(error)} ${String(error.stack)}`
        expect(shown).not.toContain(wrongToken)
        expect(shown).not.toContain(token)
      } finally {
        await wrong.close()
      }
    })

    it('ttl_too_long, reserved_claim, invalid_request, keyset_not_found', async () => {
      expect(await refusal(client.sign({}, { ttl: 999_999 }))).toMatchObject({ code: 'ttl_too_long', status: 400 })
      expect(await refusal(client.sign({ exp: 1 }))).toMatchObject({ code: 'reserved_claim', status: 400 })
      expect(await refusal(client.sign({}, { header: { alg: 'none' } as never }))).toMatchObject({ code: 'invalid_request', status: 400 })
      const missing = await refusal(client.sign({}, { keyset: 'nope' }))
      expect(missing).toMatchObject({ code: 'keyset_not_found', status: 404, type: 'urn:signet:problem:keyset_not_found' })
      expect(missing.detail).toContain('nope')
    })

    it('a keyset the client may not use: 403 forbidden', async () => {
      const restricted = new SignetClient({ url: signet.url, token: await signet.createClient({ keysets: ['default'] }) })
      try {
        expect(await refusal(restricted.sign({}, { keyset: 'edge' }))).toMatchObject({ code: 'forbidden', status: 403 })
      } finally {
        await restricted.close()
      }
    })

    it('a batch with one bad item: the error names its index', async () => {
      const error = await refusal(client.signBatch([{ claims: {} }, { claims: { iat: 5 } }]))
      expect(error).toMatchObject({ code: 'reserved_claim', status: 400, index: 1 })
    })

    it('every attempt of a call carries the same X-Request-Id, which the error reports', async () => {
      const error = await refusal(client.sign({ iat: 1 }))
      expect(error.requestId).toMatch(/^[0-9a-f-]{36}$/)
      expect(signet.logs.some((line) => line.includes(error.requestId))).toBe(true)
    })
  })

  it('refuses misuse with a TypeError before sending anything', async () => {
    const before = signet.requests()
    const bad: unknown[] = [
      undefined, {}, { url: signet.url }, { url: 'not a url', token }, { url: 'ftp://signet', token }, { url: signet.url.replace('://', `://user:${token}@`), token }, { url: signet.url, token: '' },
      { url: signet.url, token: 'a b' }, { url: signet.url, token, retries: 1.5 }, { url: signet.url, token, retries: -1 },
      { url: signet.url, token, tokenFile: '/tmp/token' }, { url: signet.url, tokenFile: '' }, { url: signet.url, token: 42 },
      { url: signet.url, token, timeout: 0 }, { url: signet.url, token, keyset: '' },
    ]
    for (const options of bad) expect(() => new SignetClient(options as never), JSON.stringify(options ?? null).replace(token, 'TOKEN')).toThrow(TypeError)
    await expect(client.sign(null as never)).rejects.toThrow(TypeError)
    await expect(client.sign(['a'] as never)).rejects.toThrow(TypeError)
    await expect(client.signBatch([])).rejects.toThrow(TypeError)
    expect(signet.requests()).toBe(before)
  })
})
