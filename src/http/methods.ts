import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { MethodNotAllowed, NotFound } from '../errors.js'
import { sendProblem } from './problem.js'

/** Methods refused everywhere: TRACE echoes the request (cross-site tracing), TRACK is its IIS twin. */
const NEVER_ALLOWED = new Set(['TRACE', 'TRACK'])

interface KnownRoute {
  pattern: RegExp
  methods: Set<string>
}

/** `/keysets/:name/jwks.json` → /^\/keysets\/[^/]+\/jwks\.json$/ */
function patternOf(url: string): RegExp {
  const source = url
    .split('/')
    .map((segment) => (segment.startsWith(':') ? '[^/]+' : segment === '*' ? '.*' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/')
  return new RegExp(`^${source}$`)
}

/**
 * Answers requests no route takes: 405 with an `Allow` header when the path exists
 * under other methods, or when the method is TRACE or TRACK; else 404. Routes are
 * recorded as they are added, so call this before registering any.
 */
export function installNotFound(app: FastifyInstance): void {
  const routes = new Map<string, KnownRoute>()
  app.addHook('onRoute', (route) => {
    const known = routes.get(route.url) ?? { pattern: patternOf(route.url), methods: new Set<string>() }
    for (const method of [route.method].flat()) known.methods.add(method)
    if (known.methods.has('GET')) known.methods.add('HEAD')
    routes.set(route.url, known)
  })

  const allowedFor = (path: string): string[] => {
    const allowed = new Set<string>()
    for (const route of routes.values()) {
      if (route.pattern.test(path)) for (const method of route.methods) allowed.add(method)
    }
    return [...allowed].sort()
  }

  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?', 1)[0] ?? ''
    const allowed = allowedFor(path)
    if (NEVER_ALLOWED.has(request.method) || allowed.length > 0) {
      reply.header('allow', allowed.join(', '))
      return sendProblem(reply, new MethodNotAllowed(`${request.method} is not allowed here`))
    }
    return sendProblem(reply, new NotFound('no such route'))
  })
}
