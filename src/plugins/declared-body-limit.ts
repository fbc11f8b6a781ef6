import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { BODY_LIMIT, bodyTooLarge } from '../http/problem.js'

/**
 * A request whose Content-Length is over the body limit is refused with 413 before
 * anything else runs, authentication included (docs/api.md, request bodies:
 * bodies over 64 KiB get 413). The answer says nothing about the caller, and the body is never read.
 * Bodies sent without a length are still cut off at the limit while being read.
 */
async function declaredBodyLimit(app: FastifyInstance): Promise<void> {
  app.addHook('onRequest', (request, reply, done) => {
    const declared = Number(request.headers['content-length'])
    if (declared > BODY_LIMIT) {
      // Closing the connection after the answer is what leaves the body unread:
      // kept alive, Node would read and discard all of it first.
      reply.header('connection', 'close')
      return done(bodyTooLarge())
    }
    done()
  })
}

export const declaredBodyLimitPlugin = fp(declaredBodyLimit, { name: 'signet-declared-body-limit', fastify: '5.x', dependencies: ['signet-security-headers'] })
