import type { FastifyInstance } from 'fastify'
import { InvalidRequest } from '../errors.js'

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

/**
 * The JSON body parser: the bytes must be valid UTF-8 (a lenient decoder would turn
 * bad bytes into U+FFFD and sign something the caller never sent), then fastify's
 * own parser (secure-json-parse) refuses `__proto__` and `constructor.prototype`
 * keys instead of letting them near object prototypes.
 */
export function installJsonParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    let text: string
    try {
      text = utf8.decode(body as Buffer)
    } catch {
      done(new InvalidRequest('the body is not valid UTF-8'), undefined)
      return
    }
    parseJson(request, text, done)
  })
}
