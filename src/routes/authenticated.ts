import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { authenticationHook, type Authenticator, type Principal } from '../auth/authenticate.js'
import type { Signet } from '../runtime.js'

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null
  }
}

/** What a plugin of authenticated routes (internal.ts, admin.ts) is registered with. */
export interface AuthenticatedRoutesOptions {
  signet: Signet
  auth: Authenticator
}

/**
 * The plugin's instance, every request of which is authenticated before its route
 * runs (`request.principal`), then checked by `check` (e.g. a scope check).
 * Request types come from the schemas themselves.
 */
export function authenticatedRoutes(instance: FastifyInstance, auth: Authenticator, check?: (principal: Principal) => void) {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>()
  app.addHook('onRequest', authenticationHook(auth, check))
  return app
}
