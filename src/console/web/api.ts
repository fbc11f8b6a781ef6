/**
 * The admin API as the console calls it: same origin, the bearer token in the
 * Authorization header only. The token lives in this tab's sessionStorage (it
 * survives a reload, not the tab) and in memory; never in localStorage, a cookie
 * or a URL.
 */

const TOKEN_KEY = 'signet-admin-token'

/** A refused call: the problem document's status, code and detail (RFC 9457). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
  ) {
    super(detail)
  }

  /** A route this server does not have (an older Signet), not a missing resource. */
  get routeMissing(): boolean {
    return (this.status === 404 && this.message === 'no such route') || this.status === 405
  }
}

export class AdminApi {
  #token: string

  constructor(token: string) {
    this.#token = token
  }

  /** The token kept for this tab, if any. */
  static restore(): AdminApi | null {
    const token = sessionStorage.getItem(TOKEN_KEY)
    return token ? new AdminApi(token) : null
  }

  remember(): void {
    sessionStorage.setItem(TOKEN_KEY, this.#token)
  }

  static forget(): void {
    sessionStorage.removeItem(TOKEN_KEY)
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: 'application/json' }
    if (body !== undefined) headers['content-type'] = 'application/json'
    let response: Response
    try {
      response = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
    } catch {
      throw new ApiError(0, 'network', 'Signet did not answer: is the server up?')
    }
    const json = parseJson(await response.text())
    if (!response.ok) {
      throw new ApiError(response.status, String(json.code ?? 'error'), String(json.detail ?? json.title ?? `HTTP ${response.status}`))
    }
    return json as T
  }

  get = <T>(path: string) => this.call<T>('GET', path)
  post = <T>(path: string, body: unknown = {}) => this.call<T>('POST', path, body)
  patch = <T>(path: string, body: unknown) => this.call<T>('PATCH', path, body)
  delete = <T>(path: string) => this.call<T>('DELETE', path)
}

/**
 * The max-age of a keyset's JWK Set answer, from its Cache-Control (the public
 * route, no token sent); null when it cannot be read.
 */
export async function jwksMaxAge(keyset: string): Promise<number | null> {
  try {
    const response = await fetch(`/keysets/${encodeURIComponent(keyset)}/jwks.json`, { cache: 'no-store', credentials: 'omit' })
    const match = /max-age=(\d+)/.exec(response.headers.get('cache-control') ?? '')
    return match ? Number(match[1]) : null
  } catch {
    return null
  }
}

/** An answer's JSON object; {} for an empty body or one that is not JSON (a proxy's error page). */
function parseJson(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text)
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {}
  } catch {
    return {}
  }
}

/** A path segment, escaped. */
export const seg = (value: string): string => encodeURIComponent(value)
