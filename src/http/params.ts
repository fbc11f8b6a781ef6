import type { FastifyInstance, FastifyRequest } from 'fastify'
import { InvalidRequest } from '../errors.js'

/** C0 controls and DEL: never part of a keyset name, kid or client id. */
const CONTROL = /[\u0000-\u001f\u007f]/

/**
 * Refuses path parameters holding control characters (an encoded NUL, `%0a`) with
 * 400, after authentication and before any handler. No name, kid or id contains
 * one, and some storage refuses them outright (PostgreSQL text cannot hold NUL),
 * which would otherwise surface as a storage error instead of a clear refusal.
 */
export function installParamGuard(app: FastifyInstance): void {
  app.addHook('preValidation', (request: FastifyRequest, _reply, done) => {
    const params = request.params as Record<string, unknown> | undefined
    for (const name in params) {
      const value = params[name]
      if (typeof value === 'string' && CONTROL.test(value)) return done(new InvalidRequest(`the path parameter ${name} holds a control character`))
    }
    done()
  })
}
