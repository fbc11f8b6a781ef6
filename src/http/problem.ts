import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { ErrorObject } from 'ajv'
import { Internal, InvalidRequest, MethodNotAllowed, NotFound, PayloadTooLarge, SignetError, UnsupportedMediaType } from '../errors.js'
import { validationError } from '../schemas/validate.js'

export const PROBLEM_JSON = 'application/problem+json'

/** Request bodies over this many bytes get 413 `payload_too_large`. */
export const BODY_LIMIT = 64 * 1024
/** 413 for a body over BODY_LIMIT, whichever check found it. */
export const bodyTooLarge = (): SignetError => new PayloadTooLarge(`request bodies are limited to ${BODY_LIMIT / 1024} KiB`)

/** The `type` URI of a problem: one per stable code. */
export const problemType = (code: string): string => `urn:signet:problem:${code}`

/** Sends an RFC 9457 problem+json answer. */
export function sendProblem(reply: FastifyReply, error: SignetError): FastifyReply {
  // A 401 names the scheme it wants (RFC 9110 section 15.5.2, RFC 6750 section 3).
  if (error.status === 401) reply.header('www-authenticate', 'Bearer')
  if (error.status === 429 || error.status === 503) {
    const retryAfter = error.extra?.retryAfter
    if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter))
  }
  return reply.code(error.status).type(PROBLEM_JSON).send(problemBody(error))
}

/** The RFC 9457 body of an error: type, title, status, detail, code and its extra members. */
export function problemBody(error: SignetError): Record<string, unknown> {
  const { retryAfter: _retryAfter, ...extra } = error.extra ?? {}
  return { type: problemType(error.code), title: error.title, status: error.status, detail: error.message, code: error.code, ...extra }
}

/**
 * Maps what fastify and its parsers throw to Signet's codes. Parser messages can
 * quote the body (claim values), so they are replaced with fixed text.
 */
export function toSignetError(error: FastifyError): SignetError {
  if (error instanceof SignetError) return error
  // The schema's own message for the field (schemas/validate.ts), as the CLI gives it.
  if (error.validation) return validationError(error.validation as ErrorObject[], error.validationContext ?? 'request')
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return bodyTooLarge()
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new UnsupportedMediaType('bodies must be application/json')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new InvalidRequest('the body is empty; send a JSON object')
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new InvalidRequest('Content-Length does not match the body')
  }
  const status = error.statusCode ?? 500
  if (status === 404) return new NotFound('no such route')
  if (status === 405) return new MethodNotAllowed('method not allowed')
  if (status === 413) return bodyTooLarge()
  if (status === 415) return new UnsupportedMediaType('bodies must be application/json')
  if (status >= 400 && status < 500) {
    // Body parse errors (SyntaxError from the JSON parser, prototype poisoning) land here.
    return new InvalidRequest(error instanceof SyntaxError || /JSON|proto/i.test(error.message) ? 'the body is not valid JSON' : 'the request is not valid')
  }
  return new Internal('the service could not complete the request')
}

/** The error handler: 4xx logged briefly, 5xx logged in full, neither answer carries internals. */
export function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const problem = toSignetError(error)
  if (problem.status === 503 && error instanceof SignetError) {
    // Expected refusals (overloaded, sealed, storage or HSM away): the code and the
    // underlying cause, without a stack trace on every refused request.
    const cause = error.cause instanceof Error ? error.cause.message : undefined
    request.log.warn({ code: problem.code, status: problem.status, ...(cause ? { cause } : {}) }, 'request refused: service unavailable')
  } else if (problem.status >= 500) {
    request.log.error({ err: error, code: problem.code }, 'request failed')
  } else {
    request.log.info({ code: problem.code, status: problem.status }, 'request refused')
  }
  return sendProblem(reply, problem)
}
