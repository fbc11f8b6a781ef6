import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ShuttingDown } from '../errors.js'

/**
 * While a listener closes, a request that still arrives on an open keep-alive
 * connection gets a problem+json 503 `shutting_down`, with the security headers,
 * like every other error (docs/api.md, errors), instead of fastify's own plain JSON
 * answer (return503OnClosing, turned off in app.ts). Fastify marks such answers
 * `Connection: close`. Nothing of the request has run, so a client may safely send
 * it again, to another replica or once the service is back.
 */
async function closing(app: FastifyInstance): Promise<void> {
  let closing = false
  app.addHook('preClose', (done) => {
    closing = true
    done()
  })
  app.addHook('onRequest', (_request, _reply, done) => {
    if (closing) return done(new ShuttingDown('the service is shutting down; retry shortly'))
    done()
  })
}

export const closingPlugin = fp(closing, { name: 'signet-closing', fastify: '5.x', dependencies: ['signet-security-headers'] })
