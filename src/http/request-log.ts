import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'
import { loggableUrl } from './log-url.js'

/**
 * Fastify's per-request log lines, as Signet writes them: one line when a request
 * is answered (method, path without query values, status, time, and the client
 * that made it, with its workload issuer and subject when it came with a workload
 * token) instead of an "incoming" and a "completed" line. Never headers, never bodies.
 */
export class RequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const principal = request.principal
    const line = {
      method: request.method,
      url: loggableUrl(request.url),
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 100) / 100,
      ...(principal?.kind === 'client' ? { client: principal.client.id, ...(principal.workload ? { workload: principal.workload } : {}) } : {}),
    }
    if (error) reply.log.error({ ...line, err: error }, 'request failed while answering')
    else reply.log.info(line, 'request')
  }
}
