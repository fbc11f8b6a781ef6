import type { Config } from '../config.js'
import { httpUrl } from '../client/http-url.js'
import { ConfigError, SignetError } from '../errors.js'
import type { RotationMode } from '../keys/service.js'
import type { ClientInput, ClientPatch, ImportInput, IssuerInput, KeysetInput, KeysetPatch } from '../schemas/index.js'
import type { AdminApi, AuditPage, AuditVerifyView, ClientView, IssuerView, JwksView, KeysetView, KeyView } from './admin-api.js'

/** Longest one call may take, including the retries of a shed request. */
const TIMEOUT_MS = 30_000
/** Retries of a request Signet shed before doing any work (503 overloaded). */
const OVERLOAD_RETRIES = 5

/**
 * The admin commands through the admin API of a running Signet (README, section
 * Command line, remote mode): no database and no master key here, only the admin token. A problem
 * answer (RFC 9457) becomes a SignetError with its detail and code, so a command
 * fails with the same line as it does locally. The token is sent, never shown.
 */
export class RemoteAdminApi implements AdminApi {
  readonly mode = 'remote'
  readonly defaultKeyset: string
  readonly #base: URL
  readonly #token: string

  private constructor(base: URL, token: string, defaultKeyset: string) {
    this.#base = base
    this.#token = token
    this.defaultKeyset = defaultKeyset
  }

  /** `source` names where the URL came from (--url or SIGNET_URL), for the message when it is malformed. */
  static connect(url: string, source: '--url' | 'SIGNET_URL', config: Config): RemoteAdminApi {
    let base: URL
    try {
      // White space (a stray newline from a file) is refused rather than trimmed away.
      base = httpUrl(/\s/.test(url) ? '' : url, source)
    } catch (error) {
      throw new ConfigError(`${(error as Error).message}, e.g. http://127.0.0.1:8080`)
    }
    // Nothing in a query or fragment reaches the admin API: refused rather than dropped unseen.
    if (base.search !== '' || base.hash !== '') throw new ConfigError(`${source} must not hold a query or fragment, e.g. http://127.0.0.1:8080`)
    if (!base.pathname.endsWith('/')) base.pathname += '/'
    if (!config.adminToken) {
      throw new ConfigError('SIGNET_ADMIN_TOKEN (or SIGNET_ADMIN_TOKEN_FILE) is required to administer Signet through --url / SIGNET_URL')
    }
    return new RemoteAdminApi(base, config.adminToken, config.defaultKeyset)
  }

