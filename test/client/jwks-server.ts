import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose'

/**
 * A stand-in JWKS endpoint for verifier tests: it serves whatever keys the test
 * puts in it, with the Cache-Control the test chooses, and counts every fetch.
 */
export interface JwksServer {
  url: string
  keys: JWK[]
  /** Cache-Control header of the answers; none when null. */
  cacheControl: string | null
  /** Status to answer with instead of 200 (an outage). */
  status: number
  fetches: number
  close: () => Promise<void>
}

export async function startJwksServer(): Promise<JwksServer> {
  const state: Omit<JwksServer, 'url' | 'close'> = { keys: [], cacheControl: null, status: 200, fetches: 0 }
  const server: Server = createServer((request, response) => {
    state.fetches++
    if (state.status !== 200) {
      response.writeHead(state.status, { 'content-type': 'application/problem+json' }).end('{"code":"storage_unavailable"}')
      return
    }
    const headers: Record<string, string> = { 'content-type': 'application/jwk-set+json' }
    if (state.cacheControl !== null) headers['cache-control'] = state.cacheControl
    response.writeHead(200, headers).end(JSON.stringify({ keys: state.keys }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  })
}

/** A key pair made at test time, with its public JWK as a JWK Set would publish it. */
export interface TestKey {
  kid: string
  alg: string
  privateKey: CryptoKey
  jwk: JWK
  sign: (claims: JWTPayload, header?: Record<string, unknown>, expiresIn?: string | number | null) => Promise<string>
}

export async function makeKey(alg: string, kid: string, options: { jwkAlg?: string | null } = {}): Promise<TestKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg.startsWith('RS') || alg.startsWith('PS') ? { modulusLength: 2048 } : {}) })
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, use: 'sig' }
  const jwkAlg = options.jwkAlg === undefined ? alg : options.jwkAlg
  if (jwkAlg !== null) jwk.alg = jwkAlg
  const sign = async (claims: JWTPayload, header: Record<string, unknown> = {}, expiresIn: string | number | null = '5m') => {
    const jwt = new SignJWT(claims).setProtectedHeader({ alg, kid, typ: 'JWT', ...header }).setIssuedAt()
    if (expiresIn !== null) jwt.setExpirationTime(expiresIn)
    return jwt.sign(privateKey)
  }
  return { kid, alg, privateKey, jwk, sign }
}
