// The bare signer: the least an HTTP signing service can do per request. A plain
// node:http server (no framework, no authentication, no validation, no logging)
// that reads the body, parses it as JSON and answers one token signed with
// node:crypto on the libuv thread pool, as Signet signs. Whatever this reaches is
// the most any HTTP signer reaches on this machine with the load generator beside
// it; the gap between it and the crypto limit is HTTP's and the load generator's.
// A body with `items` (a batch) gets that many tokens, each signed on the pool.
//
// Usage: node bench/bare-signer.mjs <RS256|ES256> <signing input>
// Prints "bare signer listening <url>" on stderr once it listens.
import { createServer } from 'node:http'
import { generateKeyPairSync, sign } from 'node:crypto'

const [alg, signingInput] = process.argv.slice(2)
const { privateKey } = alg === 'ES256'
  ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
  : generateKeyPairSync('rsa', { modulusLength: 2048 })
const input = Buffer.from(signingInput, 'ascii')
const options = { key: privateKey, dsaEncoding: 'ieee-p1363' }

const server = createServer((request, response) => {
  const chunks = []
  request.on('data', (chunk) => chunks.push(chunk))
  request.on('end', () => {
    let body
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      response.writeHead(400).end()
      return
    }
    const items = body !== null && typeof body === 'object' && Array.isArray(body.items) ? body.items : null
    const count = items ? items.length : 1
    Promise.all(Array.from({ length: count }, signOne)).then((tokens) => {
      const answer = JSON.stringify(items ? { tokens: tokens.map((token) => ({ token, alg })) } : { token: tokens[0], alg })
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) })
      response.end(answer)
    }, () => response.writeHead(500).end())
  })
})

/** One token over the signing input, signed with node:crypto on the libuv thread pool. */
function signOne() {
  return new Promise((resolve, reject) => {
    sign('sha256', input, options, (error, signature) => (error ? reject(error) : resolve(`${signingInput}.${signature.toString('base64url')}`)))
  })
}
server.listen(0, '127.0.0.1', () => {
  process.stderr.write(`bare signer listening http://127.0.0.1:${server.address().port}\n`)
})
