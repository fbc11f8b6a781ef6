// An application server that signs through Signet and verifies with its JWKS.
// It holds no private key: only a Signet client token (scope `sign`), or, with
// SIGNET_WORKLOAD_TOKEN_FILE, no Signet secret at all: the short-lived token its
// platform writes to a file (docs/workload-identity.md).
//
//   POST /login  { "username", "password" }  -> { token, tokenType, expiresAt }
//   GET  /me     Authorization: Bearer <token> -> { sub, iat, exp, jti }
//
// Plain ESM JavaScript, no build step; it imports the client library through the
// package self-reference `signet` (run `npm run build` first). See docs/client.md.
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import closeWithGrace from 'close-with-grace'
import Fastify from 'fastify'
import { SignetClient, SignetClientError, VerificationError, createVerifier } from 'signet'

const USERNAME = /^[A-Za-z0-9._@-]{1,64}$/

/** Compares passwords in constant time (both sides hashed to the same length first). */
function passwordMatches(expected, given) {
  const digest = (text) => createHash('sha256').update(text, 'utf8').digest()
  return timingSafeEqual(digest(expected), digest(given))
}

/** An RFC 9457 problem answer, shaped like Signet's own. */
function problem(reply, status, code, detail) {
  return reply.code(status).type('application/problem+json').send({
    type: `urn:signet-example:problem:${code}`, title: code.replace(/_/g, ' '), status, detail, code,
  })
}

/**
 * Builds the example app (a fastify instance, not listening yet).
 *
 * @param {object} options
 * @param {string} options.signetUrl     Signet's base URL, e.g. http://signet:8080
 * @param {string} [options.clientToken] a Signet client token with scope `sign`
 * @param {string} [options.tokenFile]   instead of clientToken: a file holding a workload token
 *                                       (Kubernetes projected token, JWT-SVID), re-read when it changes
 * @param {string} options.demoPassword  the password every demo user logs in with
 * @param {string} [options.jwksUrl]     defaults to `${signetUrl}/.well-known/jwks.json`
 * @param {string} [options.keyset]      keyset to sign with; Signet's default keyset when unset
 * @param {string} [options.audience]    stamped as `aud` into session tokens and required by /me
 * @param {string} [options.issuer]      required `iss` (set it when the keyset has an issuer)
 * @param {number} [options.sessionTtl]  session lifetime in seconds; the keyset's defaultTtl when unset
 * @param {number} [options.clockTolerance] seconds of clock skew accepted by /me (default 5)
 * @param {object} [options.verifier]    extra createVerifier options (cooldown, cacheMaxAge...)
 * @param {boolean|object} [options.logger] fastify logger option (default false)
 */