  /** Where the server is, for messages: its origin and path, never credentials in the URL. */
  get #where(): string {
    return `${this.#base.origin}${this.#base.pathname.replace(/\/$/, '')}`
  }

  async #call<T>(method: string, path: string, body?: unknown): Promise<{ value: T; headers: Headers }> {
    const target = new URL(path.replace(/^\//, ''), this.#base)
    const deadline = AbortSignal.timeout(TIMEOUT_MS)
    for (let attempt = 0; ; attempt++) {
      let response: Response
      try {
        response = await fetch(target, {
          method,
          signal: deadline,
          headers: {
            authorization: `Bearer ${this.#token}`,
            accept: 'application/json, application/problem+json',
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        })
      } catch (error) {
        const cause = (error as { cause?: { code?: string; message?: string } }).cause
        const reason = cause?.code ?? cause?.message ?? (error as Error).message
        throw new ConfigError(`cannot reach Signet at ${this.#where} (${reason})`)
      }
      const text = await response.text()
      let parsed: unknown = null
      try {
        parsed = text ? JSON.parse(text) : null
      } catch {
        throw new ConfigError(`${this.#where} answered ${method} ${target.pathname} with ${response.status} and a body that is not JSON: is it Signet's internal listener?`)
      }
      if (response.ok) return { value: parsed as T, headers: response.headers }
      const problem = (parsed ?? {}) as { code?: string; title?: string; detail?: string }
      if (response.status === 503 && problem.code === 'overloaded' && attempt < OVERLOAD_RETRIES) {
        await new Promise((later) => setTimeout(later, 200 * (attempt + 1)))
        continue
      }
      throw remoteError(response.status, problem)
    }
  }

  async #get<T>(path: string): Promise<T> {
    return (await this.#call<T>('GET', path)).value
  }

  async #send<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.#call<T>(method, path, body)).value
  }

  async listKeysets(): Promise<KeysetView[]> {
    return (await this.#get<{ keysets: KeysetView[] }>('/v1/admin/keysets')).keysets
  }

  getKeyset(name: string): Promise<KeysetView> {
    return this.#get(`/v1/admin/keysets/${encodeURIComponent(name)}`)
  }

  createKeyset(input: KeysetInput): Promise<KeysetView> {
    return this.#send('POST', '/v1/admin/keysets', input)
  }

  updateKeyset(name: string, patch: KeysetPatch): Promise<KeysetView> {
    return this.#send('PATCH', `/v1/admin/keysets/${encodeURIComponent(name)}`, patch)
  }

  async listKeys(keyset: string): Promise<KeyView[]> {
    return (await this.#get<{ keys: KeyView[] }>(`/v1/admin/keysets/${encodeURIComponent(keyset)}/keys`)).keys
  }

  rotate(keyset: string, mode: RotationMode): Promise<KeyView> {
    return this.#send('POST', `/v1/admin/keysets/${encodeURIComponent(keyset)}/rotate`, { mode })
  }

  revoke(kid: string, reason: string): Promise<KeyView> {
    return this.#send('POST', `/v1/admin/keys/${encodeURIComponent(kid)}/revoke`, { reason })
  }

  importKey(keyset: string, input: ImportInput): Promise<KeyView> {
    return this.#send('POST', `/v1/admin/keysets/${encodeURIComponent(keyset)}/import`, input)
  }

  createClient(input: ClientInput): Promise<ClientView & { token?: string }> {
    return this.#send('POST', '/v1/admin/clients', input)
  }

  async listClients(): Promise<ClientView[]> {
    return (await this.#get<{ clients: ClientView[] }>('/v1/admin/clients')).clients
  }

  revokeClient(id: string): Promise<ClientView> {
    return this.#send('DELETE', `/v1/admin/clients/${encodeURIComponent(id)}`)
  }

  updateClient(id: string, patch: ClientPatch): Promise<ClientView> {
    return this.#send('PATCH', `/v1/admin/clients/${encodeURIComponent(id)}`, patch)
  }

  async listIssuers(): Promise<IssuerView[]> {
    return (await this.#get<{ issuers: IssuerView[] }>('/v1/admin/issuers')).issuers
  }

  createIssuer(input: IssuerInput): Promise<IssuerView> {
    return this.#send('POST', '/v1/admin/issuers', input)
  }

  removeIssuer(name: string): Promise<IssuerView> {
    return this.#send('DELETE', `/v1/admin/issuers/${encodeURIComponent(name)}`)
  }

  listAudit(after: number, limit: number): Promise<AuditPage> {
    return this.#get(`/v1/admin/audit?after=${after}&limit=${limit}`)
  }

  /** The server's keyed check of its audit log; remote only, as the check needs the audit key. */
  verifyAudit(): Promise<AuditVerifyView> {
    return this.#get('/v1/admin/audit/verify')
  }

  /** The public JWK Set, as verifiers fetch it, with its Cache-Control max-age. */
  async jwks(keyset: string): Promise<JwksView> {
    const { value, headers } = await this.#call<JwksView['document']>('GET', `/keysets/${encodeURIComponent(keyset)}/jwks.json`)
    const maxAge = /max-age=(\d+)/.exec(headers.get('cache-control') ?? '')
    return { document: value, maxAge: maxAge ? Number(maxAge[1]) : 0 }
  }
}

/** A problem answer as the error a local command would have thrown. */
function remoteError(status: number, problem: { code?: string; title?: string; detail?: string }): SignetError {
  const code = typeof problem.code === 'string' ? problem.code : `http_${status}`
  const title = typeof problem.title === 'string' ? problem.title : `HTTP ${status}`
  let detail = typeof problem.detail === 'string' ? problem.detail : title
  if (status === 401) detail = `${detail}: the admin token was refused (check SIGNET_ADMIN_TOKEN or SIGNET_ADMIN_TOKEN_FILE)`
  if (status === 403) detail = `${detail}: this token has no admin scope`
  return new SignetError(code, status, title, detail)
}
