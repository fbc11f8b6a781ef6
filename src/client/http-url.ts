/**
 * The one rule for the URLs a caller gives the client library (SignetClient's `url`,
 * createVerifier's `jwksUrl`) and the CLI (--url, SIGNET_URL): absolute, and http
 * or https (the CLI also refuses white space, which a URL read from a file may
 * carry). `what` names the option in the TypeError, as `SignetClient: url` or
 * `--url`.
 */
export function httpUrl(value: string | URL, what: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new TypeError(`${what} must be an absolute http(s) URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`${what} must be an http(s) URL`)
  return url
}