export async function buildAppServer(options) {
  const { signetUrl, clientToken, tokenFile, demoPassword } = options
  if (typeof signetUrl !== 'string' || signetUrl.length === 0) throw new TypeError('signetUrl is required')
  if ((clientToken === undefined) === (tokenFile === undefined)) throw new TypeError('give exactly one of clientToken and tokenFile')
  if (clientToken !== undefined && (typeof clientToken !== 'string' || clientToken.length === 0)) throw new TypeError('clientToken must be a Signet client token')
  if (tokenFile !== undefined && (typeof tokenFile !== 'string' || tokenFile.length === 0)) throw new TypeError('tokenFile must be a file path')
  if (typeof demoPassword !== 'string' || demoPassword.length === 0) throw new TypeError('demoPassword is required')
  const base = signetUrl.replace(/\/+$/, '')
  const jwksUrl = options.jwksUrl ?? `${base}/.well-known/jwks.json`

  // With a token file the client re-reads it as the platform rotates it.
  const credential = tokenFile === undefined ? { token: clientToken } : { tokenFile }
  const signet = new SignetClient({ url: base, ...credential, keyset: options.keyset })
  const verifier = createVerifier({
    jwksUrl,
    audience: options.audience,
    issuer: options.issuer,
    clockTolerance: options.clockTolerance ?? 5,
    ...options.verifier,
  })

  const app = Fastify({ logger: options.logger ?? false })
  app.addHook('onClose', async () => { await signet.close() })

  app.post('/login', {
    schema: {
      body: {
        type: 'object',
        properties: { username: { type: 'string' }, password: { type: 'string', maxLength: 1024 } },
        required: ['username', 'password'],
        additionalProperties: false,
      },
    },
  }, async (request, reply) => {
    const { username, password } = request.body
    if (!USERNAME.test(username)) return problem(reply, 400, 'invalid_request', 'username must be 1 to 64 letters, digits or ._@-')
    if (!passwordMatches(demoPassword, password)) return problem(reply, 401, 'invalid_credentials', 'wrong username or password')
    const claims = { sub: username }
    if (options.audience !== undefined) claims.aud = options.audience
    try {
      const signed = await signet.sign(claims, options.sessionTtl === undefined ? {} : { ttl: options.sessionTtl })
      return { token: signed.token, tokenType: 'Bearer', expiresAt: signed.exp }
    } catch (error) {
      if (!(error instanceof SignetClientError)) throw error
      // Signet's answer is for the operator, not for the user logging in.
      request.log.error({ code: error.code, status: error.status, requestId: error.requestId }, 'Signet did not sign the session token')
      return problem(reply, 503, 'signing_unavailable', 'cannot issue a session token right now; try again')
    }
  })

  app.get('/me', async (request, reply) => {
    const match = /^Bearer ([^\s]+)$/.exec(request.headers.authorization ?? '')
    if (!match) {
      reply.header('www-authenticate', 'Bearer')
      return problem(reply, 401, 'unauthorized', 'send Authorization: Bearer <token>')
    }
    try {
      const { payload } = await verifier.verify(match[1])
      return { sub: payload.sub, iat: payload.iat, exp: payload.exp, jti: payload.jti }
    } catch (error) {
      if (!(error instanceof VerificationError)) throw error
      if (error.code === 'jwks_unavailable') return problem(reply, 503, 'jwks_unavailable', 'cannot check tokens right now; try again')
      reply.header('www-authenticate', `Bearer error="invalid_token"`)
      return problem(reply, 401, error.code, error.message)
    }
  })

  app.get('/healthz', async () => ({ status: 'ok' }))
  return app
}

/** Reads a secret from NAME or NAME_FILE (Docker secrets); both at once is an error. */
function secret(env, name) {
  const file = env[`${name}_FILE`]
  if (file !== undefined && env[name] !== undefined) throw new Error(`${name} and ${name}_FILE are both set: keep one`)
  if (file !== undefined) return readFileSync(file, 'utf8').replace(/\r?\n$/, '')
  return env[name]
}

/** The example's settings from the environment; throws naming the first missing or bad variable. */
export function configFromEnv(env = process.env) {
  const signetUrl = env.SIGNET_URL
  if (!signetUrl || !/^https?:\/\/\S+$/.test(signetUrl)) throw new Error('SIGNET_URL must be Signet\'s base URL, e.g. http://signet:8080')
  const clientToken = secret(env, 'SIGNET_CLIENT_TOKEN')
  // A path, not a secret: the platform writes a short-lived workload token there.
  const tokenFile = env.SIGNET_WORKLOAD_TOKEN_FILE || undefined
  if (clientToken && tokenFile) throw new Error('SIGNET_CLIENT_TOKEN and SIGNET_WORKLOAD_TOKEN_FILE are both set: keep one')
  if (!clientToken && !tokenFile) throw new Error('SIGNET_CLIENT_TOKEN (or SIGNET_CLIENT_TOKEN_FILE) is required: a Signet client token with scope sign; or SIGNET_WORKLOAD_TOKEN_FILE: a workload token file')
  const demoPassword = secret(env, 'DEMO_PASSWORD')
  if (!demoPassword) throw new Error('DEMO_PASSWORD (or DEMO_PASSWORD_FILE) is required')
  const port = env.PORT === undefined ? 3000 : Number(env.PORT)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('PORT must be a port number')
  return {
    port,
    host: env.HOST ?? '0.0.0.0',
    signetUrl,
    ...(tokenFile ? { tokenFile } : { clientToken }),
    demoPassword,
    jwksUrl: env.SIGNET_JWKS_URL || undefined,
    audience: env.APP_AUDIENCE || undefined,
    issuer: env.APP_ISSUER || undefined,
    logger: { level: env.LOG_LEVEL ?? 'info' },
  }
}

async function main() {
  let config
  try {
    config = configFromEnv()
  } catch (error) {
    process.stderr.write(`app-server: ${error.message}\n`)
    process.exit(1)
  }
  const app = await buildAppServer(config)
  await app.listen({ port: config.port, host: config.host })
  closeWithGrace({ delay: 10_000 }, async ({ err }) => {
    if (err) app.log.error({ err }, 'stopping after an error')
    await app.close()
  })
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
