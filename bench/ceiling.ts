/**
 * The ceiling server: a fastify instance built like Signet (createBaseApp: same
 * logger, body limit, strict schema validation, JSON parser, request logs) with one
 * POST route that validates a /v1/sign body and answers a JSON object of the same
 * size as a signed answer, without signing; the same route that also signs one
 * ES256 token over the given signing input, on the thread pool as Signet signs
 * (no authentication, claims checks or metrics); and one GET route that answers as
 * many bytes as the JWK Set. All log one line per request, as Signet does. Prints
 * its URL on the first line.
 *
 * Usage: ceiling.ts <token length> <JWK Set bytes> <ES256 signing input>
 */
import { generateKeyPairSync, sign } from 'node:crypto'
import { createLogger } from '../src/logger.js'
import { createBaseApp } from '../src/app.js'
import { signBody, signedToken } from '../src/schemas/index.js'

const tokenLength = Number(process.argv[2] ?? 300)
const jwksBytes = Number(process.argv[3] ?? 500)
const es256Input = Buffer.from(process.argv[4] ?? 'e30.e30', 'ascii')
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const app = createBaseApp(createLogger('info'))
/** A sign answer of Signet's shape around `token`. */
const answer = (token: string) => ({ token, kid: 'k'.repeat(43), alg: 'ES256', keyset: 'default', iat: 1_700_000_000, exp: 1_700_000_600, jti: 'j'.repeat(22) })
const unsigned = answer('x'.repeat(tokenLength))
app.post('/v1/sign', { schema: { body: signBody, response: { 200: signedToken } } }, async () => unsigned)
app.post('/v1/sign/signed', { schema: { body: signBody, response: { 200: signedToken } } }, async () => {
  const signature = await new Promise<Buffer>((resolve, reject) => {
    sign('sha256', es256Input, { key: privateKey, dsaEncoding: 'ieee-p1363' }, (error, result) => (error ? reject(error) : resolve(result)))
  })
  return answer(`${es256Input}.${signature.toString('base64url')}`)
})
const jwks = Buffer.from(JSON.stringify({ keys: [{ pad: 'x'.repeat(Math.max(0, jwksBytes - 22)) }] }))
app.get('/jwks', async (_request, reply) => reply.type('application/jwk-set+json').send(jwks))
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address() as { port: number }
process.stderr.write(`ceiling listening http://127.0.0.1:${address.port}\n`)
