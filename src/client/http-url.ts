/**
 * The one rule for the URLs a caller gives the client library (SignetClient's `url`,
 * createVerifier's `jwksUrl`) and the CLI (--url, SIGNET_URL): absolute, http or
 * https, and without credentials (`user:password@`): fetch refuses them and its
 * error quotes the whole URL, so a token pasted there would be printed; tokens go
 * in their own options. The CLI also refuses white space, which a URL read from a
 * file may carry, and a query or fragment. `what` names the option in the
 * TypeError, as `SignetClient: url` or `--url`; the message never quotes the URL.
 */
export function httpUrl(value: string | URL, what: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new TypeError(`${what} must be an absolute http(s) URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`${what} must be an http(s) URL`)
  if (url.username !== '' || url.password !== '') throw new TypeError(`${what} must not hold credentials (user:password@): tokens have their own option`)
  return url
}
