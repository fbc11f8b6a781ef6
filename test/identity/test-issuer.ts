import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose'

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>

export interface IssuerKey {
  kid: string
  alg: string
  pair: KeyPair
  publicJwk: JWK
}

/** A key pair made at test time, with its public JWK as an issuer publishes it. */
export async function issuerKey(kid: string, alg = 'RS256'): Promise<IssuerKey> {
  const pair = await generateKeyPair(alg, { extractable: true })
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' }
  return { kid, alg, pair, publicJwk }
}

/**
 * A workload-token issuer over real HTTP on 127.0.0.1, as a Kubernetes API server,
 * SPIRE's OIDC discovery provider or GitHub's token service is seen by a verifier:
 * discovery at /.well-known/openid-configuration and a JWK Set at /jwks. It counts
 * the requests for the JWK Set, can rotate its keys, and can go down.
 */
export class TestIssuer {
  readonly keys: IssuerKey[] = []
  jwksRequests = 0
  /** 'up', 'error' (answers 500), or 'hang' (never answers). */
  mode: 'up' | 'error' | 'hang' = 'up'
  cacheControl = 'public, max-age=300'
  #server: Server | null = null
  url = ''

  /** `iss` of the tokens: the issuer's own URL unless given (GitHub's iss lives elsewhere). */
  constructor(readonly iss?: string) {}

  get issuer(): string {
    return this.iss ?? this.url
  }

  get jwksUri(): string {
    return `${this.url}/jwks`
  }

  async start(first: IssuerKey): Promise<this> {
    this.keys.push(first)
    this.#server = createServer((request, response) => {
      if (request.url === '/jwks') {
        this.jwksRequests++
        if (this.mode === 'hang') return
        if (this.mode === 'error') {
          response.writeHead(500).end('down')
          return
        }
        response.writeHead(200, { 'content-type': 'application/jwk-set+json', 'cache-control': this.cacheControl })
        response.end(JSON.stringify({ keys: this.keys.map((key) => key.publicJwk) }))
        return
      }
      if (request.url === '/.well-known/openid-configuration') {
        response.writeHead(200, { 'content-type': 'application/json' })
        response.end(JSON.stringify({ issuer: this.issuer, jwks_uri: this.jwksUri, id_token_signing_alg_values_supported: ['RS256', 'ES256'] }))
        return
      }
      response.writeHead(404).end()
    })
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
    return this
  }

  /** Publishes another key (rotation): tokens may then carry its kid. */
  publish(key: IssuerKey): void {
    this.keys.push(key)
  }

  /** Signs a token with `key` (default: the first), header kid and alg from the key unless overridden. */
  async sign(payload: JWTPayload, options: { key?: IssuerKey; kid?: string | null; typ?: string } = {}): Promise<string> {
    const key = options.key ?? this.keys[0]!
    const header: Record<string, unknown> = { alg: key.alg, typ: options.typ ?? 'JWT' }
    const kid = options.kid === undefined ? key.kid : options.kid
    if (kid !== null) header.kid = kid
    return new SignJWT(payload).setProtectedHeader(header as never).sign(key.pair.privateKey)
  }

  async close(): Promise<void> {
    this.#server?.closeAllConnections()
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()))
  }
}

/** Claims shaped like a Kubernetes projected service-account token. */
export function kubernetesClaims(iss: string, nowSeconds: number, namespace = 'billing', account = 'api'): JWTPayload {
  return {
    iss,
    sub: `system:serviceaccount:${namespace}:${account}`,
    aud: ['signet'],
    iat: nowSeconds,
    nbf: nowSeconds,
    exp: nowSeconds + 3600,
    'kubernetes.io': {
      namespace,
      serviceaccount: { name: account, uid: '2b1c7f6e-95a4-4c5e-9f1d-1d8e4b0c2a11' },
      pod: { name: `${account}-7d9f8b6c4-x2x9z`, uid: '5a8c1e8e-3c11-4c43-a4b8-8d1e6f3c9d0a' },
    },
  }
}

/** Claims shaped like a SPIFFE JWT-SVID (SPIRE): sub is the SPIFFE ID. */
export function spiffeClaims(iss: string, nowSeconds: number, path = 'ns/billing/sa/api'): JWTPayload {
  return { iss, sub: `spiffe://example.org/${path}`, aud: ['signet'], iat: nowSeconds, exp: nowSeconds + 300 }
}

/** Claims shaped like a GitHub Actions OIDC token. */
export function githubClaims(iss: string, nowSeconds: number, repository = 'acme/billing'): JWTPayload {
  return {
    iss,
    sub: `repo:${repository}:ref:refs/heads/main`,
    aud: 'signet',
    iat: nowSeconds,
    nbf: nowSeconds - 5,
    exp: nowSeconds + 300,
    jti: 'b7c9e4e2-6a0f-4d5b-8f5e-8f1e6b1c2d3e',
    repository,
    repository_owner: repository.split('/')[0],
    ref: 'refs/heads/main',
    sha: '6f1ed002ab5595859014ebf0951522d9b8c4f3ab',
    workflow: 'deploy',
    job_workflow_ref: `${repository}/.github/workflows/deploy.yml@refs/heads/main`,
    event_name: 'push',
    runner_environment: 'github-hosted',
  }
}
