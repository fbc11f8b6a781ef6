import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { InvalidRequest } from '../errors.js'

/** C0 controls and DEL: never part of a keyset name, kid or client id. */
const CONTROL = /[\u0000-\u001f\u007f]/

/**
 * Refuses path parameters holding control characters (an encoded NUL, `%0a`) with
 * 400, after authentication and before any handler, on the routes that have them. No name, kid or id contains
 * one, and some storage refuses them outright (PostgreSQL text cannot hold NUL),
 * which would otherwise surface as a storage error instead of a clear refusal.
 */
export function installParamGuard(app: FastifyInstance): void {
  const guard = (request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void) => {
    const params = request.params as Record<string, string>
    for (const name in params) {
      if (CONTROL.test(params[name]!)) return done(new InvalidRequest(`the path parameter ${name} holds a control character`))
    }
    done()
  }
  // Only routes with parameters get the check: /v1/sign and the like have none.
  app.addHook('onRoute', (route) => {
    if (!route.url.includes(':')) return
    const own = route.preValidation === undefined ? [] : Array.isArray(route.preValidation) ? route.preValidation : [route.preValidation]
    route.preValidation = [guard, ...own]
  })
}
