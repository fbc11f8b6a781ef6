import type { IncomingMessage } from 'node:http'
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify'

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/#traceparent-header):
 * a caller's `traceparent` is carried into every log line of its request, so the
 * lines join the caller's trace in a log store. Only a well-formed header is
 * kept (it is caller input: nothing else reaches the logs); Signet starts no
 * spans of its own.
 */

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
const ZEROS = /^0+$/

export interface TraceContext {
  /** version-traceid-parentid-flags, without what a later version may append. */
  traceparent: string
  traceId: string
  /** The caller's span (parent-id in the header). */
  spanId: string
}

/** Parses a traceparent header; null when absent or malformed. */
export function parseTraceparent(header: string | string[] | undefined): TraceContext | null {
  if (typeof header !== 'string' || header.length > 512) return null
  const match = TRACEPARENT.exec(header.trim())
  if (!match) return null
  const [, version, traceId, spanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined]
  if (version === 'ff' || (version === '00' && rest !== undefined)) return null
  if (ZEROS.test(traceId) || ZEROS.test(spanId)) return null
  return { traceparent: `${version}-${traceId}-${spanId}-${flags}`, traceId, spanId }
}

/**
 * A fastify childLoggerFactory: the request's logger gets the trace context as
 * bindings, so every line logged for that request carries it.
 */
export const traceChildLogger: NonNullable<FastifyServerOptions['childLoggerFactory']> = function (
  logger: FastifyBaseLogger,
  bindings,
  options,
  raw: IncomingMessage,
) {
  const trace = parseTraceparent(raw.headers.traceparent)
  return logger.child(trace ? { ...bindings, ...trace } : bindings, options)
}
